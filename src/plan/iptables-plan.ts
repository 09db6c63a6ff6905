import { chainName, chainNames, iptablesComment, MASQ_CHAIN_PATTERN, parseIptablesComment, type Attachment } from '../identity.js';
import { isIP } from 'node:net';
import { enters, parseRuleLine, type Rule, type Snapshot } from './iptables-save.js';

/**
 * What to remove from one nat table. Every entry was proven to belong to a
 * selected attachment: a jump carries that attachment's comment and targets
 * its hash-named chain; a chain's name is that attachment's hash.
 */
export interface IptablesPlan {
  /** Jumps (in any chain, normally POSTROUTING) to delete, by exact saved line. */
  readonly jumps: readonly Rule[];
  /** Chains to empty. */
  readonly flush: readonly string[];
  /** Chains to delete after they are emptied and unreferenced. */
  readonly remove: readonly string[];
  /** Attachments the plan touches, for reports. */
  readonly owners: readonly Attachment[];
}

export const EMPTY_PLAN: IptablesPlan = { jumps: [], flush: [], remove: [], owners: [] };

export function isEmptyPlan(p: IptablesPlan): boolean {
  return p.jumps.length === 0 && p.flush.length === 0 && p.remove.length === 0;
}

/** The attachment a jump rule belongs to, or undefined if it is not a masquerade jump. */
export function jumpOwner(rule: Rule): Attachment | undefined {
  if (rule.jump === undefined || rule.comment === undefined || !MASQ_CHAIN_PATTERN.test(rule.jump)) return undefined;
  const owner = parseIptablesComment(rule.comment);
  if (!owner) return undefined;
  return chainNames(owner).includes(rule.jump) ? owner : undefined;
}

/** The attachment a chain's name and its rules' comments prove it belongs to. */
export function chainOwner(chain: string, rulesOfChain: readonly Rule[]): Attachment | undefined {
  if (!MASQ_CHAIN_PATTERN.test(chain)) return undefined;
  for (const r of rulesOfChain) {
    if (r.comment === undefined) continue;
    const owner = parseIptablesComment(r.comment);
    if (owner && chainNames(owner).includes(chain)) return owner;
  }
  return undefined;
}

function rulesByChain(snapshot: Snapshot): Map<string, Rule[]> {
  const by = new Map<string, Rule[]>();
  for (const r of snapshot.rules) {
    const list = by.get(r.chain);
    if (list) list.push(r);
    else by.set(r.chain, [r]);
  }
  return by;
}

export type ChainPolicy =
  /** Jumps, rules and the chain go. */
  | 'remove-chain'
  /** Jumps and rules go; the empty chain stays for bridge's own teardown. */
  | 'keep-empty-chain';

/**
 * DEL for one attachment. The snapshot may be partial (a POSTROUTING
 * listing): chains it does not declare and no jump proves are taken as
 * absent, so the plan never declares (and so creates) a chain, or the nat
 * table around it, that was not there.
 */
export function planAttachmentTeardown(snapshot: Snapshot, a: Attachment, policy: ChainPolicy): IptablesPlan {
  const names = chainNames(a);
  const comment = iptablesComment(a);
  const jumps = snapshot.rules.filter((r) => r.jump !== undefined && names.includes(r.jump) && r.comment === comment);
  const existing = names.filter((n) => snapshot.chains.has(n) || jumps.some((j) => j.jump === n));
  if (jumps.length === 0 && existing.length === 0) return EMPTY_PLAN;
  // A jump into "our" chain that does not carry our comment means the chain is shared (names hash
  // network + ID with no separator, so they can collide) or not ours: take our jumps, leave the chain.
  const ownJumps = new Set(jumps);
  const referenced = new Set(existing.filter((n) => snapshot.rules.some((r) => enters(r, n) && !ownJumps.has(r))));
  const touchable = existing.filter((n) => !referenced.has(n));
  return { jumps, flush: touchable, remove: policy === 'remove-chain' ? touchable : [], owners: [a] };
}

/**
 * The fast path of DEL, planned without reading the table: the jumps bridge
 * made for the IPs in prevResult, then the chain. `-D` matches rules by
 * meaning, not text, so the IP's spelling does not matter. If anything else
 * is there (a stale jump, the old subnet jump, a foreign reference) or our
 * jump is not, the transaction fails whole and DEL reads the table instead.
 */
export function planKnownJumps(a: Attachment, ips: readonly string[], family: 4 | 6): IptablesPlan | undefined {
  const chain = chainName(a);
  const jumps: Rule[] = [];
  for (const ip of ips) {
    // prevResult IPs were validated by zod; check again where they meet restore input.
    if (isIP(ip) !== family || !/^[0-9a-fA-F:.]+$/.test(ip)) return undefined;
    const rule = parseRuleLine(`-A POSTROUTING -s ${ip}/${family === 4 ? 32 : 128} -m comment --comment "${iptablesComment(a).replaceAll('"', '\\"')}" -j ${chain}`);
    if (!rule) return undefined;
    jumps.push(rule);
  }
  return jumps.length === 0 ? undefined : { jumps, flush: [chain], remove: [chain], owners: [a] };
}

const key = (a: Attachment): string => `${a.network}\u0000${a.containerId}`;

/**
 * GC and sweep: from a full snapshot, everything of the attachments `doomed`
 * selects. Chains whose owner cannot be proven from their contents are left
 * alone, as are jumps whose comment does not name the chain's own hash.
 */
export function planSelection(snapshot: Snapshot, doomed: (a: Attachment) => boolean): IptablesPlan {
  const byChain = rulesByChain(snapshot);
  const owners = new Map<string, Attachment>();
  const chains = new Set<string>();
  for (const chain of snapshot.chains) {
    const owner = chainOwner(chain, byChain.get(chain) ?? []);
    if (owner && doomed(owner)) {
      chains.add(chain);
      owners.set(key(owner), owner);
    }
  }
  const jumps = snapshot.rules.filter((r) => {
    const owner = jumpOwner(r);
    if (!owner || !doomed(owner)) return false;
    owners.set(key(owner), owner);
    return true;
  });
  // A doomed jump proves its target's name even when the chain holds no rules any more.
  for (const j of jumps) if (j.jump) chains.add(j.jump);
  // A chain something else still jumps to is shared or not ours: leave it whole (its -X would fail the batch anyway).
  const doomedJumps = new Set(jumps);
  const foreignRefs = new Set<string>();
  for (const r of snapshot.rules) {
    if (doomedJumps.has(r)) continue;
    for (const t of [r.jump, r.goto]) if (t !== undefined && chains.has(t)) foreignRefs.add(t);
  }
  const flush = [...chains].filter((c) => !foreignRefs.has(c)).sort();
  return { jumps, flush, remove: flush, owners: [...owners.values()] };
}
