import { chainName, chainNames, dnatChainName, iptablesComment, MASQ_CHAIN_PATTERN, parseIptablesComment, snatChainName, type Attachment } from '../../identity.js';
import { networkOf, parseCidr } from '../../address.js';
import type { ChainMode, Selection } from '../selection.js';
import { parseRuleLine, type Rule, type Snapshot } from './parse.js';
import { planHostports } from './hostport.js';

/**
 * The iptables planner: everything DEL, GC and sweep delete from one nat
 * table is decided here, from a snapshot, a selection and a mode. The shell
 * only reads, calls this, and runs the result as one transaction.
 *
 * The rules it keeps, in every mode:
 * - a jump goes only if it is certain, carries an attachment's comment,
 *   targets that attachment's hash-named chain, and its interface is gone;
 * - a chain goes only if every attachment that claims it (by its rules'
 *   comments or by the jumps into it) is gone entirely, every rule we can
 *   see entering it is a jump that goes too, and every rule in it carries a
 *   claimant's comment;
 * - a chain that goes is always deleted (`-X`) in the same transaction that
 *   empties it, so a reference this snapshot cannot show (a partial
 *   listing) makes the kernel refuse the whole transaction.
 */
export interface IptablesPlan {
  /** Jumps to delete, by exact saved line. */
  readonly jumps: readonly Rule[];
  /** Chains to empty and delete. */
  readonly chains: readonly string[];
  /** Of those, the ones to create again, empty, right after (bridge's own teardown still needs them). */
  readonly recreate: readonly string[];
  /**
   * Rules inside `chains` to delete one by one instead of emptying the
   * chains: a plan made without reading the table names the rules it
   * expects, so `-X` fails ("not empty") if the chain holds anything else.
   */
  readonly inside?: readonly Rule[];
  /**
   * DEL's fast path only: portmap's chains of this attachment, which it
   * cannot list without reading. Declared (emptied, or made) and deleted in
   * the same transaction: if a portmap entry rule still enters one, the
   * kernel refuses and DEL reads, and plans hostports from what it sees; if
   * there is none, the pair changes nothing.
   */
  readonly probe?: readonly string[];
  /**
   * portmap's entry rules (in CNI-HOSTPORT-DNAT / -SNAT) to delete by exact
   * saved line; their CNI-DN-/CNI-SN- chains are in `chains`, so one
   * transaction per table removes both kinds of state.
   */
  readonly entries: readonly Rule[];
  /** Attachments the plan touches, for reports. */
  readonly owners: readonly Attachment[];
}

export const EMPTY_PLAN: IptablesPlan = { jumps: [], chains: [], recreate: [], entries: [], owners: [] };

export function isEmptyPlan(p: IptablesPlan): boolean {
  return p.jumps.length === 0 && p.chains.length === 0 && p.entries.length === 0;
}

/** What an earlier attempt doomed: a retry may doom only a subset of it. */
export interface Doomed {
  readonly jumps: ReadonlySet<string>;
  readonly chains: ReadonlySet<string>;
  readonly entries: ReadonlySet<string>;
}

export const doomedBy = (p: IptablesPlan): Doomed => ({ jumps: new Set(p.jumps.map((j) => j.line)), chains: new Set(p.chains), entries: new Set(p.entries.map((e) => e.line)) });

const key = (a: Attachment): string => `${a.network}\u0000${a.containerId}`;

/**
 * The attachment a comment names, with its chain names. Memoized: a sweep
 * sees each comment three times (jump, ACCEPT, MASQUERADE) and hashing is
 * most of the planner's cost at 100,000 attachments.
 */
const commentCache = new Map<string, { readonly owner: Attachment; readonly names: readonly string[] } | null>();
function commentOwner(comment: string): { readonly owner: Attachment; readonly names: readonly string[] } | null {
  let hit = commentCache.get(comment);
  if (hit === undefined) {
    const owner = parseIptablesComment(comment);
    hit = owner ? { owner, names: chainNames(owner) } : null;
    if (commentCache.size > 500_000) commentCache.clear();
    commentCache.set(comment, hit);
  }
  return hit;
}

/** The attachment a bridge comment names (memoized: the same object for the same text). */
export function commentAttachment(comment: string): Attachment | undefined {
  return commentOwner(comment)?.owner;
}

/** The attachment a rule's comment names, if that attachment's chain is `chain`. */
function claimantOf(rule: Rule, chain: string): Attachment | undefined {
  if (rule.comment === undefined) return undefined;
  const hit = commentOwner(rule.comment);
  return hit && hit.names.includes(chain) ? hit.owner : undefined;
}

/** The attachment a jump belongs to, or undefined if it is not a masquerade jump. */
export function jumpOwner(rule: Rule): Attachment | undefined {
  if (!rule.certain || rule.jump === undefined || !MASQ_CHAIN_PATTERN.test(rule.jump) || /[\r\n\0]/.test(rule.line)) return undefined;
  return claimantOf(rule, rule.jump);
}

/** A jump's source in canonical text: `10.0.0.2/32`, `fd00::2/128`. */
export function sourceOf(rule: Rule): string | undefined {
  const c = rule.source === undefined ? undefined : parseCidr(rule.source);
  return c === undefined ? undefined : `${c.ip}/${c.prefix}`;
}

export function planIptables(snapshot: Snapshot, selection: Selection, mode: ChainMode, within?: Doomed): IptablesPlan {
  const inChain = new Map<string, Rule[]>();
  const entering = new Map<string, Rule[]>();
  const candidates = new Set<string>();
  const push = (m: Map<string, Rule[]>, k: string, r: Rule): void => {
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  };
  const ours = (c: string): boolean => c.startsWith('CNI-') && MASQ_CHAIN_PATTERN.test(c);
  for (const c of snapshot.chains) if (ours(c)) candidates.add(c);
  for (const r of snapshot.rules) {
    if (ours(r.chain)) push(inChain, r.chain, r);
    if (mode.conservative && !r.certain) {
      for (const t of new Set(r.mentions)) if (ours(t)) push(entering, t, r);
    } else {
      if (r.jump !== undefined && ours(r.jump)) push(entering, r.jump, r);
      if (r.goto !== undefined && r.goto !== r.jump && ours(r.goto)) push(entering, r.goto, r);
    }
  }

  const doomedJumps = new Set<Rule>();
  const owners = new Map<string, Attachment>();
  const jumpOwners = new Map<Rule, Attachment>();
  for (const r of snapshot.rules) {
    const owner = jumpOwner(r);
    if (!owner) continue;
    jumpOwners.set(r, owner);
    candidates.add(r.jump as string);
    if (within && !within.jumps.has(r.line)) continue;
    const source = sourceOf(r);
    if (!selection.interfaceGone(source === undefined ? owner : { network: owner.network, containerId: owner.containerId, source })) continue;
    doomedJumps.add(r);
    owners.set(key(owner), owner);
  }

  const chains: string[] = [];
  for (const c of [...candidates].sort()) {
    if (within && !within.chains.has(c)) continue;
    const rules = inChain.get(c) ?? [];
    // Owners are memoized per comment, so the same attachment is the same object: identity dedupes.
    const claimants: Attachment[] = [];
    let provable = true;
    for (const r of rules) {
      const owner = claimantOf(r, c);
      if (!owner) provable = false;
      else if (!claimants.includes(owner)) claimants.push(owner);
    }
    if (!provable) continue;
    const into = entering.get(c) ?? [];
    for (const r of into) {
      const owner = jumpOwners.get(r);
      if (owner && r.jump === c && !claimants.includes(owner)) claimants.push(owner);
    }
    // An empty chain nothing enters has no claimant: only DEL's selection claims it, and never while the netns
    // lives (then it is what bridge's own teardown, or a concurrent DEL's, still needs: left as it is).
    const gone = claimants.length > 0 ? claimants.every((a) => selection.containerGone(a)) : rules.length === 0 && selection.claimsEmptyChain?.(c) === true;
    if (!gone) continue;
    // A chain something else still enters is shared or not ours: it stays whole.
    if (into.some((r) => !doomedJumps.has(r))) continue;
    chains.push(c);
    for (const a of claimants) owners.set(key(a), a);
  }
  const masq = { jumps: [...doomedJumps], chains, recreate: mode.recreate ? chains : [], entries: [] as Rule[], owners: [...owners.values()] };
  if (selection.hostports === false) return masq;
  // portmap's state is per container and network, like the masquerade chain; the owners the masquerade
  // state proved also prove a DN chain whose entry rules are gone. portmap's DEL tolerates its chain being
  // gone (it creates, flushes and deletes it), so hostport chains are never re-created.
  const hp = planHostports(snapshot, (a) => selection.containerGone(a), masq.owners, within);
  if (hp.entries.length === 0 && hp.chains.length === 0) return masq;
  for (const a of hp.owners) owners.set(key(a), a);
  return { ...masq, chains: [...chains, ...hp.chains], entries: [...hp.entries], owners: [...owners.values()] };
}

/**
 * What DEL can assume without reading the table, when prevResult names the
 * attachment's addresses (with their prefixes): bridge's jump per address,
 * into the chain it made, holding bridge's two rules (ACCEPT for the
 * subnet, MASQUERADE for all but multicast).
 */
export function assumedSnapshot(a: Attachment, ips: readonly string[], family: 4 | 6): Snapshot | undefined {
  const chain = chainName(a);
  const quoted = `"${iptablesComment(a).replaceAll('"', '\\"')}"`;
  const jumps: Rule[] = [];
  const accept = new Map<string, Rule>();
  for (const text of ips) {
    const c = parseCidr(text);
    if (c === undefined || c.family !== family) return undefined;
    const jump = parseRuleLine(`-A POSTROUTING -s ${c.ip}/${family === 4 ? 32 : 128} -m comment --comment ${quoted} -j ${chain}`);
    const net = networkOf(c);
    const rule = parseRuleLine(`-A ${chain} -d ${net} -m comment --comment ${quoted} -j ACCEPT`);
    if (!jump?.certain || !rule?.certain) return undefined;
    jumps.push(jump);
    accept.set(net, rule);
  }
  if (jumps.length === 0) return undefined;
  const masq = parseRuleLine(`-A ${chain} ! -d ${family === 4 ? '224.0.0.0/4' : 'ff00::/8'} -m comment --comment ${quoted} -j MASQUERADE`);
  if (!masq?.certain) return undefined;
  return { chains: new Set([chain]), rules: [...jumps, ...accept.values(), masq] };
}

/**
 * DEL's fast path, planned without reading the table: the plan for the
 * assumed snapshot, but deleting bridge's rules one by one instead of
 * emptying the chain, so that a chain holding anything else (another
 * attachment's rules under a colliding name, a newer bridge's extra rule)
 * fails `-X` and with it the transaction; the shell then reads the table.
 */
export function planAssumed(a: Attachment, ips: readonly string[], family: 4 | 6, selection: Selection, mode: ChainMode): IptablesPlan | undefined {
  const snapshot = assumedSnapshot(a, ips, family);
  if (snapshot === undefined) return undefined;
  const plan = planIptables(snapshot, selection, mode);
  const doomed = new Set(plan.chains);
  // portmap's chains go with the container's last interface, like the masquerade chain.
  const probe = selection.hostports !== false && selection.containerGone(a) ? [dnatChainName(a), snatChainName(a)] : [];
  return { ...plan, inside: snapshot.rules.filter((r) => doomed.has(r.chain)), probe };
}
