import { chainNames, dnatChainName, snatChainName, type Attachment } from '../identity.js';
import { entryOf, hasPortmapChain } from '../backends/iptables/hostport.js';
import { jumpOwner, type IptablesPlan } from '../backends/iptables/plan.js';
import type { Snapshot } from '../backends/iptables/parse.js';
import type { NftPlan } from '../backends/nft/plan.js';
import type { NftHostportPlan } from '../backends/nft/hostport.js';

/** One line of a sweep report: one attachment's state in one place. */
export interface OrphanRow {
  readonly network: string;
  readonly containerId: string;
  /** e.g. `iptables-nft v4`, `nft inet` */
  readonly where: string;
  /** Chain name, or nft rule handle. */
  readonly object: string;
  readonly rules: number;
  readonly ips: readonly string[];
  readonly why: string;
}

const keyOf = (a: Attachment): string => `${a.network}\u0000${a.containerId}`;

/** Rows for a plan; linear in the table (sweeps see tens of thousands of rules). */
export function describeIptables(where: string, snapshot: Snapshot, plan: IptablesPlan, why: string): OrphanRow[] {
  const flushed = new Set(plan.chains);
  const rulesIn = new Map<string, number>();
  for (const r of snapshot.rules) if (flushed.has(r.chain)) rulesIn.set(r.chain, (rulesIn.get(r.chain) ?? 0) + 1);
  const jumpsOf = new Map<string, string[]>();
  for (const j of plan.jumps) {
    const o = jumpOwner(j);
    if (!o) continue;
    const list = jumpsOf.get(keyOf(o)) ?? [];
    list.push(j.source ?? '');
    jumpsOf.set(keyOf(o), list);
  }
  // portmap's entry rules, per owner (their chains are in plan.chains like the masquerade ones).
  const entriesOf = new Map<string, number>();
  for (const e of plan.entries) {
    const o = entryOf(e, plan.owners)?.owner;
    if (o) entriesOf.set(keyOf(o), (entriesOf.get(keyOf(o)) ?? 0) + 1);
  }
  // portmap's names only when the plan holds a portmap chain: a sweep names 100,000 owners.
  const portmap = hasPortmapChain(plan.chains);
  return plan.owners.map((owner) => {
    const chains = [...chainNames(owner), ...(portmap ? [dnatChainName(owner), snatChainName(owner)] : [])].filter((c) => flushed.has(c));
    const key = keyOf(owner);
    const sources = jumpsOf.get(key) ?? [];
    return {
      network: owner.network,
      containerId: owner.containerId,
      where,
      object: chains.join(',') || '(jump only)',
      rules: chains.reduce((n, c) => n + (rulesIn.get(c) ?? 0), 0) + sources.length + (entriesOf.get(key) ?? 0),
      ips: sources.filter((s) => s !== ''),
      why,
    };
  });
}

/** portmap's nft rules name only the container ID: the network is unknown ('?'). */
export function describeNftHostport(plan: NftHostportPlan, why: string): OrphanRow[] {
  return plan.rules.map((r) => ({
    network: '?',
    containerId: r.comment ?? '?',
    where: `nft ${r.family} cni_hostport`,
    object: `${r.chain} handle ${r.handle}`,
    rules: 1,
    ips: r.containerIp === undefined ? [] : [r.containerIp],
    why,
  }));
}

export function describeNft(plan: NftPlan, why: string): OrphanRow[] {
  return plan.rules.map((r) => ({
    network: r.owner?.network ?? '?',
    containerId: (r.owner?.containerId ?? '?') + (r.owner?.truncated ? '…' : ''),
    where: 'nft inet',
    object: `masq_checks handle ${r.handle}`,
    rules: 1,
    ips: r.saddr,
    why,
  }));
}

/** Fixed-width text table, for people. */
export function renderTable(rows: readonly OrphanRow[]): string {
  const head = ['NETWORK', 'CONTAINER ID', 'WHERE', 'OBJECT', 'RULES', 'IPS', 'WHY'];
  const cells = rows.map((r) => [r.network, r.containerId, r.where, r.object, String(r.rules), r.ips.join(',') || '-', r.why]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string => c.map((s, i) => (i === c.length - 1 ? s : s.padEnd(widths[i] as number))).join('  ');
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}
