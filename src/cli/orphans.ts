import { chainNames, type Attachment } from '../identity.js';
import { jumpOwner, type IptablesPlan } from '../backends/iptables/plan.js';
import type { Snapshot } from '../backends/iptables/parse.js';
import type { NftPlan } from '../backends/nft/plan.js';

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
  return plan.owners.map((owner) => {
    const chains = chainNames(owner).filter((c) => flushed.has(c));
    const sources = jumpsOf.get(keyOf(owner)) ?? [];
    return {
      network: owner.network,
      containerId: owner.containerId,
      where,
      object: chains.join(',') || '(jump only)',
      rules: chains.reduce((n, c) => n + (rulesIn.get(c) ?? 0), 0) + sources.length,
      ips: sources.filter((s) => s !== ''),
      why,
    };
  });
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
