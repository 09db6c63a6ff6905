import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mustRun, run, type ProcOptions, type ProcResult } from './proc.js';

/**
 * Named network namespaces (`ip netns add`), always called `mjt-<role>-<random>`
 * so concurrent suites never collide. Every namespace this process creates is
 * remembered until it is removed, so a safety net can remove leftovers even
 * when a test failed half-way.
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

export async function createNetns(role: string, opts: { ipv6?: boolean } = {}): Promise<Netns> {
  const name = `mjt-${role}-${randomHex(5)}`;
  await mustRun(IP, ['netns', 'add', name]);
  alive.add(name);
  const ns: Netns = { name, path: `${NETNS_DIR}/${name}` };
  if (opts.ipv6) {
    // New namespaces normally start with IPv6 on, unless the host set devconf_inherit_init_net and disabled it.
    await mustRun(IP, ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0'], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
  }
  return ns;
}

/** Remove a namespace; a namespace that is already gone is fine. */
export async function removeNetns(ns: Netns): Promise<void> {
  if (existsSync(ns.path)) {
    const r = await run(IP, ['netns', 'del', ns.name]);
    if (r.exitCode !== 0 && existsSync(ns.path)) throw new Error(`could not remove netns ${ns.name}: ${r.stderr}`);
  }
  alive.delete(ns.name);
}

/** Safety net for afterAll: remove every namespace this process created and did not remove yet. */
export async function removeAllCreatedNetns(): Promise<string[]> {
  const left = [...alive];
  for (const name of left) await removeNetns({ name, path: `${NETNS_DIR}/${name}` });
  return left;
}

/** Run `file` inside `ns` (through `ip netns exec`, which looks `file` up on opts.env.PATH). */
export function execInNetns(ns: Netns, file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return run(IP, ['netns', 'exec', ns.name, file, ...args], opts);
}
