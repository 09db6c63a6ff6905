import type { Attachment } from '../identity.js';
import type { HostportState } from '../backends/iptables/hostport.js';
import type { NftHostportState } from '../backends/nft/hostport.js';
import { canonicalIp, isUnspecified } from './ip.js';
import { destinationIp, type HostPort } from './ports.js';

/**
 * Stale-port detection: a host port that more than one container's DNAT
 * state serves. The first matching rule wins, so one of them (often a
 * leaked one, pointing at an IP that is gone or reassigned) shadows the
 * others: what a user sees as "curl hits the wrong container".
 */

export type Family = 4 | 6;

/** One container address's DNAT state in one table. */
export interface PortHolder {
  /** e.g. `iptables-nft v4`, `nft ip cni_hostport`. */
  readonly where: string;
  readonly family: Family;
  /** Undefined on the nft backend (its comments name no network). */
  readonly network: string | undefined;
  /** Undefined when nothing proves it (a trimmed comment, a DNAT rule without portmap's comment). */
  readonly containerId: string | undefined;
  /** What to show when the identity is unknown: the comment or chain. */
  readonly label: string;
  /** Does a record (GC's valid attachments, the state dir) hold this container? */
  readonly recorded: boolean;
  readonly ports: readonly HostPort[];
}

export interface ConflictHolder {
  readonly where: string;
  readonly network: string | undefined;
  readonly containerId: string | undefined;
  readonly label: string;
  readonly recorded: boolean;
  readonly hostIp: string | undefined;
  readonly destination: string;
}

export interface PortConflict {
  readonly family: Family;
  readonly proto: string;
  readonly port: number;
  readonly holders: readonly ConflictHolder[];
}

/** Two mappings of one port meet when either binds every address or both bind the same one. */
function overlaps(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || isUnspecified(a) || isUnspecified(b)) return true;
  return canonicalIp(a) === canonicalIp(b);
}

/**
 * The same container at the same address is one holder, wherever it shows
 * (both iptables variants, or iptables and nft): only different containers,
 * or one container at two addresses (two networks), conflict.
 */
const holderKey = (h: PortHolder, p: HostPort): string => `${h.containerId ?? `?${h.label}`}\u0000${canonicalIp(destinationIp(p.destination) ?? '') ?? p.destination}`;

export function findPortConflicts(holders: readonly PortHolder[]): PortConflict[] {
  const groups = new Map<string, { family: Family; proto: string; port: number; items: { key: string; h: ConflictHolder }[] }>();
  for (const h of holders) {
    for (const p of h.ports) {
      const gk = `${h.family}/${p.proto}/${p.port}`;
      const g = groups.get(gk) ?? { family: h.family, proto: p.proto, port: p.port, items: [] };
      g.items.push({
        key: holderKey(h, p),
        h: { where: h.where, network: h.network, containerId: h.containerId, label: h.label, recorded: h.recorded, hostIp: p.hostIp, destination: p.destination },
      });
      groups.set(gk, g);
    }
  }
  const out: PortConflict[] = [];
  for (const g of groups.values()) {
    const involved = g.items.filter((x) => g.items.some((y) => y.key !== x.key && overlaps(x.h.hostIp, y.h.hostIp)));
    if (involved.length > 0) out.push({ family: g.family, proto: g.proto, port: g.port, holders: involved.map((x) => x.h) });
  }
  return out.sort((a, b) => a.family - b.family || a.port - b.port || a.proto.localeCompare(b.proto));
}

/** Holders from one iptables nat table. */
export function iptablesHolders(states: readonly HostportState[], where: string, family: Family, recorded: (a: Attachment) => boolean): PortHolder[] {
  return states.map((s) => ({
    where,
    family,
    network: s.owner?.network,
    containerId: s.owner?.containerId,
    label: s.owner ? s.chain : `${s.chain} (${s.comment})`,
    recorded: s.owner !== undefined && recorded(s.owner),
    ports: s.ports,
  }));
}

/** Holders from the nft cni_hostport tables; only the container ID can be recorded. */
export function nftHolders(states: readonly NftHostportState[], recorded: (containerId: string) => boolean): PortHolder[] {
  return states.map((s) => ({
    where: `nft ${s.family} cni_hostport`,
    family: s.family === 'ip' ? 4 : 6,
    network: undefined,
    containerId: s.containerId,
    label: s.containerId ?? `uncommented DNAT to ${s.containerIp}`,
    recorded: s.containerId !== undefined && recorded(s.containerId),
    ports: s.ports,
  }));
}

/** Fixed-width text, for sweep's report. */
export function renderPortConflicts(conflicts: readonly PortConflict[]): string {
  const head = ['HOST PORT', 'HOST IP', 'WHERE', 'NETWORK', 'CONTAINER ID', 'DESTINATION', 'STATE'];
  const cells = conflicts.flatMap((c) =>
    c.holders.map((h) => [`${c.port}/${c.proto} (v${c.family})`, h.hostIp ?? '*', h.where, h.network ?? '-', h.containerId ?? h.label, h.destination, h.recorded ? 'recorded' : 'orphaned']),
  );
  const widths = head.map((t, i) => Math.max(t.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string => c.map((s, i) => (i === c.length - 1 ? s : s.padEnd(widths[i] as number))).join('  ');
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}
