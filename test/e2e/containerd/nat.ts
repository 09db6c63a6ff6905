import { createHash } from 'node:crypto';

/**
 * What a nat table (`iptables -t nat -S` text) holds of CNI masquerading.
 * Computed here independently of src/, so the test does not trust the code
 * it checks.
 */
export interface NatCensus {
  /** Every chain whose name starts with `CNI-`. */
  readonly cniChains: readonly string[];
  /** bridge's per-container chains: `CNI-` + 24 hex. */
  readonly masqChains: readonly string[];
  /** Rules carrying bridge's comment `name: "<net>" id: "<cid>"`. */
  readonly commentedRules: readonly string[];
}

export const EMPTY_CENSUS: NatCensus = { cniChains: [], masqChains: [], commentedRules: [] };

const MASQ_CHAIN = /^CNI-[0-9a-f]{24}$/;
// -S quotes the comment and escapes its inner quotes: --comment "name: \"bridge\" id: \"default-x\""
const BRIDGE_COMMENT = /--comment "name: \\"[^"\\]+\\" id: \\"[^"\\]+\\""/;

export function census(text: string): NatCensus {
  const lines = text.split('\n').map((l) => l.trim());
  const cniChains = lines
    .filter((l) => l.startsWith('-N CNI-'))
    .map((l) => l.slice(3))
    .sort();
  return {
    cniChains,
    masqChains: cniChains.filter((c) => MASQ_CHAIN.test(c)),
    commentedRules: lines.filter((l) => l.startsWith('-A ') && BRIDGE_COMMENT.test(l)),
  };
}

/** upstream pkg/utils FormatChainName: "CNI-" + the first 24 hex of sha512(network + containerID). */
export function chainName(network: string, containerId: string): string {
  return 'CNI-' + createHash('sha512').update(network + containerId).digest('hex').slice(0, 24);
}

/** For failure messages: the census in a few lines. */
export function show(c: NatCensus): string {
  return `${c.masqChains.length} masquerade chains, ${c.commentedRules.length} CNI-commented rules\n  ${[...c.cniChains.map((n) => `-N ${n}`), ...c.commentedRules].join('\n  ')}`;
}
