import { chainName, chainNames, iptablesComment, MASQ_CHAIN_PATTERN, parseIptablesComment, type Attachment } from '../../identity.js';
import { networkOf, parseCidr } from '../../address.js';
import type { ChainMode, Selection } from '../selection.js';
import { parseRuleLine, type Rule, type Snapshot } from './parse.js';

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
  /** Attachments the plan touches, for reports. */
  readonly owners: readonly Attachment[];
}

export const EMPTY_PLAN: IptablesPlan = { jumps: [], chains: [], recreate: [], owners: [] };

export function isEmptyPlan(p: IptablesPlan): boolean {
  return p.jumps.length === 0 && p.chains.length === 0;
}

/** What an earlier attempt doomed: a retry may doom only a subset of it. */
export interface Doomed {
  readonly jumps: ReadonlySet<string>;
  readonly chains: ReadonlySet<string>;
}

export const doomedBy = (p: IptablesPlan): Doomed => ({ jumps: new Set(p.jumps.map((j) => j.line)), chains: new Set(p.chains) });

const key = (a: Attachment): string => `${a.network}\u0000${a.containerId}`;

/** The attachment a rule's comment names, if that attachment's chain is `chain`. */
function claimantOf(rule: Rule, chain: string): Attachment | undefined {
  if (rule.comment === undefined) return undefined;
  const owner = parseIptablesComment(rule.comment);
  return owner && chainNames(owner).includes(chain) ? owner : undefined;
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
  for (const c of snapshot.chains) if (MASQ_CHAIN_PATTERN.test(c)) candidates.add(c);
  for (const r of snapshot.rules) {
    if (MASQ_CHAIN_PATTERN.test(r.chain)) push(inChain, r.chain, r);
    const targets = mode.conservative && !r.certain ? r.mentions : [r.jump, r.goto];
    for (const t of new Set(targets)) if (t !== undefined && MASQ_CHAIN_PATTERN.test(t)) push(entering, t, r);
  }

  const doomedJumps = new Set<Rule>();
  const owners = new Map<string, Attachment>();
  for (const r of snapshot.rules) {
    const owner = jumpOwner(r);
    if (!owner) continue;
    candidates.add(r.jump as string);
    if (within && !within.jumps.has(r.line)) continue;
    const source = sourceOf(r);
    if (!selection.interfaceGone({ ...owner, ...(source === undefined ? {} : { source }) })) continue;
    doomedJumps.add(r);
    owners.set(key(owner), owner);
  }

  const chains: string[] = [];
  for (const c of [...candidates].sort()) {
    if (within && !within.chains.has(c)) continue;
    const rules = inChain.get(c) ?? [];
    const claimants = new Map<string, Attachment>();
    let provable = true;
    for (const r of rules) {
      const owner = claimantOf(r, c);
      if (owner) claimants.set(key(owner), owner);
      else provable = false;
    }
    for (const r of entering.get(c) ?? []) {
      const owner = jumpOwner(r);
      if (owner && r.jump === c) claimants.set(key(owner), owner);
    }
    if (!provable) continue;
    const gone =
      claimants.size > 0
        ? [...claimants.values()].every((a) => selection.containerGone(a))
        : rules.length === 0 && selection.claimsEmptyChain?.(c) === true;
    if (!gone) continue;
    // A chain something else still enters is shared or not ours: it stays whole.
    if ((entering.get(c) ?? []).some((r) => !doomedJumps.has(r))) continue;
    // Already what bridge's own teardown needs (an empty chain): deleting and re-creating it could race that teardown.
    if (mode.recreate && rules.length === 0 && (entering.get(c) ?? []).length === 0) continue;
    chains.push(c);
    for (const a of claimants.values()) owners.set(key(a), a);
  }
  return { jumps: [...doomedJumps], chains, recreate: mode.recreate ? chains : [], owners: [...owners.values()] };
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
  return { ...plan, inside: snapshot.rules.filter((r) => doomed.has(r.chain)) };
}
