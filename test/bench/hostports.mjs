#!/usr/bin/env node
// Hostport row of `make bench`: `masq-janitor sweep --apply` of N leaked portmap setups
// (CNI-DN- chain, its entry rule in CNI-HOSTPORT-DNAT, SETMARK x2 + DNAT inside, exactly
// the shape Debian's portmap v1.1.1 writes) against portmap's own way of removing them:
// one iptables process per step (-D the entry rule, -F, -X).
//
// Everything happens in a throwaway netns (`mjbh-<pid>-<k>`, always deleted); the
// measuring code runs inside it (this file re-executes itself with --worker) and refuses
// to run in any other namespace. iptables calls use a private XTABLES_LOCKFILE.
//
// As a module: `import { benchHostportSweep } from './hostports.mjs'` (bench.mjs owns the
// table; this returns one row's numbers). Standalone:
//   node test/bench/hostports.mjs [--n 10000] [--backends legacy,nft] [--janitor FILE]
//        [--per-rule-budget SECONDS] [--sweep-timeout SECONDS]

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ms, mustRun, run } from './proc.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const NET = 'benchhp';
const SUBNET = '10.64.0.0/12';
const log = (...a) => console.error('[bench hostports]', ...a);


// portmap's names, computed here from upstream's rules, independently of src/.
const dnChain = (cid) => 'CNI-DN-' + createHash('sha512').update(NET + cid).digest('hex').slice(0, 21);
const comment = (cid) => `dnat name: "${NET}" id: "${cid}"`;
const quoted = (s) => `"${s.replaceAll('"', '\\"')}"`;
const ipOf = (k) => `10.${64 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;
const orphansOf = (n) => Array.from({ length: n }, (_, i) => ({ cid: `default-hp-${String(i).padStart(5, '0')}`, ip: ipOf(i + 2), port: 10_000 + (i % 50_000) }));
const entryArgs = (o) => ['-p', 'tcp', '-m', 'comment', '--comment', comment(o.cid), '-m', 'multiport', '--dports', String(o.port), '-j', dnChain(o.cid)];

function restoreText(orphans) {
  const chains = [':CNI-HOSTPORT-DNAT - [0:0]', ':CNI-HOSTPORT-SETMARK - [0:0]', ':CNI-HOSTPORT-MASQ - [0:0]'];
  const rules = [
    '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
    '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
    '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
    '-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
    '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
  ];
  for (const o of orphans) {
    const c = dnChain(o.cid);
    chains.push(`:${c} - [0:0]`);
    rules.push(
      `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ${quoted(comment(o.cid))} -m multiport --dports ${o.port} -j ${c}`,
      `-A ${c} -s ${SUBNET} -p tcp -m tcp --dport ${o.port} -j CNI-HOSTPORT-SETMARK`,
      `-A ${c} -s 127.0.0.1/32 -p tcp -m tcp --dport ${o.port} -j CNI-HOSTPORT-SETMARK`,
      `-A ${c} -p tcp -m tcp --dport ${o.port} -j DNAT --to-destination ${o.ip}:80`,
    );
  }
  return ['*nat', ...chains, ...rules, 'COMMIT', ''].join('\n');
}

// ---------------------------------------------------------------- inside the netns

async function worker(cfg) {
  const here = statSync('/proc/self/ns/net').ino;
  if (here === cfg.hostNetns || here !== statSync(`/var/run/netns/${cfg.netns}`).ino) throw new Error(`refusing to run outside the throwaway netns ${cfg.netns}`);
  const env = { PATH: cfg.path, XTABLES_LOCKFILE: join(cfg.tmp, 'xtables.lock'), LC_ALL: 'C' };
  const load = (orphans) => mustRun('iptables-restore', ['-w', '--noflush'], { env, input: restoreText(orphans) });
  const census = async () => {
    const r = await mustRun('iptables-save', ['-t', 'nat'], { env });
    const lines = r.stdout.split('\n');
    return { chains: lines.filter((l) => l.startsWith(':CNI-DN-')).length, entries: lines.filter((l) => l.startsWith('-A CNI-HOSTPORT-DNAT ') && l.includes('dnat name:')).length };
  };
  const wipe = () => mustRun('iptables', ['-w', '-t', 'nat', '-F'], { env }).then(() => mustRun('iptables', ['-w', '-t', 'nat', '-X'], { env }));
  const orphans = orphansOf(cfg.n);
  const out = { n: cfg.n, backend: cfg.backend };

  await load(orphans);
  const before = await census();
  if (before.chains !== cfg.n || before.entries !== cfg.n) throw new Error(`loaded ${before.chains} chains / ${before.entries} entries, wanted ${cfg.n}`);
  const stateDir = mkdtempSync(join(cfg.tmp, 'state-'));
  for (const d of ['results', 'networks']) mkdirSync(join(stateDir, d));
  const reportFile = join(stateDir, 'report.json');
  const fd = openSync(reportFile, 'w');
  const r = await run(cfg.janitor, ['sweep', '--apply', '--json', '--state-dir', stateDir], { env, stdoutFd: fd, timeoutMs: cfg.sweepTimeoutS * 1000 });
  closeSync(fd);
  const after = r.timedOut ? undefined : await census();
  if (r.timedOut) Object.assign(out, { sweepMs: cfg.sweepTimeoutS * 1000, sweepTimedOut: true });
  else if (r.code !== 0) throw new Error(`sweep exited ${r.code}:\n${r.stderr.slice(0, 2000)}`);
  else if (after.chains !== 0 || after.entries !== 0) {
    // A janitor that does not know hostport state yet: say so instead of timing nothing.
    Object.assign(out, { pending: true, left: after });
  } else {
    let transactions;
    try {
      transactions = JSON.parse(readFileSync(reportFile, 'utf8')).removed?.transactions;
    } catch {
      /* the row still stands on its wall time */
    }
    Object.assign(out, { sweepMs: r.ms, transactions });
  }
  await wipe();

  // portmap's teardown, one process per step, until done or out of budget (then extrapolated).
  await load(orphans);
  const t0 = process.hrtime.bigint();
  let done = 0;
  for (const o of orphans) {
    for (const step of [['-D', 'CNI-HOSTPORT-DNAT', ...entryArgs(o)], ['-F', dnChain(o.cid)], ['-X', dnChain(o.cid)]]) {
      await mustRun('iptables', ['-w', '-t', 'nat', ...step], { env });
    }
    done++;
    if (ms(process.hrtime.bigint() - t0) > cfg.perRuleBudgetS * 1000) break;
  }
  const elapsed = ms(process.hrtime.bigint() - t0);
  if (done === cfg.n) return { ...out, perRuleMs: elapsed, extrapolated: false };
  // Per-call cost grows with the table: the remaining ones cost the mean of the first measured and an empty table's.
  await wipe();
  const small = [];
  for (let i = 0; i < 5; i++) {
    const [o] = orphansOf(1);
    await load([o]);
    const s0 = process.hrtime.bigint();
    for (const step of [['-D', 'CNI-HOSTPORT-DNAT', ...entryArgs(o)], ['-F', dnChain(o.cid)], ['-X', dnChain(o.cid)]]) await mustRun('iptables', ['-w', '-t', 'nat', ...step], { env });
    small.push(ms(process.hrtime.bigint() - s0));
    await wipe();
  }
  small.sort((a, b) => a - b);
  const first = elapsed / done;
  const estimate = elapsed + (cfg.n - done) * ((first + (small[2] ?? first)) / 2);
  return { ...out, perRuleMs: estimate, extrapolated: true, measured: done };
}

// ---------------------------------------------------------------- orchestration (root netns)

const LEGACY = { iptables: 'iptables-legacy', 'iptables-save': 'iptables-legacy-save', 'iptables-restore': 'iptables-legacy-restore', ip6tables: 'ip6tables-legacy', 'ip6tables-save': 'ip6tables-legacy-save', 'ip6tables-restore': 'ip6tables-legacy-restore' };

/**
 * One row: sweep of `n` hostport orphans vs one iptables command per step, on
 * `backend` ('legacy' | 'nft'). Resolves with { n, backend, sweepMs, perRuleMs,
 * ratio, extrapolated, transactions } or { pending: true } when the janitor
 * leaves hostport state behind.
 */
export async function benchHostportSweep({ n = 10_000, backend = 'legacy', janitor = join(ROOT, 'dist/masq-janitor'), perRuleBudgetS = 60, sweepTimeoutS = 120 } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), 'mjbh-'));
  const netns = `mjbh-${process.pid}-${backend}`;
  let path = `${SYSTEM_PATH}:${dirname(process.execPath)}`;
  if (backend === 'legacy') {
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    for (const [name, target] of Object.entries(LEGACY)) symlinkSync(`/usr/sbin/${target}`, join(bin, name));
    path = `${bin}:${path}`;
  }
  await mustRun('ip', ['netns', 'add', netns]);
  try {
    const job = { n, backend, janitor, perRuleBudgetS, sweepTimeoutS, tmp, path, netns, hostNetns: statSync('/proc/self/ns/net').ino };
    const r = await run('ip', ['netns', 'exec', netns, process.execPath, fileURLToPath(import.meta.url), '--worker', JSON.stringify(job)], { env: { PATH: SYSTEM_PATH } });
    process.stderr.write(r.stderr);
    if (r.code !== 0) throw new Error(`hostport worker ${backend} N=${n} failed (${r.code ?? r.signal})`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop());
    return res.sweepMs && !res.pending ? { ...res, ratio: res.perRuleMs / res.sweepMs } : res;
  } finally {
    spawnSync('ip', ['netns', 'del', netns]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A markdown row for RESULTS.md: backend, N, sweep, one command per step, ratio. */
export function hostportRow(r) {
  const s = (x) => `${(x / 1000).toFixed(2)} s`;
  if (r.pending) return `| ${r.backend} | ${r.n.toLocaleString('en')} hostport orphans | pending: sweep left ${r.left?.chains ?? '?'} DN chains | – | – |`;
  return `| ${r.backend} | ${r.n.toLocaleString('en')} hostport orphans | ${r.sweepTimedOut ? '> ' : ''}${s(r.sweepMs)} | ${r.extrapolated ? '≈ ' : ''}${s(r.perRuleMs)} | ${r.ratio.toFixed(0)}× |`;
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({
    options: { worker: { type: 'string' }, n: { type: 'string', default: '10000' }, backends: { type: 'string', default: 'legacy,nft' }, janitor: { type: 'string' }, 'per-rule-budget': { type: 'string', default: '60' }, 'sweep-timeout': { type: 'string', default: '120' } },
  });
  if (values.worker) {
    worker(JSON.parse(values.worker)).then(
      (res) => process.stdout.write(JSON.stringify(res) + '\n'),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  } else {
    if (process.getuid?.() !== 0) {
      log('run as root (it makes a throwaway network namespace)');
      process.exit(2);
    }
    const rows = ['| backend | N | sweep --apply | one iptables command per step | per step / sweep |', '|---|---|---|---|---|'];
    for (const backend of values.backends.split(',')) {
      const res = await benchHostportSweep({ n: Number(values.n), backend, janitor: values.janitor ? resolve(values.janitor) : undefined, perRuleBudgetS: Number(values['per-rule-budget']), sweepTimeoutS: Number(values['sweep-timeout']) });
      log(JSON.stringify(res));
      rows.push(hostportRow(res));
    }
    console.log(rows.join('\n'));
  }
}
