import { statfs } from 'node:fs/promises';
import type { Runner } from './exec.js';

/**
 * What bridge will find when it runs after us on DEL. It tears masquerade
 * down itself only when the netns opens AND the interface is still in it.
 */
export type NetnsState =
  | 'empty' // CNI_NETNS="" (nerdctl, ctr, CRI after reboot)
  | 'gone' // path does not exist (container already stopped)
  | 'not-a-netns' // path exists but is no namespace (bind mount already undone)
  | 'iface-present'
  | 'iface-gone'
  | 'unknown'; // could not look inside

const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

export async function inspectNetns(run: Runner, path: string, ifname: string): Promise<NetnsState> {
  if (path === '') return 'empty';
  let type: number;
  try {
    type = (await statfs(path)).type;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'unknown';
  }
  if (type !== NSFS_MAGIC && type !== PROC_SUPER_MAGIC) return 'not-a-netns';
  const r = await run('nsenter', [`--net=${path}`, 'ip', '-o', 'link', 'show', 'dev', ifname], { timeoutMs: 10_000 });
  if (r.exitCode === 0) return 'iface-present';
  if (/does not exist|Cannot find device/i.test(r.stderr)) return 'iface-gone';
  return 'unknown';
}

/** Will bridge/ptp run their own iptables teardown after us? */
export function bridgeWillTearDown(state: NetnsState): boolean {
  // 'unknown' counts as yes: keeping an empty chain is a smaller harm than failing bridge's DEL.
  return state === 'iface-present' || state === 'unknown';
}
