import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printFigures, recordFigures } from './support/figures.js';
import { JANITOR } from '../support/guard.js';
import { createNetns, IP, netnsPids, nsExec, nsMust, randomHex, removeAllNetns, removeNetns, type Netns } from '../support/netns.js';
import { NODE, run, sleep, SYSTEM_PATH } from '../support/proc.js';
import { disposeVariantPaths, loadNft, normalizeSave, restore, snapshot, variantPath, type Tables } from '../support/xtables.js';
import { janitor, lineDiff, rootMentions, type JanitorRun } from './support/host.js';
import { bridgeState, chainOf, nftComment } from './support/ref.js';

/**
 * Faults, with the real binary inside throwaway namespaces: tools missing
 * or failing or printing garbage, the xtables lock held, a log file that
 * cannot be written, SIGKILL in the middle of `sweep --apply` and GC, and a
 * corrupt result cache.
 */

const NET = 'mjh-flt';
const CID = `default-${randomHex(8)}`;
const sweepTimes: string[] = [];
const lockTimes: number[] = [];
const figures = { faultsInjected: 0, janitorRuns: 0, killPoints: 0, attachmentsChecked: 0, halfDeleted: 0, foreignTouched: 0, leaksAfterRerun: 0 };
const findings: string[] = [];
let tmp = '';

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mjh-faults-'));
});

afterAll(async () => {
  await removeAllNetns();
  disposeVariantPaths();
  for (const p of started) await stopGroup(p);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  const f = {
    'faults injected': figures.faultsInjected,
    'janitor runs': figures.janitorRuns,
    'SIGKILL points (sweep --apply and GC)': figures.killPoints,
    'attachment states checked after kills': figures.attachmentsChecked,
    'half-deleted attachments found': figures.halfDeleted,
    'foreign or recorded rules touched': figures.foreignTouched,
    'leaks left after the re-run': figures.leaksAfterRerun,
    'DEL under a held xtables lock, lockWait 1 (non-strict, strict), ms': lockTimes.join(', ') || '-',
    'sweep scaling': sweepTimes.join('; ') || '-',
    findings: findings.length ? findings.join('; ') : 'none',
  };
  printFigures('faults', f);
  await recordFigures('faults', f);
});

// ---------------------------------------------------------------- helpers

const started: ResultPromise[] = [];

/** Stop a process group this file started (by its id). */
async function stopGroup(p: ResultPromise): Promise<void> {
  if (p.pid !== undefined && p.exitCode === null) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await p.catch(() => undefined);
}

function script(dir: string, name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

/** A PATH directory holding symlinks to the named real tools, plus optional wrapper scripts. */
function toolDir(name: string, real: readonly string[], wrappers: Record<string, string> = {}): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const t of real) symlinkSync(existsSync(`/usr/sbin/${t}`) ? `/usr/sbin/${t}` : `/usr/bin/${t}`, join(dir, t));
  for (const [t, body] of Object.entries(wrappers)) script(dir, t, body);
  return dir;
}

const IPT = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'];
const ALL = [...IPT, 'nft', 'nsenter', 'ip'];

function conf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: '1.1.0', name: NET, type: 'masq-janitor', lockWait: 5, logLevel: 'info', ...extra });
}

function delEnv(path: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: path, CNI_COMMAND: 'DEL', CNI_CONTAINERID: CID, CNI_NETNS: '', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...extra };
}

function legit(): { v4: string; v6: string; nft: string; lines4: string[]; lines6: string[] } {
  const a4 = bridgeState(4, NET, CID, '10.66.0.2', '10.66.0.0/24');
  const a6 = bridgeState(6, NET, CID, 'fd66::2', 'fd66::/64');
  const other4 = bridgeState(4, NET, 'default-keep', '10.66.0.3', '10.66.0.0/24');
  const text = (a: typeof a4, o: typeof a4, user: string): string =>
    ['*nat', ':KUBE-POSTROUTING - [0:0]', a.declare, o.declare, '-A POSTROUTING -j KUBE-POSTROUTING', user, a.jump, o.jump, ...a.rules, ...o.rules, 'COMMIT', ''].join('\n');
  const c = nftComment(NET, 'eth0', CID);
  return {
    v4: text(a4, other4, '-A POSTROUTING -s 192.168.66.0/24 -j MASQUERADE'),
    v6: ['*nat', a6.declare, a6.jump, ...a6.rules, 'COMMIT', ''].join('\n'),
    nft: `table inet cni_plugins_masquerade {\n chain masq_checks {\n  ip saddr 10.66.0.2 masquerade comment "${c}"\n  ip saddr 10.66.0.3 masquerade comment "${nftComment(NET, 'eth0', 'default-keep')}"\n }\n}\n`,
    lines4: [a4.declare, a4.jump, ...a4.rules].map(normalizeSave),
    lines6: [a6.declare, a6.jump, ...a6.rules].map(normalizeSave),
  };
}

async function resetLegit(ns: Netns, path: string): Promise<Tables> {
  await restore(ns, path, 4, '*nat\nCOMMIT\n', true);
  await restore(ns, path, 6, '*nat\nCOMMIT\n', true);
  await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'cni_plugins_masquerade']);
  const s = legit();
  await restore(ns, path, 4, s.v4);
  await restore(ns, path, 6, s.v6);
  await loadNft(ns, s.nft);
  return snapshot(ns, path);
}

function removedLegit(before: Tables, what: { ipt: boolean; nft: boolean }): Tables {
  const s = legit();
  const drop = (t: string, ls: string[]): string => t.split('\n').filter((l) => !ls.includes(l)).join('\n');
  return {
    v4: what.ipt ? drop(before.v4, s.lines4) : before.v4,
    v6: what.ipt ? drop(before.v6, s.lines6) : before.v6,
    nft: what.nft ? before.nft.split('\n').filter((l) => !l.includes(`"${nftComment(NET, 'eth0', CID)}"`)).join('\n') : before.nft,
  };
}

function expectTables(after: Tables, want: Tables, what: string): void {
  for (const k of ['v4', 'v6', 'nft'] as const) expect(after[k], `${what}: ${k}\n${lineDiff(want[k], after[k])}`).toBe(want[k]);
}

function expectCniError(r: JanitorRun, code: number, what: string): void {
  expect(r.protocolProblems, what).toEqual([]);
  expect(r.exitCode, `${what}: ${r.stdout} ${r.stderr.slice(0, 500)}`).not.toBe(0);
  expect(r.reply?.code, `${what}: ${r.stdout}`).toBe(code);
}

function expectCleanSuccess(r: JanitorRun, what: string): void {
  expect(r.protocolProblems, what).toEqual([]);
  expect([r.exitCode, r.stdout], `${what}: stderr ${r.stderr.slice(0, 500)}`).toEqual([0, '']);
}

// ---------------------------------------------------------------- missing, failing, garbage-printing tools

describe('faults: tools missing, failing or printing garbage (real binary, nft iptables, throwaway netns)', () => {
  let ns: Netns;
  const full = SYSTEM_PATH;
  const logFile = (): string => join(tmp, `log-${randomHex(3)}.log`);

  beforeAll(async () => {
    ns = await createNetns('mjh-flt-tools');
  });
  afterAll(async () => {
    if (ns) await removeNetns(ns);
  });

  interface ToolCase {
    readonly name: string;
    readonly dir: () => string;
    /** What a non-strict DEL must leave: iptables state removed? nft state removed? */
    readonly removes: { ipt: boolean; nft: boolean };
    /** CNI code a strict DEL must return (0: success). */
    readonly strictCode: number;
    /** Text the non-strict DEL must have logged at error level (it never shows on stdout). */
    readonly logs: RegExp | undefined;
  }

  const GARBAGE = "echo '\\x1b[31m{{{ garbage <<<' ; echo 'Segmentation fault (core dumped)' >&2";
  const CASES: ToolCase[] = [
    {
      name: 'iptables-restore and ip6tables-restore missing from PATH',
      dir: () => toolDir(`no-restore-${randomHex(2)}`, ALL.filter((t) => !t.endsWith('-restore'))),
      removes: { ipt: false, nft: true },
      strictCode: 5,
      logs: /not found on PATH/,
    },
    {
      name: 'nft missing from PATH',
      dir: () => toolDir(`no-nft-${randomHex(2)}`, ALL.filter((t) => t !== 'nft')),
      removes: { ipt: true, nft: false },
      strictCode: 0,
      logs: undefined,
    },
    {
      // One transaction per table or nothing: no command-by-command fallback that could leave half an attachment.
      name: 'iptables-restore exits 1 printing garbage (the table is left whole, for the next DEL or sweep)',
      dir: () => toolDir(`restore-fails-${randomHex(2)}`, ALL.filter((t) => !t.endsWith('-restore')), { 'iptables-restore': `cat >/dev/null; ${GARBAGE}; exit 1`, 'ip6tables-restore': `cat >/dev/null; ${GARBAGE}; exit 1` }),
      removes: { ipt: false, nft: true },
      strictCode: 5,
      logs: /exit 1/,
    },
    {
      name: 'iptables-restore and every changing iptables command exit 1 printing garbage',
      dir: () =>
        toolDir(`all-fail-${randomHex(2)}`, ALL.filter((t) => !t.endsWith('-restore') && t !== 'iptables' && t !== 'ip6tables'), {
          'iptables-restore': `cat >/dev/null; ${GARBAGE}; exit 1`,
          'ip6tables-restore': `cat >/dev/null; ${GARBAGE}; exit 1`,
          iptables: `case " $* " in *" -S "*) exec /usr/sbin/iptables "$@";; esac; ${GARBAGE}; exit 1`,
          ip6tables: `case " $* " in *" -S "*) exec /usr/sbin/ip6tables "$@";; esac; ${GARBAGE}; exit 1`,
        }),
      removes: { ipt: false, nft: true },
      strictCode: 5,
      logs: /exit 1/,
    },
    {
      name: 'nft prints garbage instead of its JSON listing',
      dir: () => toolDir(`nft-garbage-${randomHex(2)}`, ALL.filter((t) => t !== 'nft'), { nft: `if [ "$1" = -j ]; then ${GARBAGE}; exit 0; fi; exec /usr/sbin/nft "$@"` }),
      removes: { ipt: true, nft: false },
      strictCode: 5,
      logs: /unreadable JSON/,
    },
    {
      name: 'nft -f exits 1 printing garbage',
      dir: () => toolDir(`nft-fails-${randomHex(2)}`, ALL.filter((t) => t !== 'nft'), { nft: `if [ "$1" = -f ]; then cat >/dev/null; ${GARBAGE}; exit 1; fi; exec /usr/sbin/nft "$@"` }),
      removes: { ipt: true, nft: false },
      strictCode: 5,
      logs: /nft -f: exit 1/,
    },
    {
      name: 'nft -j list exits 1 with an unexpected error',
      dir: () => toolDir(`nft-list-fails-${randomHex(2)}`, ALL.filter((t) => t !== 'nft'), { nft: `if [ "$1" = -j ]; then echo 'Error: Could not receive chains from kernel: Operation not permitted' >&2; exit 1; fi; exec /usr/sbin/nft "$@"` }),
      removes: { ipt: true, nft: false },
      strictCode: 5,
      logs: /Operation not permitted/,
    },
  ];

  for (const c of CASES) {
    it(`${c.name}: DEL non-strict logs and exits 0, strict returns ${c.strictCode === 0 ? 'success' : `code ${c.strictCode}`}; stdout stays clean`, async () => {
      const dir = c.dir();
      // Non-strict.
      let before = await resetLegit(ns, full);
      const log = logFile();
      const r = await janitor(ns, delEnv(dir), conf({ logFile: log }));
      figures.faultsInjected++;
      figures.janitorRuns++;
      expectCleanSuccess(r, c.name);
      expectTables(await snapshot(ns, full), removedLegit(before, c.removes), `${c.name}, non-strict`);
      const logged = existsSync(log) ? readFileSync(log, 'utf8') : '';
      if (c.logs) {
        expect(logged, 'the failure is logged at error level').toMatch(/"level":50/);
        expect(logged).toMatch(c.logs);
      }
      // Strict.
      before = await resetLegit(ns, full);
      const s = await janitor(ns, delEnv(dir), conf({ logFile: logFile(), strict: true }));
      figures.janitorRuns++;
      if (c.strictCode === 0) expectCleanSuccess(s, `${c.name}, strict`);
      else expectCniError(s, c.strictCode, `${c.name}, strict`);
      expectTables(await snapshot(ns, full), removedLegit(before, c.removes), `${c.name}, strict`);
    }, 60_000);
  }

  it('STATUS is code 50 naming iptables-restore when it is missing, and names every missing tool', async () => {
    const noRestore = toolDir(`status-no-restore-${randomHex(2)}`, ALL.filter((t) => !t.endsWith('-restore')));
    const r = await janitor(ns, { PATH: noRestore, CNI_COMMAND: 'STATUS' }, conf());
    figures.faultsInjected++;
    figures.janitorRuns++;
    expectCniError(r, 50, 'STATUS without iptables-restore');
    expect(String(r.reply?.msg)).toContain('iptables-restore');
    expect(String(r.reply?.msg)).toContain('ip6tables-restore');
    const bare = toolDir(`status-bare-${randomHex(2)}`, ['nft']);
    const b = await janitor(ns, { PATH: bare, CNI_COMMAND: 'STATUS' }, conf());
    figures.janitorRuns++;
    expectCniError(b, 50, 'STATUS with nothing but nft');
    for (const t of ['iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'nsenter', 'ip']) expect(String(b.reply?.msg)).toContain(t);
    const ok = await janitor(ns, { PATH: full, CNI_COMMAND: 'STATUS' }, conf());
    figures.janitorRuns++;
    expectCleanSuccess(ok, 'STATUS with every tool');
  }, 30_000);

  it('STATUS with only nft missing stays ready: nft is optional (nft-backend rules can only exist where nft is installed)', async () => {
    const noNft = toolDir(`status-no-nft-${randomHex(2)}`, ALL.filter((t) => t !== 'nft'));
    const r = await janitor(ns, { PATH: noNft, CNI_COMMAND: 'STATUS' }, conf());
    figures.faultsInjected++;
    figures.janitorRuns++;
    expectCleanSuccess(r, 'STATUS without nft');
  }, 30_000);

  // ------------------------------------------------------------ log file problems

  const LOG_CASES: [string, () => string][] = [
    ['its directory is missing', () => join(tmp, 'no-such-dir', 'janitor.log')],
    ['its parent is a regular file', () => {
      writeFileSync(join(tmp, 'a-file'), '');
      return join(tmp, 'a-file', 'janitor.log');
    }],
    ['it is a directory', () => tmp],
    ['the device is full (/dev/full)', () => '/dev/full'],
    ['it is read-only procfs (/proc/version)', () => '/proc/version'],
  ];
  for (const [what, file] of LOG_CASES) {
    it(`log file unwritable (${what}): DEL still cleans up, says so on stderr, stdout stays clean`, async () => {
      const before = await resetLegit(ns, full);
      const r = await janitor(ns, delEnv(full), conf({ logFile: file(), logLevel: 'debug' }), 20_000);
      figures.faultsInjected++;
      figures.janitorRuns++;
      expectCleanSuccess(r, what);
      expect(r.stderr, 'the logging problem is reported on stderr').toMatch(/masq-janitor: (cannot write log file|not logging to|logging failed)/);
      expectTables(await snapshot(ns, full), removedLegit(before, { ipt: true, nft: true }), what);
    }, 30_000);
  }

  it('log file is /dev/stdout (or /proc/self/fd/1), stdout a real pipe as Go runtimes give it: log lines must not reach stdout', async () => {
    // execa hands children a socket, which /dev/stdout cannot reopen (ENXIO); libcni (os/exec) uses a pipe, which it can.
    const problems: string[] = [];
    for (const file of ['/dev/stdout', '/proc/self/fd/1']) {
      await resetLegit(ns, full);
      const env = delEnv(full);
      const r = await run('/bin/sh', ['-c', '"$@" | /usr/bin/cat', 'sh', IP, 'netns', 'exec', ns.name, NODE, JANITOR], { env, input: conf({ logFile: file, logLevel: 'info', strict: true }), timeoutMs: 20_000 });
      figures.faultsInjected++;
      figures.janitorRuns++;
      if (r.stdout !== '') problems.push(`logFile ${file}: stdout ${JSON.stringify(r.stdout.slice(0, 300))}`);
    }
    if (problems.length) findings.push('logFile=/dev/stdout puts log lines on the CNI stdout');
    expect(problems, problems.join('\n')).toEqual([]);
  }, 30_000);

  it('log file is a FIFO nobody reads: DEL must not hang', async () => {
    const fifo = join(tmp, 'log.fifo');
    await run('/usr/bin/mkfifo', [fifo]);
    await resetLegit(ns, full);
    const t0 = Date.now();
    const r = await janitor(ns, delEnv(full), conf({ logFile: fifo, logLevel: 'info' }), 6_000);
    figures.faultsInjected++;
    figures.janitorRuns++;
    if (r.timedOut) findings.push('logFile on a FIFO without reader hangs DEL');
    expect(r.timedOut, `DEL still running after ${Date.now() - t0} ms (killed): opening the log file blocks`).toBe(false);
    expectCleanSuccess(r, 'FIFO log');
  }, 30_000);
});

// ---------------------------------------------------------------- the xtables lock

describe('faults: the xtables lock held by another process (legacy iptables, XTABLES_LOCKFILE)', () => {
  let ns: Netns;
  let path = '';
  let lockFile = '';
  let holder: ResultPromise | undefined;

  beforeAll(async () => {
    ns = await createNetns('mjh-flt-lock');
    path = variantPath('legacy');
    lockFile = join(tmp, 'xtables.lock');
    writeFileSync(lockFile, '');
    expect(await nsMust(ns, 'iptables', ['--version'], { env: { PATH: path } })).toContain('legacy');
  });
  afterAll(async () => {
    if (holder) await stopGroup(holder);
    if (ns) await removeNetns(ns);
  });

  async function hold(): Promise<void> {
    holder = execa('/usr/bin/flock', [lockFile, '/usr/bin/sleep', '60'], { detached: true, reject: false, stdio: 'ignore' });
    started.push(holder);
    for (let i = 0; i < 100; i++) {
      const probe = await run('/usr/bin/flock', ['-n', lockFile, '/usr/bin/true']);
      if (probe.exitCode !== 0) return;
      await sleep(20);
    }
    throw new Error('could not take the lock');
  }

  it('DEL with lockWait 1 returns within the wait plus a small margin: exit 0 non-strict, code 11 strict; nothing changes', async () => {
    const before = await resetLegit(ns, path);
    await hold();
    const env = { ...delEnv(path), XTABLES_LOCKFILE: lockFile };
    const t0 = performance.now();
    const r = await janitor(ns, env, conf({ lockWait: 1, logFile: join(tmp, 'lock.log') }));
    const ms = performance.now() - t0;
    figures.faultsInjected++;
    figures.janitorRuns++;
    expectCleanSuccess(r, 'non-strict DEL under a held lock');
    lockTimes.push(Math.round(ms));
    expect(ms, 'waited for the lock').toBeGreaterThanOrEqual(950);
    expect(ms, 'returned within lockWait + margin').toBeLessThan(1000 + 2500);
    expect(readFileSync(join(tmp, 'lock.log'), 'utf8')).toMatch(/xtables lock/);
    const t1 = performance.now();
    const s = await janitor(ns, env, conf({ lockWait: 1, strict: true }));
    const ms2 = performance.now() - t1;
    figures.janitorRuns++;
    expectCniError(s, 11, 'strict DEL under a held lock');
    lockTimes.push(Math.round(ms2));
    expect(ms2).toBeLessThan(1000 + 2500);
    const after = await snapshot(ns, path);
    // The nft backend has no lock: its rule goes; the iptables state waits for the next DEL.
    expectTables(after, removedLegit(before, { ipt: false, nft: true }), 'tables under a held lock');
    // GC (cniVersion 1.1.0) under the lock: like DEL, exit 0 unless strict, then code 11 (the other container is valid; ours is due).
    const gcEnv = { PATH: path, CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin', XTABLES_LOCKFILE: lockFile };
    const valid = { 'cni.dev/valid-attachments': [{ containerID: 'default-keep', ifname: 'eth0' }] };
    const gc = await janitor(ns, gcEnv, conf({ lockWait: 1, ...valid }));
    figures.janitorRuns++;
    expectCleanSuccess(gc, 'GC under a held lock, non-strict');
    const gcStrict = await janitor(ns, gcEnv, conf({ lockWait: 1, strict: true, ...valid }));
    figures.janitorRuns++;
    expectCniError(gcStrict, 11, 'strict GC under a held lock');
    // Lock released: the next DEL finishes the job.
    if (holder) await stopGroup(holder);
    holder = undefined;
    const again = await janitor(ns, env, conf({ lockWait: 1, strict: true }));
    figures.janitorRuns++;
    expectCleanSuccess(again, 'DEL after the lock is released');
    expectTables(await snapshot(ns, path), removedLegit(before, { ipt: true, nft: true }), 'after release');
  }, 60_000);
});

// ---------------------------------------------------------------- SIGKILL in the middle of sweep --apply and GC

/** Attachments planted per table. */
const N_LEAK = 3000;
const N_LIVE = 12;

interface Planted {
  readonly network: string;
  readonly cid: string;
  readonly ip4: string;
  readonly ip6: string;
  /** nft backend rules of this attachment (1: v4 only, 2: dual-stack). */
  readonly nftRules: 1 | 2;
  readonly live: boolean;
}

function plant(network: string, prefix: string, n: number, live: boolean, base: number): Planted[] {
  return Array.from({ length: n }, (_, i) => {
    const k = base + i;
    return { network, cid: `${prefix}-${i}`, ip4: `10.${100 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`, ip6: `fd00:100::${k.toString(16)}`, nftRules: i === 0 ? 1 : 2, live };
  });
}

function iptablesLoad(all: readonly Planted[]): string {
  const declares: string[] = [':KUBE-POSTROUTING - [0:0]', ':DOCKER - [0:0]'];
  const rules: string[] = ['-A POSTROUTING -j KUBE-POSTROUTING', '-A POSTROUTING -s 192.168.99.0/24 -j MASQUERADE', '-A DOCKER -i docker0 -j RETURN', '-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE'];
  for (const a of all) {
    const s = bridgeState(4, a.network, a.cid, a.ip4, '10.100.0.0/14');
    declares.push(s.declare);
    rules.push(s.jump, ...s.rules);
  }
  return ['*nat', ...declares, ...rules, 'COMMIT', ''].join('\n');
}

function nftLoad(all: readonly Planted[]): string {
  const lines = ['table inet cni_plugins_masquerade {', ' chain postrouting {', '  type nat hook postrouting priority srcnat; policy accept;', '  jump masq_checks', ' }', ' chain masq_checks {', '  ip saddr 192.168.99.7 masquerade comment "user rule"'];
  for (const a of all) {
    const c = nftComment(a.network, 'eth0', a.cid);
    lines.push(`  ip saddr ${a.ip4} ip daddr != 10.100.0.0/14 masquerade comment "${c}"`);
    if (a.nftRules === 2) lines.push(`  ip6 saddr ${a.ip6} ip6 daddr != fd00:100::/64 masquerade comment "${c}"`);
  }
  lines.push(' }', '}', '');
  return lines.join('\n');
}

type PartState = 'present' | 'absent' | 'half';

interface Census {
  /** attachment key -> state per place */
  readonly states: Map<string, Record<'legacy' | 'nft-variant' | 'nft', PartState>>;
  readonly foreignOk: boolean;
  readonly foreignMissing: string[];
}

function iptablesState(text: string, a: Planted): PartState {
  const chain = chainOf(a.network, a.cid);
  const declared = text.includes(`\n:${chain} -`);
  const rules = (text.match(new RegExp(`\\n-A ${chain} `, 'g')) ?? []).length;
  const jump = text.includes(` -j ${chain}\n`) || text.endsWith(` -j ${chain}`);
  if (declared && rules === 2 && jump) return 'present';
  if (!declared && rules === 0 && !jump) return 'absent';
  return 'half';
}

async function census(ns: Netns, all: readonly Planted[], withNft: boolean): Promise<Census> {
  const [legacy, nftv, nftJson] = await Promise.all([
    nsMust(ns, 'iptables-legacy-save', ['-t', 'nat']),
    nsMust(ns, 'iptables-nft-save', ['-t', 'nat']),
    withNft ? nsMust(ns, 'nft', ['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']) : Promise.resolve('{"nftables":[]}'),
  ]);
  const L = '\n' + normalizeSave(legacy);
  const V = '\n' + normalizeSave(nftv);
  const counts = new Map<string, number>();
  for (const item of (JSON.parse(nftJson) as { nftables: { rule?: { comment?: string } }[] }).nftables) {
    const c = item.rule?.comment;
    if (c !== undefined) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const states = new Map<string, Record<'legacy' | 'nft-variant' | 'nft', PartState>>();
  for (const a of all) {
    const n = counts.get(nftComment(a.network, 'eth0', a.cid)) ?? 0;
    states.set(`${a.network}/${a.cid}`, {
      legacy: iptablesState(L, a),
      'nft-variant': iptablesState(V, a),
      nft: !withNft ? 'absent' : n === a.nftRules ? 'present' : n === 0 ? 'absent' : 'half',
    });
  }
  const foreign = ['-A POSTROUTING -j KUBE-POSTROUTING', '-A POSTROUTING -s 192.168.99.0/24 -j MASQUERADE', '-A DOCKER -i docker0 -j RETURN', '-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE'];
  const missing = [...foreign.filter((f) => !L.includes(`\n${f}\n`)).map((f) => `legacy: ${f}`), ...foreign.filter((f) => !V.includes(`\n${f}\n`)).map((f) => `nft variant: ${f}`)];
  if (withNft && !(counts.get('user rule') === 1)) missing.push('nft: user rule');
  return { states, foreignOk: missing.length === 0, foreignMissing: missing };
}

/**
 * A PATH directory in front of the system one whose restore/nft wrappers can
 * SIGKILL the janitor at an exact transaction: `before` (the real tool then
 * reads whatever part of its input had been written), `after` (the
 * transaction completed), or `fail` (the tool exits 1 without applying).
 */
const HOOK = `n=\${0##*/}; d=\${0%/*}
if [ "$n" = nft ] && [ "$1" != -f ]; then exec /usr/sbin/nft "$@"; fi
c=$(cat "$d/count.$n" 2>/dev/null || echo 0); c=$((c+1)); echo "$c" > "$d/count.$n"
at=""; when=""
[ -f "$d/kill.$n" ] && read at when < "$d/kill.$n"
if [ "$c" = "$at" ]; then
  case "$when" in
    before) kill -9 "$PPID"; exec "/usr/sbin/$n" "$@";;
    after) "/usr/sbin/$n" "$@"; rc=$?; kill -9 "$PPID"; exit $rc;;
    fail) cat >/dev/null; echo "$n: injected failure" >&2; exit 1;;
  esac
fi
exec "/usr/sbin/$n" "$@"`;

const HOOKED = ['iptables-legacy-restore', 'iptables-nft-restore', 'ip6tables-legacy-restore', 'ip6tables-nft-restore', 'nft'];

describe('faults: SIGKILL in the middle of sweep --apply and of GC', () => {
  let ns: Netns;
  let hookDir = '';
  let stateDir = '';
  /** GC: 3,000 leaked attachments of one network in iptables-legacy, iptables-nft and the nft backend, the first single-stack. */
  const gcLeaked = plant('mjh-gc', 'leak', N_LEAK, false, 0);
  const gcLive = plant('mjh-gc', 'live', N_LIVE, true, 40_000);
  const gcAll = [...gcLeaked, ...gcLive];
  /** sweep: 1,500 per iptables table (3,000 chains in legacy + nft) and 1,500 in the nft backend (its report step is quadratic, see below). */
  const swLeaked = plant('mjh-sweep', 'leak', N_LEAK / 2, false, 0);
  const swLive = plant('mjh-sweep', 'live', N_LIVE, true, 40_000);
  const swAll = [...swLeaked, ...swLive];

  beforeAll(async () => {
    ns = await createNetns('mjh-flt-kill');
    hookDir = join(tmp, 'hooks');
    mkdirSync(hookDir);
    for (const h of HOOKED) script(hookDir, h, HOOK);
    stateDir = join(tmp, 'cni-state');
    mkdirSync(join(stateDir, 'results'), { recursive: true });
    for (const a of swLive) {
      writeFileSync(join(stateDir, 'results', `${a.network}-${a.cid}-eth0`), JSON.stringify({ kind: 'cniCacheV1', containerId: a.cid, networkName: a.network, ifName: 'eth0', config: 'e30=', result: {} }));
    }
  });
  afterAll(async () => {
    for (const c of children) {
      if (c.pid !== undefined && c.exitCode === null) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    if (ns) await removeNetns(ns);
  });

  async function load(set: readonly Planted[]): Promise<void> {
    const text = iptablesLoad(set);
    await nsMust(ns, 'iptables-legacy-restore', ['-w', '5'], { input: text });
    await nsMust(ns, 'iptables-nft-restore', ['-w', '5'], { input: text });
    await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'cni_plugins_masquerade']);
    await loadNft(ns, nftLoad(set));
  }

  function disarm(): void {
    for (const h of HOOKED) {
      rmSync(join(hookDir, `count.${h}`), { force: true });
      rmSync(join(hookDir, `kill.${h}`), { force: true });
    }
  }

  function arm(tool: string, at: number, when: 'before' | 'after' | 'fail'): void {
    disarm();
    writeFileSync(join(hookDir, `kill.${tool}`), `${at} ${when}\n`);
  }

  const children: ResultPromise[] = [];

  /** Start the janitor; SIGKILL it after `ms` (timer kill point) unless undefined; wait for its orphans. */
  async function runKilled(args: readonly string[], env: Record<string, string>, input: string, ms: number | undefined): Promise<{ exitCode: number | undefined; killed: boolean; stderr: string; stdout: string; ms: number }> {
    const t0 = performance.now();
    const child = execa(IP, ['netns', 'exec', ns.name, NODE, JANITOR, ...args], { env, extendEnv: false, input, reject: false, timeout: 150_000, killSignal: 'SIGKILL' });
    children.push(child);
    let timer: NodeJS.Timeout | undefined;
    if (ms !== undefined) {
      timer = setTimeout(() => {
        if (child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // finished already
          }
        }
      }, ms);
    }
    const r = await child;
    clearTimeout(timer);
    const took = performance.now() - t0;
    // Orphaned iptables-restore / nft children finish (or fail) on their own: wait until the namespace is quiet.
    for (let i = 0; i < 600 && (await netnsPids(ns)).length > 0; i++) await sleep(50);
    return { exitCode: r.exitCode, killed: r.signal === 'SIGKILL', stderr: String(r.stderr ?? ''), stdout: String(r.stdout ?? ''), ms: took };
  }

  function check(all: readonly Planted[], c: Census, point: string, expectLiveOnly: boolean): string[] {
    const problems: string[] = [];
    let half = 0;
    for (const a of all) {
      const s = c.states.get(`${a.network}/${a.cid}`);
      if (!s) continue;
      figures.attachmentsChecked++;
      for (const [place, st] of Object.entries(s)) {
        if (st === 'half') {
          half++;
          if (half <= 3) problems.push(`${point}: ${a.network}/${a.cid} half-deleted in ${place}`);
        }
        if (a.live && st !== 'present') {
          figures.foreignTouched++;
          problems.push(`${point}: recorded/valid attachment ${a.cid} is ${st} in ${place}`);
        }
        if (expectLiveOnly && !a.live && st !== 'absent') {
          figures.leaksAfterRerun++;
          if (problems.length < 20) problems.push(`${point}: leaked ${a.cid} still ${st} in ${place} after the re-run`);
        }
      }
    }
    figures.halfDeleted += half;
    if (half > 3) problems.push(`${point}: ${half} half-deleted attachments in all`);
    if (!c.foreignOk) {
      figures.foreignTouched += c.foreignMissing.length;
      problems.push(`${point}: foreign rules gone: ${c.foreignMissing.join(', ')}`);
    }
    return problems;
  }

  const hookedPath = (): string => `${hookDir}:${SYSTEM_PATH}`;
  const gcEnv = (): Record<string, string> => ({ PATH: hookedPath(), CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' });
  const gcConf = JSON.stringify({ cniVersion: '1.1.0', name: 'mjh-gc', type: 'masq-janitor', 'cni.dev/valid-attachments': gcLive.map((a) => ({ containerID: a.cid, ifname: 'eth0' })) });

  type Point = readonly [name: string, setup: () => void, ms: number | undefined];

  /** Load everything, kill at `point`, check all-or-nothing; re-run unkilled, check only the valid/recorded remain. */
  async function gcKillPoint([name, setup, ms]: Point): Promise<string[]> {
    await load(gcAll);
    setup();
    const r = await runKilled([], gcEnv(), gcConf, ms);
    figures.killPoints++;
    figures.faultsInjected++;
    const problems = check(gcAll, await census(ns, gcAll, true), name, false);
    if (ms === undefined && !r.killed) problems.push(`${name}: the kill hook did not fire (exit ${r.exitCode}, ${r.stdout} ${r.stderr.slice(0, 300)})`);
    disarm();
    const again = await runKilled([], gcEnv(), gcConf, undefined);
    figures.janitorRuns += 2;
    if (again.exitCode !== 0) problems.push(`${name}: re-run exit ${again.exitCode}: ${again.stdout} ${again.stderr.slice(0, 300)}`);
    problems.push(...check(gcAll, await census(ns, gcAll, true), `${name}, re-run`, true));
    return problems;
  }

  it('GC (3,000 leaked attachments per table) SIGKILLed at timer and iptables transaction kill points: all-or-nothing per attachment; a re-run finishes; valid attachments stay', async () => {
    const points: Point[] = [
      ['GC, timer 100 ms', disarm, 100],
      ['GC, timer 250 ms', disarm, 250],
      ['GC, timer 600 ms', disarm, 600],
      ['GC, iptables-legacy-restore: parent SIGKILLed while the input was being written', () => arm('iptables-legacy-restore', 1, 'before'), undefined],
      ['GC, iptables-nft-restore transaction 1 of 3 completed, then SIGKILL', () => arm('iptables-nft-restore', 1, 'after'), undefined],
      ['GC, iptables-nft-restore transaction 2: parent SIGKILLed while the input was being written', () => arm('iptables-nft-restore', 2, 'before'), undefined],
    ];
    const problems: string[] = [];
    for (const p of points) problems.push(...(await gcKillPoint(p)));
    expect(problems, problems.join('\n')).toEqual([]);
  }, 150_000);

  it('GC SIGKILLed between or during nft-backend transactions (5,999 rules, more than one 5,000-rule batch): no attachment half-deleted', async () => {
    const points: Point[] = [
      ['GC, nft -f batch 1 completed, then SIGKILL (before batch 2)', () => arm('nft', 1, 'after'), undefined],
      ['GC, nft -f batch 2 fails', () => arm('nft', 2, 'fail'), undefined],
      ['GC, nft -f batch 1: parent SIGKILLed while the batch was being written', () => arm('nft', 1, 'before'), undefined],
    ];
    const problems: string[] = [];
    for (const p of points) {
      const found = await gcKillPoint(p);
      // 'fail' does not kill; the hook check above expects a kill for hooked points.
      problems.push(...found.filter((f) => !(p[0].includes('fails') && f.includes('did not fire'))));
    }
    if (problems.some((p) => p.includes('half-deleted in nft'))) findings.push('nft batches split one attachment across transactions (GC/sweep)');
    expect(problems, problems.join('\n')).toEqual([]);
  }, 120_000);

  it('sweep --apply (3,000 leaked chains in iptables-legacy + iptables-nft, 1,500 in nft) SIGKILLed at several points: all-or-nothing per attachment; a re-run finishes the job', async () => {
    const args = ['sweep', '--apply', '--state-dir', stateDir];
    const env = { PATH: hookedPath() };
    await load(swAll);
    const start = await census(ns, swAll, true);
    expect(check(swAll, start, 'after load', false)).toEqual([]);
    const problems: string[] = [];
    // One load, successive kills: each run starts from what the previous one left.
    const points: Point[] = [
      ['sweep, timer 250 ms', disarm, 250],
      ['sweep, iptables-nft-restore transaction 1 of 2 completed, then SIGKILL', () => arm('iptables-nft-restore', 1, 'after'), undefined],
      ['sweep, iptables-legacy-restore: parent SIGKILLed while the input was being written', () => arm('iptables-legacy-restore', 1, 'before'), undefined],
      ['sweep, nft -f: parent SIGKILLed while the batch was being written', () => arm('nft', 1, 'before'), undefined],
    ];
    for (const [name, setup, ms] of points) {
      setup();
      const r = await runKilled(args, env, '', ms);
      figures.killPoints++;
      figures.faultsInjected++;
      figures.janitorRuns++;
      problems.push(...check(swAll, await census(ns, swAll, true), name, false));
      if (ms === undefined && !r.killed && r.exitCode !== 0) problems.push(`${name}: exit ${r.exitCode}: ${r.stderr.slice(0, 300)}`);
    }
    disarm();
    const again = await runKilled(args, env, '', undefined);
    figures.janitorRuns++;
    if (again.exitCode !== 0) problems.push(`sweep re-run exit ${again.exitCode}: ${again.stderr.slice(0, 400)}`);
    problems.push(...check(swAll, await census(ns, swAll, true), 'sweep re-run', true));
    expect(problems, problems.join('\n')).toEqual([]);
  }, 150_000);

  it('sweep time grows linearly with the number of leaked attachments (300 vs 1,200 in one table)', async () => {
    const times: number[] = [];
    for (const n of [300, 1200]) {
      const set = plant('mjh-scale', 'leak', n, false, 0);
      await nsMust(ns, 'iptables-legacy-restore', ['-w', '5'], { input: iptablesLoad(set) });
      await nsMust(ns, 'iptables-nft-restore', ['-w', '5'], { input: '*nat\nCOMMIT\n' });
      await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'cni_plugins_masquerade']);
      disarm();
      const r = await runKilled(['sweep', '--state-dir', stateDir], { PATH: SYSTEM_PATH }, '', undefined);
      figures.janitorRuns++;
      expect(r.exitCode, r.stderr).toBe(1); // dry run: orphans found
      times.push(r.ms);
    }
    const [t300, t1200] = times as [number, number];
    sweepTimes.push(`sweep dry run, one table: 300 leaked ${(t300 / 1000).toFixed(2)} s, 1,200 leaked ${(t1200 / 1000).toFixed(2)} s`);
    if (t1200 / t300 > 6) findings.push(`sweep is quadratic (x${(t1200 / t300).toFixed(1)} time for x4 attachments)`);
    expect(t1200 / t300, `4x the attachments took ${(t1200 / t300).toFixed(1)}x the time (${t300.toFixed(0)} ms -> ${t1200.toFixed(0)} ms): quadratic`).toBeLessThan(6);
  }, 90_000);

  // -------------------------------------------------------------- corrupt result cache

  it('a corrupt or truncated result cache file: the attachment it may name is kept, and the file is named on stderr', async () => {
    const dir = join(tmp, 'state-corrupt');
    mkdirSync(join(dir, 'results'), { recursive: true });
    const net = 'mjh-cache';
    const ids = { ok: 'ok-1', garbage: 'garbage-1', truncated: 'trunc-1', empty: 'empty-1', notCache: 'notcache-1', isDir: 'dir-1', orphan: 'orphan-1' };
    const cache = (cid: string): string => JSON.stringify({ kind: 'cniCacheV1', containerId: cid, networkName: net, ifName: 'eth0', config: 'e30=', result: { cniVersion: '1.0.0' } });
    const file = (cid: string): string => join(dir, 'results', `${net}-${cid}-eth0`);
    writeFileSync(file(ids.ok), cache(ids.ok));
    writeFileSync(file(ids.garbage), '\u0000\u0001garbage{{{');
    writeFileSync(file(ids.truncated), cache(ids.truncated).slice(0, 40));
    writeFileSync(file(ids.empty), '');
    writeFileSync(file(ids.notCache), JSON.stringify({ kind: 'somethingElse', containerId: ids.notCache }));
    mkdirSync(file(ids.isDir));
    const set = Object.values(ids).map((cid, i): Planted => ({ network: net, cid, ip4: `10.103.0.${i + 2}`, ip6: `fd00:103::${i + 2}`, nftRules: 2, live: cid !== ids.orphan }));
    await nsMust(ns, 'iptables-legacy-restore', ['-w', '5'], { input: iptablesLoad(set) });
    await nsMust(ns, 'iptables-nft-restore', ['-w', '5'], { input: iptablesLoad(set) });
    await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'cni_plugins_masquerade']);
    await loadNft(ns, nftLoad(set));
    disarm();
    const r = await runKilled(['sweep', '--apply', '--state-dir', dir], { PATH: SYSTEM_PATH }, '', undefined);
    figures.faultsInjected += 5;
    figures.janitorRuns++;
    const c = await census(ns, set, true);
    const problems: string[] = [];
    void check;
    for (const a of set) {
      const s = c.states.get(`${a.network}/${a.cid}`);
      figures.attachmentsChecked++;
      for (const [place, st] of Object.entries(s ?? {})) {
        if (a.live && st !== 'present') problems.push(`${a.cid}: ${st} in ${place}, but a cache file (readable or not) may name it`);
        if (!a.live && st !== 'absent') problems.push(`${a.cid}: orphan still ${st} in ${place}`);
      }
    }
    for (const cid of [ids.garbage, ids.truncated, ids.empty, ids.notCache, ids.isDir]) {
      if (!r.stderr.includes(`${net}-${cid}-eth0`)) problems.push(`stderr does not name the unreadable ${net}-${cid}-eth0`);
    }
    expect(r.exitCode, r.stderr).toBe(0);
    expect(problems, `${problems.join('\n')}\n--- stderr\n${r.stderr}`).toEqual([]);
  }, 60_000);
});

describe('root namespace', () => {
  it('the root network namespace never saw any of this', async () => {
    expect(await rootMentions()).toEqual([]);
  });
});
