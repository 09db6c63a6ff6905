import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mustRun, run, SYSTEM_PATH, type ProcOptions, type ProcResult } from './proc.js';

/**
 * Throwaway named network namespaces (`ip netns add`), the only place the
 * root suites change any table. Each suite names its own with a prefix
 * (`mjt-`, `mjh-`, `mjbe-`) plus a random part, so concurrent runs never
 * collide. Every namespace this process creates is remembered until it is
 * removed: afterAll removes leftovers even when a test failed half-way, and,
 * as a last resort, so does the worker's exit.
 */

export const IP = '/usr/sbin/ip';
export const NETNS_DIR = '/var/run/netns';

export interface Netns {
  readonly name: string;
  /** The bind mount runtimes pass as CNI_NETNS. */
  readonly path: string;
}

const alive = new Set<string>();

export const randomHex = (bytes: number): string => randomBytes(bytes).toString('hex');

const netnsNamed = (name: string): Netns => ({ name, path: `${NETNS_DIR}/${name}` });

// Last resort if afterAll never ran (a worker killed by a timeout): synchronous, so it works in 'exit'.
process.on('exit', () => {
  for (const name of alive) {
    try {
      execFileSync(IP, ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // already gone
    }
  }
});

/** A new namespace `<prefix>-<random>`, loopback up and IPv6 on (even where the host set devconf_inherit_init_net and disabled it). */
export async function createNetns(prefix: string): Promise<Netns> {
  const ns = netnsNamed(`${prefix}-${randomHex(4)}`);
  alive.add(ns.name);
  await mustRun(IP, ['netns', 'add', ns.name]);
  await nsMust(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0']);
  await nsMust(ns, 'ip', ['link', 'set', 'lo', 'up']);
  return ns;
}

/** Remove a namespace; one that is already gone is fine. */
export async function removeNetns(ns: Netns): Promise<void> {
  if (existsSync(ns.path)) {
    const r = await run(IP, ['netns', 'del', ns.name]);
    if (r.exitCode !== 0 && existsSync(ns.path)) throw new Error(`could not remove netns ${ns.name}: ${r.stderr}`);
  }
  alive.delete(ns.name);
}

/** Safety net for afterAll: remove every namespace this process created and did not remove yet (all are tried); returns their names. */
export async function removeAllNetns(): Promise<string[]> {
  const left = [...alive];
  const errors: unknown[] = [];
  for (const name of left) await removeNetns(netnsNamed(name)).catch((e: unknown) => errors.push(e));
  if (errors.length > 0) throw new AggregateError(errors, `could not remove ${errors.length} netns`);
  return left;
}

/**
 * Run `file` inside `ns` (`ip netns exec`, which looks `file` up on the
 * child's PATH). The child gets exactly opts.env, by default just SYSTEM_PATH.
 */
export function nsExec(ns: Netns, file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return run(IP, ['netns', 'exec', ns.name, file, ...args], { ...opts, env: opts.env ?? { PATH: SYSTEM_PATH } });
}

/** nsExec for a command that must succeed: its stdout, or a thrown error with its output. */
export function nsMust(ns: Netns, file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
  return mustRun(IP, ['netns', 'exec', ns.name, file, ...args], { ...opts, env: opts.env ?? { PATH: SYSTEM_PATH } });
}

/** PIDs of processes still running inside `ns` (orphaned iptables-restore/nft after a SIGKILL). */
export async function netnsPids(ns: Netns): Promise<number[]> {
  const r = await run(IP, ['netns', 'pids', ns.name]);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/**
 * Guard: lines of the root namespace's nftables ruleset (which also shows
 * iptables-nft tables) that match `names`. Read-only; legacy tables of the
 * root namespace are deliberately not listed (listing can load them).
 */
export async function rootRulesetMentions(names: RegExp): Promise<string[]> {
  const r = await run('/usr/sbin/nft', ['list', 'ruleset']);
  return r.stdout.split('\n').filter((l) => names.test(l));
}
