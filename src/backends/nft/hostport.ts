import * as z from 'zod/mini';
import '../../cni/zod.js';
import { CNI_NAME_PATTERN } from '../../identity.js';
import { listingRules } from './parse.js';
import { canonicalIp } from '../../hostport/ip.js';
import type { HostPort } from '../../hostport/ports.js';

/**
 * portmap's nftables backend (plugins >= v1.6.0, `"backend": "nftables"`):
 * tables `ip cni_hostport` and `ip6 cni_hostport`. Per container it adds
 * DNAT rules to `hostports` (and, before v1.7, host-IP ones to
 * `hostip_hostports`) and hairpin/localhost masquerade rules to
 * `masquerading`, each commented with the bare container ID: no network
 * name, no interface. Everything else (the table, the base chains
 * `prerouting`/`output`/`masquerading`, `hostports_all`, their jumps) is
 * shared and never ours to delete.
 */
export const NFT_HOSTPORT_TABLE = 'cni_hostport';
export type NftHostportFamily = 'ip' | 'ip6';

/** Chains holding per-container rules; a renderer must refuse any other. */
export const NFT_HOSTPORT_RULE_CHAINS: readonly string[] = ['hostports', 'hostip_hostports', 'masquerading'];

export type NftHostportKind =
  /** `[ip daddr <hostIP>] <proto> dport <p> dnat to <ip>:<p>` */
  | 'dnat'
  /** `ip saddr <ip|127.0.0.1|0.0.0.0/0> ip daddr <ip> masquerade` */
  | 'masquerade'
  /** Anything portmap never writes: never deleted, never reported as a mapping. */
  | 'other';

export interface NftHostportRule {
  readonly family: NftHostportFamily;
  readonly chain: string;
  readonly handle: number;
  readonly comment: string | undefined;
  readonly kind: NftHostportKind;
  /** The container address the rule serves: the DNAT target, or the masquerade rule's daddr (canonical form). */
  readonly containerIp: string | undefined;
  /** dnat rules only. */
  readonly port: HostPort | undefined;
  /** Match operands, as printed (for reports). */
  readonly saddr: string | undefined;
  readonly daddr: string | undefined;
}

const Payload = z.looseObject({ payload: z.looseObject({ protocol: z.string(), field: z.string() }) });
const Prefix = z.looseObject({ prefix: z.looseObject({ addr: z.string(), len: z.int() }) });
const Match = z.looseObject({ match: z.looseObject({ op: z.string(), left: z.unknown(), right: z.unknown() }) });
const Dnat = z.looseObject({ dnat: z.looseObject({ addr: z.string(), port: z.optional(z.int()) }) });
const Masquerade = z.looseObject({ masquerade: z.null() });

interface Operand {
  readonly field: string;
  readonly protocol: string;
  readonly value: string | number;
}

/** An `==` match on a payload field, its right side a plain value or a prefix; undefined for any other expression. */
function operand(e: unknown): Operand | undefined {
  const m = Match.safeParse(e);
  if (!m.success || m.data.match.op !== '==') return undefined;
  const left = Payload.safeParse(m.data.match.left);
  if (!left.success) return undefined;
  const right = m.data.match.right;
  const prefix = Prefix.safeParse(right);
  const value = typeof right === 'string' || typeof right === 'number' ? right : prefix.success ? `${prefix.data.prefix.addr}/${prefix.data.prefix.len}` : undefined;
  if (value === undefined) return undefined;
  return { field: left.data.payload.field, protocol: left.data.payload.protocol, value };
}

const PROTOS = new Set(['tcp', 'udp', 'sctp']);

type Shape = Pick<NftHostportRule, 'kind' | 'containerIp' | 'port' | 'saddr' | 'daddr'>;
const OTHER: Shape = { kind: 'other', containerIp: undefined, port: undefined, saddr: undefined, daddr: undefined };

function classify(family: NftHostportFamily, chain: string, expr: readonly unknown[]): Shape {
  if (expr.length === 0) return OTHER;
  const last = expr[expr.length - 1];
  const ops = expr.slice(0, -1).map(operand);
  if (ops.some((o) => o === undefined)) return OTHER;
  const matches = ops as Operand[];
  const addr = (field: string): Operand | undefined => matches.find((o) => o.protocol === family && o.field === field);
  if (chain === 'hostports' || chain === 'hostip_hostports') {
    const dnat = Dnat.safeParse(last);
    const dport = matches.find((o) => PROTOS.has(o.protocol) && o.field === 'dport' && typeof o.value === 'number');
    const daddr = addr('daddr');
    if (!dnat.success || !dport || matches.length !== (daddr ? 2 : 1) || dnat.data.dnat.port === undefined) return OTHER;
    const containerIp = canonicalIp(dnat.data.dnat.addr);
    if (!containerIp || (daddr && (typeof daddr.value !== 'string' || canonicalIp(daddr.value) === undefined))) return OTHER;
    const hostIp = daddr ? String(daddr.value) : undefined;
    const destination = family === 'ip6' ? `[${containerIp}]:${dnat.data.dnat.port}` : `${containerIp}:${dnat.data.dnat.port}`;
    return { kind: 'dnat', containerIp, port: { proto: dport.protocol, port: Number(dport.value), hostIp, destination }, saddr: undefined, daddr: hostIp };
  }
  if (chain === 'masquerading') {
    const saddr = addr('saddr');
    const daddr = addr('daddr');
    if (!Masquerade.safeParse(last).success || !saddr || !daddr || matches.length !== 2 || typeof daddr.value !== 'string') return OTHER;
    const containerIp = canonicalIp(daddr.value);
    return containerIp ? { kind: 'masquerade', containerIp, port: undefined, saddr: String(saddr.value), daddr: daddr.value } : OTHER;
  }
  return OTHER;
}

/** Parse `nft -j list table ip cni_hostport` (or `ip6`); rules of other tables are ignored. */
export function parseNftHostportListing(json: string): NftHostportRule[] {
  const rules: NftHostportRule[] = [];
  for (const r of listingRules(json)) {
    if ((r.family !== 'ip' && r.family !== 'ip6') || r.table !== NFT_HOSTPORT_TABLE) continue;
    const family: NftHostportFamily = r.family;
    const shape = NFT_HOSTPORT_RULE_CHAINS.includes(r.chain) ? classify(family, r.chain, r.expr ?? []) : OTHER;
    rules.push({ family, chain: r.chain, handle: r.handle, comment: r.comment, ...shape });
  }
  return rules;
}

/** A rule portmap made for a container: a known shape in a per-container chain, commented with a valid container ID. */
function isPortmapRule(r: NftHostportRule): r is NftHostportRule & { readonly comment: string } {
  return r.kind !== 'other' && NFT_HOSTPORT_RULE_CHAINS.includes(r.chain) && r.comment !== undefined && CNI_NAME_PATTERN.test(r.comment);
}

export interface NftHostportPlan {
  /** `delete rule <family> cni_hostport <chain> handle <handle>`, one transaction per table. */
  readonly rules: readonly NftHostportRule[];
}

/**
 * DEL: the rules portmap made for `containerId`. With this attachment's IPs
 * (from prevResult) only the rules serving those IPs go, so a container on
 * two networks keeps the other network's mappings. Without them (no
 * prevResult: a teardown whose cache is gone) every rule with the
 * container's ID goes, exactly what portmap's own DEL removes whenever the
 * runtime passes portMappings: the comment names nothing narrower, and a
 * container ID is unique on the host.
 */
export function planNftHostports(rules: readonly NftHostportRule[], containerId: string, ips: readonly string[] | undefined): NftHostportPlan {
  const wanted = ips === undefined ? undefined : new Set(ips.map(canonicalIp).filter((ip): ip is string => ip !== undefined));
  return {
    rules: rules.filter((r) => isPortmapRule(r) && r.comment === containerId && (wanted === undefined || (r.containerIp !== undefined && wanted.has(r.containerIp)))),
  };
}

/** GC and sweep: every portmap rule of the container IDs `doomed` selects. */
export function planNftHostportSelection(rules: readonly NftHostportRule[], doomed: (containerId: string) => boolean): NftHostportPlan {
  return { rules: rules.filter((r) => isPortmapRule(r) && doomed(r.comment)) };
}

/** One container address's published ports in one table, for stale-port detection. */
export interface NftHostportState {
  readonly family: NftHostportFamily;
  /** Undefined for a DNAT rule without a portmap comment (someone else's mapping in portmap's table). */
  readonly containerId: string | undefined;
  readonly containerIp: string;
  readonly ports: readonly HostPort[];
}

/**
 * DNAT rules grouped by (family, container ID, container IP): a container on
 * two networks is two holders, which is what makes two networks publishing
 * the same host port visible as a conflict.
 */
export function nftHostPortsOf(rules: readonly NftHostportRule[]): NftHostportState[] {
  const by = new Map<string, { family: NftHostportFamily; containerId: string | undefined; containerIp: string; ports: HostPort[] }>();
  for (const r of rules) {
    if (r.kind !== 'dnat' || r.port === undefined || r.containerIp === undefined) continue;
    const containerId = r.comment !== undefined && CNI_NAME_PATTERN.test(r.comment) ? r.comment : undefined;
    const key = `${r.family}\u0000${containerId ?? ''}\u0000${r.containerIp}`;
    const s = by.get(key) ?? { family: r.family, containerId, containerIp: r.containerIp, ports: [] };
    s.ports.push(r.port);
    by.set(key, s);
  }
  return [...by.values()];
}
