import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mustRun, run, type ProcOptions, type ProcResult } from './proc.js';

/**
 * Throwaway network namespaces, always named `mjh-<role>-<random>`. Every
 * namespace this process creates is remembered until removed, so afterAll
 * can remove leftovers even when a test failed half-way. Nothing here ever
 * runs a table-changing command outside such a namespace.
 */

export const IP = '/usr/sbin/ip';
export const NETNS_DIR = '/var/run/netns';
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Netns {
  readonly name: string;
  readonly path: string;
}

const alive = new Set<string>();

export const randomHex = (bytes: number): string => randomBytes(bytes).toString('hex');

export async function createNetns(role: string): Promise<Netns> {
  const name = `mjh-${role}-${randomHex(4)}`;
  await mustRun(IP, ['netns', 'add', name]);
  alive.add(name);
  const ns = { name, path: `${NETNS_DIR}/${name}` };
  await mustRun(IP, ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0'], { env: { PATH: SYSTEM_PATH } });
  await mustRun(IP, ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up'], { env: { PATH: SYSTEM_PATH } });
  return ns;
}

export async function removeNetns(ns: Netns): Promise<void> {
  if (existsSync(ns.path)) {
    const r = await run(IP, ['netns', 'del', ns.name]);
    if (r.exitCode !== 0 && existsSync(ns.path)) throw new Error(`could not remove netns ${ns.name}: ${r.stderr}`);
  }
  alive.delete(ns.name);
}

export async function removeAllNetns(): Promise<void> {
  for (const name of [...alive]) await removeNetns({ name, path: `${NETNS_DIR}/${name}` });
}

/** Run `file` inside `ns`; with opts.env the child gets exactly that environment. */
export function nsExec(ns: Netns, file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return run(IP, ['netns', 'exec', ns.name, file, ...args], { ...opts, env: opts.env ?? { PATH: SYSTEM_PATH } });
}

export async function nsMust(ns: Netns, file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
  return mustRun(IP, ['netns', 'exec', ns.name, file, ...args], { ...opts, env: opts.env ?? { PATH: SYSTEM_PATH } });
}

/** PIDs of processes still running inside `ns` (orphaned iptables-restore/nft after a SIGKILL). */
export async function netnsPids(ns: Netns): Promise<number[]> {
  const r = await run(IP, ['netns', 'pids', ns.name]);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map(Number);
}

/**
 * Guard: the root namespace's nftables ruleset (which also shows iptables-nft
 * tables) must never mention this suite's names. Read-only; legacy tables of
 * the root namespace are deliberately not listed (listing can load them).
 */
export async function rootMentions(): Promise<string[]> {
  const r = await run('/usr/sbin/nft', ['list', 'ruleset']);
  return r.stdout.split('\n').filter((l) => /mjh-|mjh_/.test(l));
}
