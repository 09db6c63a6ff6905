import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlugin } from '../../src/cni/plugin.js';
import type { ExecResult } from '../../src/backends/exec.js';
import { fakeRunner, type Call } from '../support/fake-runner.js';
import { printFigures, recordFigures } from './support/figures.js';
import {
  ALL_TOOLS,
  buildWorld,
  caseArb,
  confVersion,
  DEFAULT_PATH,
  expected,
  onPath,
  prevResultOf,
  renderEnv,
  renderStdin,
  toolsFor,
  type CaseDesc,
  type Derived,
  type Expect,
  type PathKind,
  type WorldText,
} from './support/fuzz-model.js';
import { JANITOR } from '../support/guard.js';
import { createNetns, removeAllNetns, type Netns } from '../support/netns.js';
import { NODE, pool, run } from '../support/proc.js';
import { rootMentions } from './support/host.js';
import { chainsOf, nftComment, nftProblems, restoreProblems, savedComment, SUPPORTED, tokens } from './support/ref.js';
import { isIP } from 'node:net';

/**
 * Bad input, generated. Every case is a description (env, stdin, and what
 * the fake iptables/nft show); the expected outcome comes from an oracle
 * written from the CNI spec and the janitor's policy, not from src/.
 *
 * In-process: N_INPROC cases through runPlugin with a recording Runner.
 * Real binary: every BINARY_EVERY-th case plus hand-picked extremes through
 * dist/masq-janitor, inside a throwaway netns, with a PATH holding only
 * fake tools that log argv + stdin and touch nothing.
 */

const SEED = 0x6d6a6831; // fixed: "mjh1"
const N_INPROC = 10_000;
const BINARY_EVERY = 30;
const RUN_TIMEOUT_MS = 10_000;
const BINARY_TIMEOUT_MS = 30_000;
const SHOW = new Set((process.env.MJH_FUZZ_SHOW ?? '').split(',').filter(Boolean).map(Number));

const cases: CaseDesc[] = fc.sample(caseArb, { seed: SEED, numRuns: N_INPROC }).map((c, id) => ({ id, ...c }));

interface Failure {
  readonly where: 'in-process' | 'binary';
  readonly id: number;
  readonly problem: string;
  readonly why: string;
}

const failures: Failure[] = [];
const stats = {
  inproc: 0,
  binary: 0,
  runnerCalls: 0,
  restoreInputs: 0,
  nftInputs: 0,
  expectedClasses: new Set<string>(),
  biggestStdin: 0,
  inprocMs: 0,
  binaryMs: 0,
};

let tmp = '';
let netns: Netns | undefined;
const staticDirs: Partial<Record<PathKind, string>> = {};
let inprocLog = '';

// ------------------------------------------------------------------ fake tools

const IFACE_ADDRS = '2: eth0    inet 10.88.0.5/16 scope global eth0\n2: eth0    inet6 fd00:88::5/64 scope global\n';

/** One script stands for every tool; it logs argv (NUL-separated) and stdin, then answers from files next to it. */
const FAKE_TOOL = `#!/bin/sh
PATH=/usr/bin:/bin
d=\${0%/*}; n=\${0##*/}
f="$d/calls/$$"
printf '%s\\0' "$n" "$@" > "$f.argv"
# nft takes its batch as a file (-f FILE); log that as its input.
if [ "$n" = nft ] && [ "$1" = -f ] && [ "$2" != - ]; then cat "$2" > "$f.stdin"; else cat > "$f.stdin"; fi
mode=$(cat "$d/mode" 2>/dev/null)
LOCK='Another app is currently holding the xtables lock. Stopped waiting after 1s.'
case "$n" in
  iptables|ip6tables)
    if [ "$mode" = lock ]; then echo "$LOCK" >&2; exit 4; fi
    case " $* " in *" -S POSTROUTING "*) cat "$d/listing.$n"; exit 0;; esac
    case " $* " in *" -S "*) if [ -e "$d/chain-exists" ]; then echo "-N \$6"; exit 0; fi; echo 'iptables: No chain/target/match by that name.' >&2; exit 1;; esac
    if [ "$mode" = restore-fails ]; then echo "iptables: Invalid argument. Run \\\`dmesg' for more information." >&2; exit 1; fi
    exit 0;;
  iptables-save|ip6tables-save) cat "$d/save.$n"; exit 0;;
  iptables-restore|ip6tables-restore)
    if [ "$mode" = lock ]; then echo "$LOCK" >&2; exit 4; fi
    if [ "$mode" = restore-fails ]; then echo "$n: line 2 failed" >&2; exit 1; fi
    exit 0;;
  nft)
    if [ "$1" = -j ]; then
      if [ "$mode" = nft-list-fails ]; then echo "Error: Could not process rule: Operation not permitted" >&2; exit 1; fi
      if [ "$mode" = nft-garbage ]; then echo 'garbage{"nftables":'; exit 0; fi
      cat "$d/nft.json"; exit 0
    fi
    if [ "$mode" = nft-delete-fails ]; then echo "Error: Could not process rule: Operation not permitted" >&2; exit 1; fi
    exit 0;;
  nsenter)
    if [ -e "$d/iface" ]; then printf '%s\\n' '2: eth0    inet 10.88.0.5/16 scope global eth0' '2: eth0    inet6 fd00:88::5/64 scope global' ; exit 0; fi
    echo 'Device "eth0" does not exist.' >&2; exit 1;;
esac
exit 0
`;

function toolDir(dir: string, kind: PathKind): string {
  mkdirSync(join(dir, 'calls'), { recursive: true });
  for (const t of toolsFor(kind)) symlinkSync(join(tmp, 'fake-tool.sh'), join(dir, t));
  return dir;
}

function pathFor(kind: PathKind): string | undefined {
  if (kind === 'unset') return undefined;
  if (kind === 'none') return '/nonexistent-mjh';
  return staticDirs[kind] as string;
}

// ------------------------------------------------------------------ the in-process fake world

const LOCK_ERR: Partial<ExecResult> = { exitCode: 4, stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 1s.\n' };

function responder(c: CaseDesc, world: WorldText, effectivePath: string) {
  const fault = c.world.fault;
  return (file: string, args: readonly string[]): Partial<ExecResult> | undefined => {
    if (!onPath(file, effectivePath)) return { exitCode: undefined, notFound: true, stderr: `spawn ${file} ENOENT` };
    const stem = file.startsWith('ip6') ? 'ip6tables' : 'iptables';
    if (/^ip6?tables(-legacy|-nft)?$/.test(file)) {
      if (fault === 'lock') return LOCK_ERR;
      if (args.includes('-S')) {
        const chain = args[args.indexOf('-S') + 1] ?? '';
        if (chain === 'POSTROUTING') return { stdout: world.listing[stem] };
        return c.world.chainExists ? { stdout: `-N ${chain}\n` } : { exitCode: 1, stderr: 'iptables: No chain/target/match by that name.\n' };
      }
      if (fault === 'restore-fails') return { exitCode: 1, stderr: "iptables: Invalid argument. Run `dmesg' for more information.\n" };
      return {};
    }
    if (/-save$/.test(file)) return { stdout: world.save[stem] };
    if (/-restore$/.test(file)) {
      if (fault === 'lock') return LOCK_ERR;
      if (fault === 'restore-fails') return { exitCode: 1, stderr: `${file}: line 2 failed\n` };
      if (fault === 'timeout') return { exitCode: undefined, timedOut: true, stderr: '' };
      return {};
    }
    if (file === 'nft') {
      if (args[0] === '-j') {
        if (fault === 'nft-list-fails') return { exitCode: 1, stderr: 'Error: Could not process rule: Operation not permitted\n' };
        if (fault === 'nft-garbage') return { stdout: 'garbage{"nftables":' };
        return { stdout: world.nftJson ?? '' };
      }
      if (fault === 'nft-delete-fails') return { exitCode: 1, stderr: 'Error: Could not process rule: Operation not permitted\n' };
      return {};
    }
    // The interface, when there, has addresses of both families, so bridge will tear down both.
    if (file === 'nsenter') return c.world.nsenterIface ? { stdout: IFACE_ADDRS } : { exitCode: 1, stderr: 'Device "eth0" does not exist.\n' };
    return {};
  };
}

// ------------------------------------------------------------------ invariants

function worldFor(c: CaseDesc, d: Derived): WorldText {
  const w = buildWorld(c.world, d.verb === 'DEL' ? d.identity : undefined, d.gcNetwork, d.valid);
  if (d.verb !== 'DEL' || !d.identity) return w;
  // DEL's fast path (src/apply/iptables.ts) deletes, unlisted, the jumps bridge made for prevResult's IPs.
  const { network, containerId } = d.identity;
  const prev = prevResultOf(c) as { ips?: { address?: unknown }[] } | undefined;
  const fast = { iptables: new Set(w.allowedLines.iptables), ip6tables: new Set(w.allowedLines.ip6tables) };
  for (const entry of Array.isArray(prev?.ips) ? prev.ips : []) {
    const ip = typeof entry?.address === 'string' ? entry.address.split('/')[0] ?? '' : '';
    const family = isIP(ip);
    if (family === 0) continue;
    fast[family === 4 ? 'iptables' : 'ip6tables'].add(`-A POSTROUTING -s ${ip}/${family === 4 ? 32 : 128} -m comment ${savedComment(network, containerId)} -j ${chainsOf(network, containerId)[0]}`);
  }
  return { ...w, allowedLines: fast };
}

/** stdout and exit code against the expectation; returns problems. */
function outputProblems(c: CaseDesc, exp: Expect, exitCode: number | undefined, stdout: string): string[] {
  const p: string[] = [];
  if (exitCode === undefined) return ['no exit code (killed or hung)'];
  if (exp.exit === 0) {
    if (exitCode !== 0) p.push(`exit ${exitCode}, expected 0 (${exp.why}); stdout ${stdout.slice(0, 300)}`);
    if (exp.out === 'empty' || exp.out === 'cli-banner') {
      if (stdout !== '') p.push(`stdout not empty: ${JSON.stringify(stdout.slice(0, 300))}`);
    } else {
      const doc = oneJson(stdout, p);
      if (doc && exp.out === 'version') {
        if (!isDeepStrictEqual(doc.supportedVersions, [...SUPPORTED]) || !SUPPORTED.includes(doc.cniVersion as never)) p.push(`bad VERSION reply ${stdout.slice(0, 200)}`);
      } else if (doc && exp.out === 'add-result') {
        const prev = prevResultOf(c) as Record<string, unknown>;
        const { cniVersion: _drop, ...rest } = prev;
        const want = { cniVersion: confVersion(c), ...rest };
        if (!isDeepStrictEqual(doc, JSON.parse(JSON.stringify(want)))) p.push(`ADD result is not prevResult passed through: ${stdout.slice(0, 300)}`);
      }
    }
    return p;
  }
  if (exitCode === 0) {
    p.push(`exit 0, expected code ${exp.code} (${exp.why}); stdout ${JSON.stringify(stdout.slice(0, 200))}`);
    return p;
  }
  const doc = oneJson(stdout, p);
  if (!doc) return p;
  const keys = Object.keys(doc).sort().join(',');
  if (keys !== 'cniVersion,code,details,msg') p.push(`error keys are ${keys}`);
  if (doc.code !== exp.code) p.push(`code ${String(doc.code)}, expected ${exp.code} (${exp.why}): ${String(doc.msg)} ${String(doc.details).slice(0, 200)}`);
  if (typeof doc.msg !== 'string' || doc.msg === '') p.push('msg is not a non-empty string');
  if (typeof doc.details !== 'string') p.push('details is not a string');
  if (!SUPPORTED.includes(doc.cniVersion as never)) p.push(`error cniVersion ${String(doc.cniVersion)} is not a supported version`);
  // Once the config decoded, errors carry its version. (Not checked when 10 MB of padding precede the key:
  // the early-error path only scans the first 64 KB, a documented shortcut with no effect on libcni.)
  const v = confVersion(c);
  const padded = c.stdin.kind === 'conf' && c.stdin.pad10MB;
  if (v !== undefined && !padded && ![1, 4, 6].includes(exp.code) && doc.cniVersion !== v) p.push(`error cniVersion ${String(doc.cniVersion)}, config says ${v}`);
  return p;
}

function oneJson(stdout: string, p: string[]): Record<string, unknown> | undefined {
  if (!stdout.endsWith('\n') || stdout.slice(0, -1).includes('\n')) {
    p.push(`stdout is not exactly one JSON line: ${JSON.stringify(stdout.slice(0, 300))}`);
    return undefined;
  }
  try {
    const doc: unknown = JSON.parse(stdout);
    if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) return doc as Record<string, unknown>;
    p.push(`stdout JSON is not an object: ${stdout.slice(0, 200)}`);
  } catch {
    p.push(`stdout is not JSON: ${JSON.stringify(stdout.slice(0, 300))}`);
  }
  return undefined;
}

/** Every command the janitor ran: from the known set, and every stdin inside the planner grammar for this case. */
function callProblems(calls: readonly Call[], c: CaseDesc, exp: Expect, d: Derived): string[] {
  const p: string[] = [];
  const mayRun = (d.verb === 'DEL' || d.verb === 'GC') && (exp.exit === 0 || exp.code === 5 || exp.code === 11);
  if (!mayRun) {
    if (calls.length > 0) p.push(`ran ${calls.length} commands although the case (${exp.why}) allows none: ${calls.map((x) => x.file).join(',')}`);
    return p;
  }
  const world = worldFor(c, d);
  const W = String(d.lockWait);
  for (const call of calls) {
    stats.runnerCalls++;
    const a = call.args;
    const stemOf = call.file.startsWith('ip6') ? 'ip6tables' : 'iptables';
    const eq = (want: readonly string[]): boolean => isDeepStrictEqual([...a], [...want]);
    if (/^ip6?tables(-legacy|-nft)?$/.test(call.file)) {
      if (d.verb !== 'DEL') p.push(`GC ran ${call.file} ${a.join(' ')}`);
      else if (eq(['-w', W, '-t', 'nat', '-S', 'POSTROUTING'])) continue;
      else if (a.length === 6 && eq(['-w', W, '-t', 'nat', '-S', a[5] as string]) && world.allowedChains.has(a[5] as string)) continue;
      // portmap's shared entry chains: read-only listings (hostports, issue 11).
      else if (eq(['-w', W, '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']) || eq(['-w', W, '-t', 'nat', '-S', 'CNI-HOSTPORT-SNAT'])) continue;
      else if (a[0] === '-w' && a[1] === W && a[2] === '-t' && a[3] === 'nat' && a[4] === '-D') {
        const argv = ['-A', ...a.slice(5)];
        if (![...world.allowedLines[stemOf]].some((l) => isDeepStrictEqual(tokens(l), argv))) p.push(`single -D of a rule not the case's own: ${a.join(' ')}`);
      } else if (a.length === 6 && a[0] === '-w' && a[1] === W && a[2] === '-t' && a[3] === 'nat' && (a[4] === '-F' || a[4] === '-X')) {
        if (!world.allowedChains.has(a[5] as string)) p.push(`single ${a[4]} of a chain not the case's own: ${a[5]}`);
      } else p.push(`unknown argv: ${call.file} ${JSON.stringify(a)}`);
    } else if (/^ip6?tables(-legacy|-nft)?-save$/.test(call.file)) {
      // GC reads whole tables; DEL's last resort reads one before emptying any chain (read-only either way).
      if ((d.verb !== 'GC' && d.verb !== 'DEL') || !eq(['-t', 'nat'])) p.push(`unexpected ${call.file} ${JSON.stringify(a)}`);
    } else if (/^ip6?tables(-legacy|-nft)?-restore$/.test(call.file)) {
      stats.restoreInputs++;
      if (!eq(['-w', W, '--noflush'])) p.push(`unknown argv: ${call.file} ${JSON.stringify(a)}`);
      const own = d.verb === 'DEL' && d.identity ? `name: "${d.identity.network}" id: "${d.identity.containerId}"` : undefined;
      p.push(...restoreProblems(call.input ?? '', world.allowedChains, world.allowedLines[stemOf], own).map((x) => `${call.file}: ${x}`));
    } else if (call.file === 'nft') {
      if (eq(['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks'])) continue;
      if (eq(['-j', 'list', 'table', 'ip', 'cni_hostport']) || eq(['-j', 'list', 'table', 'ip6', 'cni_hostport'])) continue;
      // DEL's listings batched into one process (backends/nft/listings.ts): each input line one of the above.
      if (eq(['-j', '-i'])) {
        const LISTINGS = ['list chain inet cni_plugins_masquerade masq_checks', 'list table ip cni_hostport', 'list table ip6 cni_hostport'];
        for (const line of (call.input ?? '').split('\n').filter((l) => l !== '')) if (!LISTINGS.includes(line)) p.push(`nft -i with a command not a listing of ours: ${JSON.stringify(line)}`);
        continue;
      }
      // The batch is the janitor's own file, already unlinked, read through its descriptor (backends/nft/run.ts): never a path from input.
      if (a.length !== 2 || a[0] !== '-f' || !/^\/proc\/\d+\/fd\/\d+$/.test(a[1] ?? '')) p.push(`unknown argv: nft ${JSON.stringify(a)}`);
      stats.nftInputs++;
      p.push(...nftProblems(call.input ?? '', world.allowedHandles));
    } else if (call.file === 'nsenter') {
      if (d.verb !== 'DEL' || !eq([`--net=${c.env.netns ?? ''}`, 'ip', '-o', 'addr', 'show', 'dev', c.env.ifname ?? '', 'scope', 'global'])) p.push(`unknown argv: nsenter ${JSON.stringify(a)}`);
    } else p.push(`unknown command ${call.file} ${JSON.stringify(a)}`);
  }
  // Not only nothing foreign: DEL removes this interface's nft rules (they name the interface; no prevResult
  // needed) whenever nft answers. The grammar checks alone let a rule DEL never recognised leak silently.
  const nftAnswers = !['nft-list-fails', 'nft-garbage', 'nft-delete-fails'].includes(c.world.fault) && onPath('nft', d.effectivePath);
  if (d.verb === 'DEL' && d.identity && nftAnswers && world.allowedHandles.size > 0) {
    const deleted = new Set(calls.filter((x) => x.file === 'nft' && x.args[0] === '-f').flatMap((x) => [...(x.input ?? '').matchAll(/handle (\d+)$/gm)].map((m) => Number(m[1]))));
    const left = [...world.allowedHandles].filter((h) => !deleted.has(h));
    if (left.length > 0) p.push(`DEL left this interface's nft rules (handles ${left.join(',')}) in place`);
  }
  return p;
}

function record(where: Failure['where'], c: CaseDesc, why: string, problems: readonly string[]): void {
  for (const problem of problems) failures.push({ where, id: c.id, problem, why });
}

/** In-process runs always log to a file: pino's stderr fallback would flood the test output. */
function forInProcess(c: CaseDesc): CaseDesc {
  if (c.stdin.kind !== 'conf' && c.stdin.kind !== 'truncated') return c;
  const conf = c.stdin.conf;
  if (conf.settings.logFile) return c;
  return { ...c, stdin: { ...c.stdin, conf: { ...conf, settings: { ...conf.settings, logFile: { v: '<<logfile>>', valid: true } } } } };
}

/** What the binary can be given: no NUL in env, no PATH that reaches real tools, no fake timeouts. */
function forBinary(c: CaseDesc): CaseDesc | undefined {
  const env = c.env;
  if (Object.values(env).some((v) => typeof v === 'string' && v.includes('\u0000'))) return undefined;
  return { ...c, env: { ...env, path: env.path === 'unset' ? 'full' : env.path }, world: { ...c.world, fault: c.world.fault === 'timeout' ? 'ok' : c.world.fault } };
}

// ------------------------------------------------------------------ tests

beforeAll(async () => {
  // Digits only: the janitor classifies iptables binaries by "nft"/"legacy" in their resolved path.
  tmp = join(tmpdir(), `mjh-fuzz-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'fake-tool.sh'), FAKE_TOOL);
  chmodSync(join(tmp, 'fake-tool.sh'), 0o755);
  for (const k of ['full', 'no-restore', 'no-nft', 'no-iptables'] as const) staticDirs[k] = toolDir(join(tmp, `tools-${k}`), k);
  inprocLog = join(tmp, 'inproc.log');
  netns = await createNetns('mjh-fuzz');
});

afterAll(async () => {
  await removeAllNetns();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  const figures = {
    'seed': `0x${SEED.toString(16)}`,
    'cases run in-process (runPlugin + recording Runner)': stats.inproc,
    'cases run through dist/masq-janitor (real process, fake tools, throwaway netns)': stats.binary,
    'distinct expected outcomes covered (verb/why)': stats.expectedClasses.size,
    'commands the Runner received and checked': stats.runnerCalls,
    'iptables-restore inputs checked against the planner grammar': stats.restoreInputs,
    'nft -f inputs checked against the planner grammar': stats.nftInputs,
    'largest stdin (bytes)': stats.biggestStdin,
    'in-process time (s)': (stats.inprocMs / 1000).toFixed(1),
    'binary time (s)': (stats.binaryMs / 1000).toFixed(1),
    'invariant failures': failures.length,
  };
  printFigures('fuzz', figures);
  await recordFigures('fuzz', figures);
});

function summarize(where: Failure['where']): string {
  const mine = failures.filter((f) => f.where === where);
  const byProblem = new Map<string, Failure[]>();
  for (const f of mine) {
    const key = f.problem.replace(/\d+/g, 'N').slice(0, 90);
    byProblem.set(key, [...(byProblem.get(key) ?? []), f]);
  }
  return [...byProblem.entries()]
    .map(([, fs]) => {
      const f = fs[0] as Failure;
      const c = cases[f.id] as CaseDesc;
      const desc = JSON.stringify({ env: c.env, stdin: c.stdin.kind === 'raw' ? c.stdin : { kind: c.stdin.kind }, world: c.world }).slice(0, 600);
      return `${fs.length}x ${f.problem}\n   e.g. case #${f.id} (${f.why}): ${desc}`;
    })
    .join('\n');
}

describe('fuzz: generated bad input', () => {
  it(`${N_INPROC} generated cases in-process: right exit/code, one JSON document, only known commands with grammar-checked stdin`, async () => {
    const t0 = performance.now();
    for (const raw of cases) {
      const c = forInProcess(raw);
      const path = pathFor(c.env.path);
      const env = renderEnv(c.env, path);
      const stdin = renderStdin(c.stdin, inprocLog);
      stats.biggestStdin = Math.max(stats.biggestStdin, stdin.length);
      const { expect: exp, derived } = expected(c, path ?? '', false);
      stats.expectedClasses.add(`${c.env.command ?? '-'}:${exp.why}`);
      const world = worldFor(c, derived);
      const runner = fakeRunner(responder(c, world, derived.effectivePath));
      let timer: NodeJS.Timeout | undefined;
      const out = await Promise.race([
        runPlugin({ env, stdin }, { run: runner, complain: () => {} }),
        new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), RUN_TIMEOUT_MS);
        }),
      ]).catch((e: unknown) => {
        record('in-process', c, exp.why, [`runPlugin threw: ${String((e as Error)?.stack ?? e).slice(0, 400)}`]);
        return null;
      });
      clearTimeout(timer);
      stats.inproc++;
      if (out === null) continue;
      if (out === undefined) {
        record('in-process', c, exp.why, [`hung for ${RUN_TIMEOUT_MS} ms`]);
        continue;
      }
      // MJH_FUZZ_SHOW=<id,id,...>: the whole case, every call and the outcome, for reading a failure.
      if (SHOW.has(c.id)) process.stderr.write(`${JSON.stringify({ case: c, expected: exp, outcome: out, calls: runner.calls }, null, 1)}\n`);
      record('in-process', c, exp.why, outputProblems(c, exp, out.exitCode, out.stdout));
      record('in-process', c, exp.why, callProblems(runner.calls, c, exp, derived));
    }
    stats.inprocMs = performance.now() - t0;
    const mine = failures.filter((f) => f.where === 'in-process');
    expect(mine.length, `in-process invariant failures:\n${summarize('in-process')}`).toBe(0);
    expect(stats.inproc).toBeGreaterThanOrEqual(10_000);
  }, 240_000);

  it('>= 300 of them through the real dist/masq-janitor (fake tools on PATH, inside a throwaway netns)', async () => {
    const picked: CaseDesc[] = [];
    for (let i = 0; i < cases.length; i++) {
      const c = i % BINARY_EVERY === 0 ? forBinary(cases[i] as CaseDesc) : undefined;
      if (c) picked.push(c);
    }
    // Extremes every run must include, whatever the sample holds.
    const extremes = cases.filter((c) => (c.stdin.kind === 'conf' && c.stdin.pad10MB) || c.stdin.kind === 'huge-garbage').slice(0, 4);
    const byVerbEmpty = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'].map((v) => cases.find((c) => c.env.command === v && c.stdin.kind === 'raw' && c.stdin.text === ''));
    for (const c of [...extremes, ...byVerbEmpty]) {
      const b = c ? forBinary(c) : undefined;
      if (b && !picked.includes(b)) picked.push(b);
    }
    const t0 = performance.now();
    await pool(picked, 4, async (c, i) => {
      const dir = toolDir(join(tmp, `run-${i}`), c.env.path === 'none' ? 'none' : c.env.path);
      const path = c.env.path === 'none' ? '/nonexistent-mjh' : dir;
      const logFile = join(dir, 'janitor.log');
      const { expect: exp, derived } = expected(c, path, true);
      const world = worldFor(c, derived);
      writeFileSync(join(dir, 'mode'), c.world.fault);
      writeFileSync(join(dir, 'listing.iptables'), world.listing.iptables);
      writeFileSync(join(dir, 'listing.ip6tables'), world.listing.ip6tables);
      writeFileSync(join(dir, 'save.iptables-save'), world.save.iptables);
      writeFileSync(join(dir, 'save.ip6tables-save'), world.save.ip6tables);
      writeFileSync(join(dir, 'nft.json'), world.nftJson ?? '');
      if (c.world.nsenterIface) writeFileSync(join(dir, 'iface'), '');
      if (c.world.chainExists) writeFileSync(join(dir, 'chain-exists'), '');
      const env = renderEnv(c.env, path);
      const stdin = renderStdin(c.stdin, logFile);
      const r = await run('/usr/sbin/ip', ['netns', 'exec', (netns as Netns).name, NODE, JANITOR], { env, input: stdin, timeoutMs: BINARY_TIMEOUT_MS });
      stats.binary++;
      if (r.timedOut) {
        record('binary', c, exp.why, [`hung: killed after ${BINARY_TIMEOUT_MS} ms`]);
        return;
      }
      if (r.exitCode === undefined) record('binary', c, exp.why, [`died by ${r.signal ?? '?'}: ${r.stderr.slice(0, 300)}`]);
      record('binary', c, exp.why, outputProblems(c, exp, r.exitCode, r.stdout));
      record('binary', c, exp.why, callProblems(loggedCalls(dir), c, exp, derived));
      if (/^\s+at .*\(.*:\d+:\d+\)$/m.test(r.stdout)) record('binary', c, exp.why, ['stack trace on stdout']);
    });
    stats.binaryMs = performance.now() - t0;
    const mine = failures.filter((f) => f.where === 'binary');
    expect(mine.length, `binary invariant failures:\n${summarize('binary')}`).toBe(0);
    expect(stats.binary).toBeGreaterThanOrEqual(300);
  }, 240_000);
});

describe('fuzz: fields the generator keeps apart', () => {
  it('CNI_IFNAME is limited to 15 bytes as libcni counts them, not 15 UTF-16 units: 8 x "ü" (16 bytes) is code 4 on ADD, nothing to remove on DEL (strict too)', async () => {
    // libcni's utils.ValidateInterfaceName refuses it; on DEL an identity we cannot use means touching nothing, never an error.
    const env = { CNI_CONTAINERID: 'default-abc', CNI_IFNAME: 'ü'.repeat(8), CNI_NETNS: '/proc/self/ns/net', PATH: '/nonexistent' };
    const runner = fakeRunner();
    const add = await runPlugin({ env: { ...env, CNI_COMMAND: 'ADD' }, stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'net', prevResult: { cniVersion: '1.0.0' } }) }, { run: runner, complain: () => {} });
    stats.inproc++;
    expect(add.exitCode, add.stdout).toBe(1);
    expect(JSON.parse(add.stdout).code, add.stdout).toBe(4);
    const del = await runPlugin({ env: { ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, stdin: JSON.stringify({ cniVersion: '1.0.0', name: 'net', logFile: inprocLog, strict: true }) }, { run: runner, complain: () => {} });
    stats.inproc++;
    const problems = outputProblems(cases[0] as CaseDesc, { exit: 0, out: 'empty', why: 'ifname over 15 bytes: nothing to remove' }, del.exitCode, del.stdout);
    if (problems.length) failures.push(...problems.map((problem) => ({ where: 'in-process' as const, id: -1, problem, why: 'ifname over 15 bytes' })));
    expect(del).toMatchObject({ exitCode: 0, stdout: '' });
    expect(runner.calls).toEqual([]);
  });

  it('CNI_IFNAME with a double quote (libcni accepts it): bridge strips " from the nft comment\'s fields but hashes the raw name; DEL still removes that interface\'s masq_checks rule', async () => {
    // upstream ipmasq_nftables_linux.go: hashForInstance(net, ifname, id) of the raw fields, then `net: %s, if: %s, id: %s`
    // with '"' removed from each. The fuzz cases with ifname e"th and nftOurs > 0 find the same leak.
    const [network, containerId, ifname] = ['net', 'default-abc', 'e"th'];
    const comment = nftComment(network, ifname, containerId);
    const listing = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6', json_schema_version: 1 } },
        { rule: { family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks', handle: 7, comment, expr: [{ masquerade: null }] } },
      ],
    });
    const runner = fakeRunner((file, args) => {
      if (file === 'nft' && args[0] === '-j') return { stdout: listing };
      if (/^ip6?tables$/.test(file) && args.includes('-S')) return args.at(-1) === 'POSTROUTING' ? { stdout: '-P POSTROUTING ACCEPT\n' } : { exitCode: 1, stderr: 'iptables: No chain/target/match by that name.\n' };
      return {};
    });
    const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: containerId, CNI_IFNAME: ifname, CNI_NETNS: '', PATH: '/nonexistent' };
    const del = await runPlugin({ env, stdin: JSON.stringify({ cniVersion: '1.0.0', name: network, logFile: inprocLog, strict: true }) }, { run: runner, complain: () => {} });
    stats.inproc++;
    expect(del).toMatchObject({ exitCode: 0, stdout: '' });
    const batches = runner.calls.filter((x) => x.file === 'nft' && x.args[0] === '-f').map((x) => x.input);
    expect(batches, `comment ${JSON.stringify(comment)}`).toEqual(['delete rule inet cni_plugins_masquerade masq_checks handle 7\n']);
  });

  it('the root network namespace never saw any of this', async () => {
    expect(await rootMentions()).toEqual([]);
  });
});

describe('fuzz: the checkers have teeth', () => {
  it('reject restore/nft text outside the grammar or beyond the case, and stdout that is not one CNI document', () => {
    const own = new Set(['CNI-0123456789abcdef01234567']);
    const line = '-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j CNI-0123456789abcdef01234567';
    const lines = new Set([line]);
    expect(restoreProblems(`*nat\n:CNI-0123456789abcdef01234567 - [0:0]\n-D ${line.slice(3)}\n-X CNI-0123456789abcdef01234567\nCOMMIT\n`, own, lines)).toEqual([]);
    for (const bad of [
      '*nat\n-D POSTROUTING -s 192.168.77.0/24 -j MASQUERADE\nCOMMIT\n',
      '*nat\n-A INPUT -j ACCEPT\nCOMMIT\n',
      '*filter\n-F\nCOMMIT\n',
      '*nat\nCOMMIT\n*nat\nCOMMIT\n',
      '*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n',
      '*nat\n:CNI-ffffffffffffffffffffffff - [0:0]\nCOMMIT\n',
      '*nat\n-X CNI-0123456789abcdef01234567\n',
    ]) expect(restoreProblems(bad, own, lines), bad).not.toEqual([]);
    expect(nftProblems('delete rule inet cni_plugins_masquerade masq_checks handle 7\n', new Set([7]))).toEqual([]);
    expect(nftProblems('delete rule inet cni_plugins_masquerade masq_checks handle 8\n', new Set([7]))).not.toEqual([]);
    expect(nftProblems('flush table inet cni_plugins_masquerade\n', new Set([7]))).not.toEqual([]);
    const c: CaseDesc = { ...(cases[0] as CaseDesc), stdin: { kind: 'raw', text: '', why: 'self-test' } };
    const err = { exit: 1 as const, code: 7, why: 'x' };
    expect(outputProblems(c, err, 1, '{"cniVersion":"1.0.0","code":7,"msg":"m","details":""}\n')).toEqual([]);
    expect(outputProblems(c, err, 1, '{"level":50,"msg":"x"}\n{"cniVersion":"1.0.0","code":7,"msg":"m","details":""}\n')).not.toEqual([]);
    expect(outputProblems(c, err, 1, 'Error: boom\n    at x (/a.js:1:2)\n')).not.toEqual([]);
    expect(outputProblems(c, err, 1, '{"cniVersion":"1.0.0","code":6,"msg":"m","details":""}\n')).not.toEqual([]);
    expect(outputProblems(c, { exit: 0, out: 'empty', why: 'x' }, 0, '{"level":30}\n')).not.toEqual([]);
  });
});

/** Calls the fake tools logged: argv (NUL-separated, argv[0] = tool name) and stdin. */
function loggedCalls(dir: string): Call[] {
  const callsDir = join(dir, 'calls');
  return readdirSync(callsDir)
    .filter((f) => f.endsWith('.argv'))
    .sort((a, b) => Number(a.split('.')[0]) - Number(b.split('.')[0]))
    .map((f) => {
      const parts = readFileSync(join(callsDir, f), 'utf8').split('\u0000');
      parts.pop();
      const [file, ...args] = parts as [string, ...string[]];
      const input = readFileSync(join(callsDir, f.replace(/\.argv$/, '.stdin')), 'utf8');
      return { file, args, input };
    });
}

// Sanity of the oracle's own world: the fake tools cover exactly what STATUS looks for.
void ALL_TOOLS;
void DEFAULT_PATH;
