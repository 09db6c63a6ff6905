import { parseArgs } from 'node:util';
import { applySelection, readHostState } from '../apply/selection.js';
import { effectivePath, execaRunner } from '../backends/exec.js';
import { allVariants } from '../backends/variants.js';
import { binary } from '../backends/xtables.js';
import type { Attachment } from '../identity.js';
import { planSelection } from '../plan/iptables-plan.js';
import { planNftSelection } from '../plan/nft-plan.js';
import type { NftOwner } from '../plan/nft-rules.js';
import { describeIptables, describeNft, renderTable, type OrphanRow } from '../plan/orphans.js';
import { looksLikeStateDir, readRecorded } from '../state/recorded.js';
import { stdio } from './output.js';
import { createLogger } from '../log.js';
import { loadJanitorSettings } from './settings.js';

const HELP = `usage: masq-janitor sweep [--apply] [--json] [--state-dir DIR] [--network NAME] [--settle SECONDS] [--config FILE]

Finds masquerade state that bridge/ptp leaked on this host (iptables and
ip6tables nat tables, legacy and nft variants, and the nftables backend's
table inet cni_plugins_masquerade) whose attachment is recorded neither in
libcni's result cache (<state-dir>/results) nor in host-local's
reservations (<state-dir>/networks). Dry run by default.

  --apply           remove the orphans (one transaction per table, chunked)
  --json            machine-readable output on stdout
  --state-dir DIR   root holding results/ and networks/ (default /var/lib/cni)
  --network NAME    only this network
  --settle SECONDS  wait this long between reading the tables and reading the
                    records, so container starts in flight get recorded first
                    (use it when sweeping a busy host periodically; default 0)
  --config FILE     a conflist or plugin config whose masq-janitor entry gives
                    lockWait, and logFile/logLevel for a record of what --apply removed
  -h, --help        this text

Exit status: 0 nothing orphaned (or all removed with --apply), 1 orphans
found (dry run) or removal incomplete, 2 usage error or a state dir
holding neither results/ nor networks/.
`;

const out = (s: string): void => stdio.out(s);
const err = (s: string): void => stdio.err(s);

export async function sweep(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        apply: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'state-dir': { type: 'string', default: '/var/lib/cni' },
        network: { type: 'string' },
        config: { type: 'string' },
        settle: { type: 'string', default: '0' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    err(`masq-janitor sweep: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help) {
    out(HELP);
    return 0;
  }
  const settings = loadJanitorSettings(values.config);
  if (!settings.ok) {
    err(`masq-janitor sweep: ${settings.error}\n`);
    return 2;
  }
  const started = Date.now();
  const path = effectivePath(process.env);
  const run = execaRunner(path);
  const network = values.network;
  if (!looksLikeStateDir(values['state-dir'])) {
    // With no record of anything, every live container would look orphaned.
    err(`masq-janitor sweep: ${values['state-dir']} has neither results/ nor networks/; refusing to treat every attachment as orphaned (check --state-dir)\n`);
    return 2;
  }
  const variants = [...allVariants(4, path), ...allVariants(6, path)];
  const state = await readHostState(run, variants);
  for (const e of state.errors) err(`masq-janitor sweep: ${e}\n`);
  // The records are read after the tables, and after --settle: libcni writes its result cache only when
  // the whole ADD chain is done, so an ADD in flight has rules but (with IPAM other than host-local) no
  // record yet. Reading records later lets such an ADD finish and be seen.
  const settle = Number(values.settle);
  if (!Number.isFinite(settle) || settle < 0) {
    err(`masq-janitor sweep: --settle takes seconds, got ${JSON.stringify(values.settle)}\n`);
    return 2;
  }
  if (settle > 0) await new Promise((r) => setTimeout(r, settle * 1000));
  const recorded = readRecorded(values['state-dir']);
  for (const d of recorded.doubtful) err(`masq-janitor sweep: unreadable state kept as recorded: ${d}\n`);

  const why = `not in ${values['state-dir']}/results nor ${values['state-dir']}/networks`;
  const inScope = (net: string): boolean => network === undefined || net === network;
  const doomed = (a: Attachment): boolean => inScope(a.network) && !recorded.has(a.network, a.containerId);
  const doomedNft = (o: NftOwner): boolean =>
    inScope(o.network) && !(o.truncated ? recorded.hasPrefix(o.network, o.containerId) : recorded.has(o.network, o.containerId));

  const rows: OrphanRow[] = [];
  for (const t of state.tables) {
    const where = `${binary(t.xt, '')} v${t.xt.family}`;
    rows.push(...describeIptables(where, t.snapshot, planSelection(t.snapshot, doomed), why));
  }
  if (state.nft) rows.push(...describeNft(planNftSelection(state.nft, doomedNft), why));

  const totals = {
    attachments: new Set(rows.map((r) => `${r.network}/${r.containerId}`)).size,
    chains: rows.filter((r) => r.where !== 'nft inet').reduce((n, r) => n + (r.object === '(jump only)' ? 0 : r.object.split(',').length), 0),
    rules: rows.reduce((n, r) => n + r.rules, 0),
    nftRules: rows.filter((r) => r.where === 'nft inet').length,
  };
  const looked = { tables: state.tables.map((t) => `${binary(t.xt, '')} nat`).concat(state.nft ? ['nft inet cni_plugins_masquerade'] : []), recorded: recorded.counts };

  if (!values.apply) {
    if (values.json) out(JSON.stringify({ orphans: rows, totals, looked, errors: state.errors }, null, 2) + '\n');
    else {
      if (rows.length > 0) out(renderTable(rows));
      out(`${totals.attachments} orphaned attachments: ${totals.chains} chains, ${totals.rules} rules (${totals.nftRules} nft) in ${looked.tables.join(', ') || 'no tables'}; ${recorded.counts.cache} cached results and ${recorded.counts.reservations} IPAM reservations kept. Dry run: add --apply to remove.\n`);
    }
    return rows.length > 0 || state.errors.length > 0 ? 1 : 0;
  }

  const progress = (line: string): void => err(`masq-janitor sweep: ${line}\n`);
  const result = await applySelection(run, state, doomed, (rules) => planNftSelection(rules, doomedNft), settings.value.lockWait, progress);
  const removed = {
    chains: result.tables.reduce((n, t) => n + t.chains, 0),
    jumps: result.tables.reduce((n, t) => n + t.jumps, 0),
    nftRules: result.nftRules,
    transactions: result.tables.reduce((n, t) => n + t.transactions, 0),
    seconds: (Date.now() - started) / 1000,
  };
  if (values.json) out(JSON.stringify({ orphans: rows, totals, removed, errors: result.errors }, null, 2) + '\n');
  else {
    if (rows.length > 0) out(renderTable(rows));
    out(`removed ${removed.chains} chains, ${removed.jumps} POSTROUTING jumps and ${removed.nftRules} nft rules of ${totals.attachments} orphaned attachments in ${removed.transactions} transactions (${removed.seconds.toFixed(2)} s)${result.errors.length ? `; ${result.errors.length} errors` : ''}.\n`);
  }
  for (const e of result.errors) err(`masq-janitor sweep: ${e}\n`);
  // The janitor's own log (logFile/logLevel from --config) keeps a record of what an operator removed.
  const log = createLogger(settings.value, { plugin: 'masq-janitor', command: 'sweep' }, (line) => err(line + '\n'));
  log.info({ orphans: rows.length, totals, removed }, 'sweep applied');
  for (const e of result.errors) log.error({ error: e }, 'sweep error');
  await log.flush();
  return result.errors.length > 0 ? 1 : 0;
}
