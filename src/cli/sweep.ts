import { parseArgs } from 'node:util';
import { converge, type Attempt, type Backend } from '../backends/backend.js';
import { effectivePath, spawnRunner, type Runner } from '../backends/exec.js';
import type { Snapshot } from '../backends/iptables/parse.js';
import type { IptablesPlan } from '../backends/iptables/plan.js';
import { binary, iptablesBackend } from '../backends/iptables/run.js';
import { allVariants } from '../backends/iptables/variants.js';
import type { NftRule } from '../backends/nft/parse.js';
import type { NftPlan } from '../backends/nft/plan.js';
import { nftBackend } from '../backends/nft/run.js';
import type { Selection } from '../backends/selection.js';
import type { JanitorError } from '../errors.js';
import { createLogger } from '../log.js';
import { looksLikeStateDir, readRecords, type Records } from '../records/recorded.js';
import { sweepSelection } from '../records/selections.js';
import { MASQ_CHAIN_PATTERN } from '../identity.js';
import { commentAttachment, jumpOwner } from '../backends/iptables/plan.js';
import { renderMetrics, writeMetricsFile, type SweepCounts, type SweepSummary } from './metrics.js';
import { describeIptables, describeNft, describeNftHostport, renderTable, type OrphanRow } from './orphans.js';
import { stdio, writeJsonDocument } from './output.js';
import { loadJanitorSettings } from './settings.js';
import { collectGarbage } from './memory.js';

import { hostPortsOf } from '../backends/iptables/hostport.js';
import { findPortConflicts, iptablesHolders, nftHolders, renderPortConflicts, type PortConflict } from '../hostport/conflicts.js';
import { nftHostPortsOf, type NftHostportPlan, type NftHostportRule } from '../backends/nft/hostport.js';
import { nftHostportBackend } from '../backends/nft/hostport-run.js';
import type { Attachment } from '../identity.js';
const HELP = `usage: masq-janitor sweep [--apply] [--json] [--state-dir DIR] [--network NAME] [--settle SECONDS] [--config FILE]

Finds masquerade state that bridge/ptp leaked on this host (iptables and
ip6tables nat tables, legacy and nft variants, and the nftables backend's
table inet cni_plugins_masquerade), and the hostport (DNAT) state portmap
leaked, whose attachment is recorded neither in libcni's result cache
(<state-dir>/results) nor in host-local's reservations (<state-dir>/networks).
Also reports host ports that more than one container's DNAT state serves
(a stale mapping shadowing a live one). Dry run by default.

  --apply           remove the orphans (one transaction per table, chunked)
  --json            machine-readable output on stdout
  --state-dir DIR   root holding results/ and networks/ (default /var/lib/cni)
  --network NAME    only this network
  --settle SECONDS  wait this long between reading the tables and reading the
                    records, so container starts in flight get recorded first
                    (use it when sweeping a busy host periodically; default 0,
                    at most ${3600})
  --metrics-file PATH  write the outcome as a Prometheus textfile (node_exporter's
                    textfile collector), replaced atomically
  --config FILE     a conflist or plugin config whose masq-janitor entry gives
                    lockWait, and logFile/logLevel for a record of what --apply removed
  -h, --help        this text

Exit status: 0 nothing orphaned (or all removed with --apply), 1 orphans
or a host port conflict found (dry run) or removal incomplete, 2 usage error, not root, or a state
dir holding neither results/ nor networks/.
`;

const MAX_SETTLE_SECONDS = 3600;
const FIRST: Attempt = { n: 1, whole: true, conservative: false };

const out = (s: string): void => stdio.out(s);
const err = (s: string): void => stdio.err(s);

interface Table<S, P> {
  readonly backend: Backend<S, P>;
  /** `iptables-nft`, `iptables-legacy`, `nft`: the metrics' backend label. */
  readonly kind: string;
  readonly snapshot: S | undefined;
  readonly describe: (snapshot: S, plan: P, why: string) => OrphanRow[];
  /** Every attachment this table holds state of, as `network/containerId`. */
  readonly holders: (snapshot: S) => ReadonlySet<string>;
}

type AnyTable = Table<Snapshot, IptablesPlan> | Table<readonly NftRule[], NftPlan> | Table<readonly NftHostportRule[], NftHostportPlan>;

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
        'metrics-file': { type: 'string' },
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
  const settle = Number(values.settle);
  if (!/^\d+(\.\d+)?$/.test(values.settle) || !Number.isFinite(settle) || settle > MAX_SETTLE_SECONDS) {
    err(`masq-janitor sweep: --settle takes 0 to ${MAX_SETTLE_SECONDS} seconds, got ${JSON.stringify(values.settle)}\n`);
    return 2;
  }
  const settings = loadJanitorSettings(values.config);
  if (!settings.ok) {
    err(`masq-janitor sweep: ${settings.error}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    err('masq-janitor sweep: needs root: reading and changing the nat tables needs CAP_NET_ADMIN (run it with sudo)\n');
    return 2;
  }
  const stateDir = values['state-dir'];
  if (!looksLikeStateDir(stateDir)) {
    // With no record of anything, every live container would look orphaned.
    err(`masq-janitor sweep: ${stateDir} has neither results/ nor networks/; refusing to treat every attachment as orphaned (check --state-dir)\n`);
    return 2;
  }
  const started = Date.now();
  const path = effectivePath(process.env);
  const report = await sweepHost({ run: spawnRunner(path), path, stateDir, network: values.network, settleMs: settle * 1000, apply: values.apply, wait: settings.value.lockWait, progress: (line) => err(`masq-janitor sweep: ${line}\n`) });
  const { rows, totals, looked, errors, removed, conflicts } = report;
  const metricsFile = values['metrics-file'];
  if (metricsFile !== undefined) {
    const summary: SweepSummary = { finishedAtMs: Date.now(), durationMs: Date.now() - started, applied: values.apply, errors: errors.length, counts: report.counts };
    const w = await writeMetricsFile(metricsFile, renderMetrics(summary));
    if (!w.ok) err(`masq-janitor sweep: metrics not written: ${w.error.message}\n`);
  }
  const stalePorts = (): void => {
    if (conflicts.length === 0) return;
    out(`\n${conflicts.length} host port${conflicts.length === 1 ? '' : 's'} served by more than one container's DNAT state (the first rule wins: stale mappings shadow live ones):\n`);
    out(renderPortConflicts(conflicts));
  };
  if (!values.apply) {
    if (values.json) writeJsonDocument(out, 'orphans', rows, { totals, looked, errors, portConflicts: conflicts });
    else {
      if (rows.length > 0) out(renderTable(rows));
      stalePorts();
      out(`${totals.attachments} orphaned attachments: ${totals.chains} chains, ${totals.rules} rules (${totals.nftRules} nft) in ${looked.tables.join(', ') || 'no tables'}; ${looked.recorded.cache} cached results and ${looked.recorded.reservations} IPAM reservations kept. Dry run: add --apply to remove.\n`);
      for (const e of errors) err(`masq-janitor sweep: ${e}\n`);
    }
    return rows.length > 0 || errors.length > 0 || conflicts.length > 0 ? 1 : 0;
  }
  const seconds = (Date.now() - started) / 1000;
  const applied = { ...removed, seconds };
  if (values.json) writeJsonDocument(out, 'orphans', rows, { totals, removed: applied, errors, portConflicts: conflicts });
  else {
    if (rows.length > 0) out(renderTable(rows));
    stalePorts();
    out(`removed ${removed.chains} chains, ${removed.jumps} jumps and ${removed.nftRules} nft rules of ${totals.attachments} orphaned attachments in ${removed.transactions} transactions (${seconds.toFixed(2)} s)${errors.length ? `; ${errors.length} errors` : ''}.\n`);
    for (const e of errors) err(`masq-janitor sweep: ${e}\n`);
  }
  // The janitor's own log (logFile/logLevel from --config) keeps a record of what an operator removed.
  const log = createLogger(settings.value, { plugin: 'masq-janitor', command: 'sweep' }, (line) => err(line + '\n'));
  log.info({ orphans: rows.length, totals, removed: applied, errors }, 'sweep applied');
  await log.flush();
  return errors.length > 0 ? 1 : 0;
}

export interface SweepOptions {
  readonly run: Runner;
  readonly path: string;
  readonly stateDir: string;
  readonly network: string | undefined;
  readonly settleMs: number;
  readonly apply: boolean;
  readonly wait: number;
  readonly progress: (line: string) => void;
  /** Test seam: called between reading the tables and reading the records. */
  readonly afterTablesRead?: () => void | Promise<void>;
}

export interface SweepReport {
  readonly rows: readonly OrphanRow[];
  readonly totals: { readonly attachments: number; readonly chains: number; readonly rules: number; readonly nftRules: number };
  readonly looked: { readonly tables: readonly string[]; readonly recorded: Records['counts']; readonly networks: readonly string[] };
  readonly errors: readonly string[];
  readonly removed: { readonly chains: number; readonly jumps: number; readonly nftRules: number; readonly transactions: number };
  /** Per backend and network, for --metrics-file: orphans found and removed, attachments kept. */
  readonly counts: readonly SweepCounts[];
  /** Host ports more than one container's DNAT state serves, as the tables were read (before any removal). */
  readonly conflicts: readonly PortConflict[];
}

/**
 * The shell of sweep: read every table, then (after the settle) the
 * records; plan each table; with `apply`, converge each table, re-reading
 * table and records on every retry. The decisions are the planners'.
 */
export async function sweepHost(o: SweepOptions): Promise<SweepReport> {
  const { network, progress } = o;
  const shared = { recordedNetworks: [] as readonly string[] };
  const { rows, totals, looked, errors, conflicts, planned, first } = await survey(o, shared);
  const removed = { chains: 0, jumps: 0, nftRules: 0, transactions: 0 };
  const done = new Set<Planned>();
  const counts = (): SweepCounts[] => planned.flatMap((t) => countsOf(t, done.has(t)));
  if (!o.apply) return { rows, totals, looked, errors, removed, conflicts, counts: counts() };

  for (const t of planned) {
    // A retry reads this table and then the records again (per table: records read for another table's
    // retry predate this table's re-read); its plan stays within the first one.
    const rounds = new Map<number, Selection>([[1, first]]);
    const evidence = async (a: Attempt): Promise<Selection> => {
      let sel = rounds.get(a.n);
      if (!sel) {
        const records = readRecords(o.stateDir);
        shared.recordedNetworks = [...new Set([...shared.recordedNetworks, ...records.networks])];
        rounds.set(a.n, (sel = sweepSelection(records, inScope(network))));
      }
      return sel;
    };
    // The survey's snapshots are garbage by now; at 100,000 attachments V8 would keep their pages while
    // iptables-restore (320 MiB of its own there) runs beside us, under the same memory limit.
    if (t.rows.length >= LARGE_PLAN) collectGarbage();
    const r = await converge<unknown, unknown>(t.backend, evidence, { firstWhole: true, planned: t.plan, progress });
    if (!r.ok) {
      errors.push(r.error.message);
      continue;
    }
    removed.chains += r.value.removed.chains;
    removed.jumps += r.value.removed.jumps;
    removed.nftRules += r.value.removed.rules;
    removed.transactions += r.value.removed.transactions;
    done.add(t);
  }
  return { rows, totals, looked, errors, removed, conflicts, counts: counts() };
}

/** Made out here: a closure made in survey() would keep survey's whole scope (the snapshots) alive. */
const inScope =
  (network: string | undefined) =>
  (net: string): boolean =>
    network === undefined || net === network;

/** Rows above which a table's transaction is preceded by a full garbage collection. */
const LARGE_PLAN = 10_000;

/** One table as the survey left it: its first plan and report, and no snapshot. */
interface Planned {
  readonly backend: Backend<unknown, unknown>;
  readonly kind: string;
  readonly plan: unknown;
  readonly rows: readonly OrphanRow[];
  /** Every attachment the table held state of, as `network/containerId`. */
  readonly holders: ReadonlySet<string>;
}

interface Survey {
  readonly rows: OrphanRow[];
  readonly totals: SweepReport['totals'];
  readonly looked: SweepReport['looked'];
  readonly errors: string[];
  readonly conflicts: readonly PortConflict[];
  readonly planned: readonly Planned[];
  /** Attempt 1's evidence, the records read after the tables. */
  readonly first: Selection;
}

/**
 * Read, plan and describe every table. The snapshots live only in here: what
 * leaves is each table's plan, rows and holders, and no closure made here
 * survives it (V8 would keep this whole scope alive with it).
 */
async function survey(o: SweepOptions, shared: { recordedNetworks: readonly string[] }): Promise<Survey> {
  const { network, progress } = o;
  const errors: string[] = [];
  // The tables first, then (after the settle) the records: libcni writes its result cache only when the
  // whole ADD chain is done, so an ADD in flight has rules but (with IPAM other than host-local) no
  // record yet. Reading records later lets such an ADD finish and be seen.
  const { iptables, nft, hostportNft } = hostTables(o, shared);
  const [nftRead, hpReads, iptRead] = await Promise.all([nft.read(FIRST), Promise.all(hostportNft.map((b) => b.read(FIRST))), Promise.all(iptables.map((t) => t.backend.read(FIRST)))]);
  const note = (r: { ok: false; error: JanitorError } | { ok: true }): void => {
    if (!r.ok && r.error.kind !== 'missing-tool') errors.push(r.error.message);
  };
  const hostportTables: { where: string; family: 4 | 6; snapshot: Snapshot }[] = [];
  const tables: AnyTable[] = iptables.map((t, i) => {
    const r = iptRead[i] as Awaited<ReturnType<typeof t.backend.read>>;
    note(r);
    const where = `${binary(t.xt, '')} v${t.xt.family}`;
    if (r.ok && r.value !== undefined) hostportTables.push({ where, family: t.xt.family, snapshot: r.value });
    return { backend: t.backend, kind: `iptables-${t.xt.backend === 'unknown' ? t.xt.variant : t.xt.backend}`, snapshot: r.ok ? r.value : undefined, describe: (sn: Snapshot, p: IptablesPlan, why: string) => describeIptables(where, sn, p, why), holders: attachmentsIn };
  });
  note(nftRead);
  tables.push({ backend: nft, kind: 'nft', snapshot: nftRead.ok ? nftRead.value : undefined, describe: (_s: readonly NftRule[], p: NftPlan, why: string) => describeNft(p, why), holders: (rules: readonly NftRule[]) => new Set(rules.flatMap((r) => (r.owner ? [`${r.owner.network}/${r.owner.containerId}`] : []))) });
  const hostportNftRules: NftHostportRule[] = [];
  for (const [i, r] of hpReads.entries()) {
    note(r);
    if (r.ok && r.value !== undefined) hostportNftRules.push(...r.value);
    tables.push({ backend: hostportNft[i] as Backend<readonly NftHostportRule[], NftHostportPlan>, kind: 'nft-hostport', snapshot: r.ok ? r.value : undefined, describe: (_s: readonly NftHostportRule[], p: NftHostportPlan, why: string) => describeNftHostport(p, why), holders: () => new Set<string>() });
  }
  const present = tables.filter((t) => t.snapshot !== undefined);

  if (o.settleMs > 0) await new Promise((r) => setTimeout(r, o.settleMs));
  await o.afterTablesRead?.();
  const records = readRecords(o.stateDir);
  const first = sweepSelection(records, inScope(network));
  shared.recordedNetworks = [...records.networks];
  const recordedNetworks = shared.recordedNetworks;
  for (const p of records.problems) progress(`unreadable state kept as recorded: ${p}`);

  const why = `not in ${o.stateDir}/results nor ${o.stateDir}/networks`;
  const rows: OrphanRow[] = [];
  const planned: Planned[] = [];
  for (const t of present) {
    const typed = t as Table<unknown, unknown>;
    const plan = typed.backend.plan(t.snapshot, first, FIRST, undefined);
    const r = typed.describe(t.snapshot, plan, why);
    for (const row of r) rows.push(row);
    planned.push({ backend: typed.backend, kind: t.kind, plan, rows: r, holders: typed.holders(t.snapshot) });
  }
  if (network !== undefined && !records.networks.has(network) && !rows.some((r) => r.network === network)) {
    progress(`warning: no record and no state names network ${JSON.stringify(network)}; is the name right?`);
  }
  const totals = {
    attachments: new Set(rows.map((r) => `${r.network}/${r.containerId}`)).size,
    chains: rows.filter((r) => !r.where.startsWith('nft ')).reduce((n, r) => n + (r.object === '(jump only)' ? 0 : r.object.split(',').length), 0),
    rules: rows.reduce((n, r) => n + r.rules, 0),
    nftRules: rows.filter((r) => r.where.startsWith('nft ')).length,
  };
  const looked = { tables: present.map((t) => t.backend.where), recorded: records.counts, networks: [...records.networks].sort() };
  // "Recorded" is what sweep keeps: the same selection that plans the removal.
  const recorded = (a: Attachment): boolean => !first.containerGone(a);
  const nftRecorded = (id: string): boolean => !(network === undefined && recordedNetworks.length > 0 && recordedNetworks.every((n) => first.containerGone({ network: n, containerId: id })));
  const conflicts = findPortConflicts([
    ...hostportTables.flatMap((t) => iptablesHolders(hostPortsOf(t.snapshot), t.where, t.family, recorded)),
    ...nftHolders(nftHostPortsOf(hostportNftRules), nftRecorded),
  ]);
  return { rows, totals, looked, errors, conflicts, planned, first };
}

/**
 * The backends of every table sweep looks at. Made here, in a scope that
 * holds nothing else: their closures outlive the survey, and would keep
 * whatever else a shared scope held (the snapshots).
 */
function hostTables(o: SweepOptions, shared: { recordedNetworks: readonly string[] }) {
  const { run, path, network, wait } = o;
  const iptables = [...allVariants(4, path), ...allVariants(6, path)].map((xt) => ({ xt, backend: iptablesBackend(run, xt, { kind: 'host' }, wait) }));
  const nft = nftBackend(run, network === undefined ? [] : [network]);
  // portmap's nft rules name only a container ID: an ID is orphaned when no network in the records keeps it,
  // so they are swept only host-wide (with --network they are reported in conflicts, never removed).
  const hostportNft = (['ip', 'ip6'] as const).map((family) => nftHostportBackend(run, family, { kind: 'ids', networks: () => (network === undefined ? shared.recordedNetworks : []) }));
  return { iptables, nft, hostportNft };
}

/** Attachments whose state an iptables snapshot holds: by their jumps, and by the comments in their chains. */
function attachmentsIn(s: Snapshot): ReadonlySet<string> {
  // Owners are memoized per comment text: a set of objects first, so each attachment is named once, not per rule.
  const owners = new Set<Attachment>();
  for (const r of s.rules) {
    const owner = jumpOwner(r) ?? (MASQ_CHAIN_PATTERN.test(r.chain) && r.comment !== undefined ? commentAttachment(r.comment) : undefined);
    if (owner) owners.add(owner);
  }
  const out = new Set<string>();
  for (const o of owners) out.add(`${o.network}/${o.containerId}`);
  return out;
}

/**
 * One table's metrics rows. A table whose transactions all succeeded
 * removed what it found (a retry only ever removes less, and what it left
 * is found again by the next sweep).
 */
function countsOf(t: Planned, applied: boolean): SweepCounts[] {
  const { holders } = t;
  const found = new Map<string, Set<string>>();
  for (const r of t.rows) found.set(r.network, (found.get(r.network) ?? new Set()).add(r.containerId));
  const networks = new Set([...found.keys(), ...[...holders].map((h) => h.slice(0, h.indexOf('/')))]);
  return [...networks].map((network) => {
    const f = found.get(network)?.size ?? 0;
    const all = [...holders].filter((h) => h.startsWith(`${network}/`)).length;
    return { backend: t.kind, network, found: f, removed: applied ? f : 0, kept: Math.max(0, all - f) };
  });
}


