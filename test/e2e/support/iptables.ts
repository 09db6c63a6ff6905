import { createHash } from 'node:crypto';
import { nsMust, type Netns } from '../../support/netns.js';
import type { Family, Toolchain } from '../../support/xtables.js';

/**
 * What bridge/ptp leave in a nat table, read out of iptables-save text.
 * Names are computed here independently of src/.
 */

/** `iptables -w -t nat <args>` (or ip6tables) inside `ns` with this variant; throws on failure. */
export function iptables(ns: Netns, tc: Toolchain, family: Family, args: readonly string[]): Promise<string> {
  return nsMust(ns, family === 4 ? 'iptables' : 'ip6tables', ['-w', '-t', 'nat', ...args], { env: { PATH: tc.path } });
}

export const lines = (saveText: string): string[] => saveText.split('\n');

/** `CNI-` + 24 hex of sha512(network + containerID): computed here independently of src/. */
export function masqChain(network: string, containerId: string): string {
  return 'CNI-' + createHash('sha512').update(network + containerId).digest('hex').slice(0, 24);
}

/** Go's `name: %q id: %q` as iptables-save prints it inside `--comment "..."`. */
export function savedComment(network: string, containerId: string): string {
  return `--comment "name: \\"${network}\\" id: \\"${containerId}\\""`;
}

/** Every masquerade chain (`:CNI-<hex>`) declared in a save text. */
export function cniChains(saveText: string): string[] {
  return lines(saveText)
    .map((l) => /^:(CNI-[0-9a-f]{24,25}) /.exec(l)?.[1])
    .filter((c): c is string => c !== undefined);
}

/** Rule lines carrying an upstream masquerade comment: of one attachment, or (no arguments) of any. */
export function cniRules(saveText: string, network?: string, containerId?: string): string[] {
  const wanted = network !== undefined && containerId !== undefined ? savedComment(network, containerId) : '--comment "name: \\"';
  return lines(saveText).filter((l) => l.startsWith('-A ') && l.includes(wanted));
}

/** What bridge/ptp leave for one attachment in one family, parsed out of a save text. */
export interface MasqState {
  readonly chainDeclared: boolean;
  /** `-A POSTROUTING ... -j <chain>` lines (any source). */
  readonly jumps: readonly string[];
  /** Rules inside the chain. */
  readonly chainRules: readonly string[];
}

export function masqState(saveText: string, network: string, containerId: string): MasqState {
  const chain = masqChain(network, containerId);
  const all = lines(saveText);
  return {
    chainDeclared: all.some((l) => l.startsWith(`:${chain} `)),
    jumps: all.filter((l) => l.startsWith('-A POSTROUTING ') && l.endsWith(` -j ${chain}`)),
    chainRules: all.filter((l) => l.startsWith(`-A ${chain} `)),
  };
}
