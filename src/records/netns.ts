import { statfs } from 'node:fs/promises';
import type { Runner } from '../backends/exec.js';

/**
 * What bridge will find when it runs after us on DEL. It tears masquerade
 * down itself only when the netns opens AND the interface is still in it,
 * and then only for the families of the global addresses it finds there.
 */
export type NetnsState =
  | { readonly kind: 'empty' } // CNI_NETNS="" (nerdctl, ctr, CRI after reboot)
  | { readonly kind: 'gone' } // path does not exist (container already stopped)
  | { readonly kind: 'not-a-netns' } // path exists but is no namespace (bind mount already undone)
  | { readonly kind: 'iface-present'; readonly families: ReadonlySet<4 | 6> }
  | { readonly kind: 'iface-gone' }
  | { readonly kind: 'unknown' }; // could not look inside

const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

export async function inspectNetns(run: Runner, path: string, ifname: string): Promise<NetnsState> {
  if (path === '') return { kind: 'empty' };
  let type: number;
  try {
    type = (await statfs(path)).type;
  } catch (e) {
    return { kind: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'unknown' };
  }
  if (type !== NSFS_MAGIC && type !== PROC_SUPER_MAGIC) return { kind: 'not-a-netns' };
  // bridge's DelLinkByNameAddr keeps the link's global unicast addresses: those are what it tears down for.
  const r = await run('nsenter', [`--net=${path}`, 'ip', '-o', 'addr', 'show', 'dev', ifname, 'scope', 'global'], { timeoutMs: 10_000 });
  if (r.exitCode === 0) return { kind: 'iface-present', families: addressFamilies(r.stdout) };
  if (/does not exist|Cannot find device/i.test(r.stderr)) return { kind: 'iface-gone' };
  return { kind: 'unknown' };
}

/** Families with an address in `ip -o addr show` output. */
export function addressFamilies(listing: string): ReadonlySet<4 | 6> {
  const families = new Set<4 | 6>();
  for (const line of listing.split('\n')) {
    if (/\sinet\s/.test(line)) families.add(4);
    if (/\sinet6\s/.test(line)) families.add(6);
  }
  return families;
}

/** The namespace is still there, or it cannot be told. */
export function netnsAlive(state: NetnsState): boolean {
  return state.kind === 'iface-present' || state.kind === 'iface-gone' || state.kind === 'unknown';
}

/** Will bridge/ptp run their own iptables teardown for this family after us? */
export function bridgeWillTearDown(state: NetnsState, family: 4 | 6): boolean {
  // 'unknown' counts as yes: keeping an empty chain is a smaller harm than failing bridge's DEL.
  if (state.kind === 'unknown') return true;
  return state.kind === 'iface-present' && state.families.has(family);
}
