import {
  dnatChainName,
  dnatComment,
  HOSTPORT_CHAIN_NAME_PATTERN,
  parsePortmapComment,
  savedComment,
  snatChainName,
  snatComment,
  type Attachment,
  type PortmapCommentKind,
} from '../../identity.js';
import { argsOf, type Rule, type Snapshot } from './parse.js';
import type { HostPort } from '../../hostport/ports.js';

/**
 * portmap's per-container state in a nat table (iptables backend, every
 * version): a `CNI-DN-<hash>` chain entered from `CNI-HOSTPORT-DNAT` by rules
 * commented `dnat name: "<net>" id: "<id>"`, and in very old plugins a
 * `CNI-SN-<hash>` chain entered from `CNI-HOSTPORT-SNAT`. Nothing inside the
 * chains carries a comment, so a chain's owner is proven by the entry rule
 * that enters it (its comment hashes to the chain's name) or by a candidate
 * attachment the caller already knows (DEL's own identity; owners proven by
 * masquerade state), never by its contents.
 */

/**
 * Chain names a renderer may put in `-F`/`-X` for hostport state: only the
 * per-container forms, 28 characters of [A-Z0-9a-f-]. The shared chains
 * below never match.
 */
export const HOSTPORT_CHAIN_PATTERN = HOSTPORT_CHAIN_NAME_PATTERN;

/** Chains portmap shares between all containers: never flushed, never deleted. */
export const SHARED_HOSTPORT_CHAINS: readonly string[] = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SNAT'];

const ENTRY_CHAIN: Record<PortmapCommentKind, string> = { dnat: 'CNI-HOSTPORT-DNAT', snat: 'CNI-HOSTPORT-SNAT' };
const chainOf = (kind: PortmapCommentKind, a: Attachment): string => (kind === 'dnat' ? dnatChainName(a) : snatChainName(a));
const commentOf = (kind: PortmapCommentKind, a: Attachment): string => savedComment(kind === 'dnat' ? dnatComment(a) : snatComment(a));

const isCertain = (r: Rule): boolean => r.certain;

export interface HostportEntry {
  readonly rule: Rule;
  readonly kind: PortmapCommentKind;
  /** Undefined when the comment was trimmed and no candidate proves it. */
  readonly owner: Attachment | undefined;
  /** The per-container chain it enters. */
  readonly chain: string;
}

/**
 * Is `r` one of portmap's entry rules? It must sit in the shared entry chain,
 * jump (portmap never uses -g) to a per-container chain, and carry the
 * comment whose identity hashes to that chain. A trimmed comment proves a
 * candidate only when the candidate's own saved comment and chain match.
 */
export function entryOf(r: Rule, candidates: readonly Attachment[] = []): HostportEntry | undefined {
  const chain = r.jump;
  if (!isCertain(r) || chain === undefined || r.goto !== undefined || r.comment === undefined) return undefined;
  if (!HOSTPORT_CHAIN_PATTERN.test(chain)) return undefined;
  const kind: PortmapCommentKind = chain.startsWith('CNI-DN-') ? 'dnat' : 'snat';
  if (r.chain !== ENTRY_CHAIN[kind]) return undefined;
  const parsed = parsePortmapComment(r.comment);
  if (!parsed || parsed.kind !== kind) return undefined;
  if (parsed.owner) return chainOf(kind, parsed.owner) === chain ? { rule: r, kind, owner: parsed.owner, chain } : undefined;
  const owner = candidates.find((a) => chainOf(kind, a) === chain && commentOf(kind, a) === r.comment);
  return { rule: r, kind, owner, chain };
}

export interface HostportPlan {
  /** Entry rules to `-D` by exact saved line (in CNI-HOSTPORT-DNAT / -SNAT). */
  readonly entries: readonly Rule[];
  /** CNI-DN-/CNI-SN- chains to flush and `-X`, in the same transaction as the entries. */
  readonly chains: readonly string[];
  /** Attachments the plan touches, for reports. */
  readonly owners: readonly Attachment[];
}

export const EMPTY_HOSTPORT_PLAN: HostportPlan = { entries: [], chains: [], owners: [] };

/** What an earlier attempt doomed: a retry may doom only a subset (entry lines, chain names). */
export interface HostportDoomed {
  readonly entries: ReadonlySet<string>;
  readonly chains: ReadonlySet<string>;
}

const keyOf = (a: Attachment): string => `${a.network}\u0000${a.containerId}`;

/**
 * Everything of the attachments `doomed` selects, from one nat table's
 * snapshot. `candidates` are identities known from elsewhere (DEL passes its
 * own; GC/sweep may pass the owners its masquerade planner proved): a
 * declared chain whose name is a candidate's hash is that candidate's even
 * when no entry rule is left to prove it.
 *
 * Never returned: a shared chain; an uncertain rule; a chain some rule other
 * than a doomed entry enters (or an uncertain rule might: its text names the
 * chain); a chain holding a rule that cannot be read with certainty.
 */
/** Does any of these chains have a portmap per-container name (`CNI-DN-`, `CNI-SN-`)? */
export function hasPortmapChain(chains: Iterable<string>): boolean {
  for (const c of chains) if (c.startsWith('CNI-DN-') || c.startsWith('CNI-SN-')) return true;
  return false;
}

export function planHostports(snapshot: Snapshot, doomed: (a: Attachment) => boolean, candidates: readonly Attachment[] = [], within?: HostportDoomed): HostportPlan {
  const entries: Rule[] = [];
  const owners = new Map<string, Attachment>();
  const chainOwner = new Map<string, Attachment>();
  for (const r of snapshot.rules) {
    const e = entryOf(r, candidates);
    if (!e?.owner) continue;
    chainOwner.set(e.chain, e.owner);
    if (!doomed(e.owner) || (within && !within.entries.has(r.line))) continue;
    entries.push(r);
    owners.set(keyOf(e.owner), e.owner);
  }
  // Most hosts never published a port: then no candidate's chain names need computing (100,000 in a sweep).
  if (hasPortmapChain(snapshot.chains))
    for (const a of candidates) {
      for (const c of [dnatChainName(a), snatChainName(a)]) if (snapshot.chains.has(c) && !chainOwner.has(c)) chainOwner.set(c, a);
    }

  const chains = new Set<string>();
  // An entry rule proves its target exists (iptables refuses a jump to a missing chain).
  const enteredByEntry = new Set(entries.map((r) => r.jump as string));
  for (const [chain, owner] of chainOwner) {
    const present = snapshot.chains.has(chain) || enteredByEntry.has(chain);
    if (present && doomed(owner) && (!within || within.chains.has(chain))) chains.add(chain);
  }
  if (chains.size > 0) {
    // Linear in the table: sweeps see tens of thousands of chains.
    const doomedEntries = new Set(entries);
    const keep = new Set<string>();
    for (const r of snapshot.rules) {
      if (chains.has(r.chain) && !isCertain(r)) keep.add(r.chain);
      if (doomedEntries.has(r)) continue;
      for (const t of [r.jump, r.goto]) if (t !== undefined && chains.has(t)) keep.add(t);
      if (!isCertain(r)) {
        for (const m of r.mentions) if (chains.has(m)) keep.add(m);
        // Whatever such a line names, it may enter: every per-container chain name it contains.
        for (const m of r.line.match(/CNI-(?:DN|SN)-[0-9a-f]{21}/g) ?? []) if (chains.has(m)) keep.add(m);
      }
    }
    for (const c of keep) chains.delete(c);
  }
  for (const c of chains) {
    const o = chainOwner.get(c);
    if (o) owners.set(keyOf(o), o);
  }
  return { entries, chains: [...chains].sort(), owners: [...owners.values()] };
}

/** One attachment's (or one unprovable entry's) published ports in one nat table. */
export interface HostportState {
  /** Undefined when only a trimmed comment names it. */
  readonly owner: Attachment | undefined;
  /** The entry rules' comment (for reports when the owner is unknown). */
  readonly comment: string;
  readonly chain: string;
  readonly ports: readonly HostPort[];
}

function option(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `8080,8443`, `8000:8010` -> a predicate; undefined when the list cannot be read. */
function portList(spec: string | undefined): ((p: number) => boolean) | undefined {
  if (spec === undefined) return undefined;
  const ranges: [number, number][] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?::(\d+))?$/.exec(part);
    if (!m) return undefined;
    ranges.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  return (p) => ranges.some(([lo, hi]) => p >= lo && p <= hi);
}

const stripHostMask = (addr: string): string => addr.replace(/\/(?:32|128)$/, '');

/**
 * For stale-port detection: per entered DN chain, the host ports its DNAT
 * rules serve. A DNAT rule counts only for a protocol and port an entry rule
 * lets in: portmap's v6 entry rules list host-IP mappings its v6 chain never
 * got, and a chain nothing enters serves nothing.
 */
export function hostPortsOf(snapshot: Snapshot): HostportState[] {
  const entered = new Map<string, { owner: Attachment | undefined; comment: string; admits: ((proto: string, port: number) => boolean)[] }>();
  for (const r of snapshot.rules) {
    const e = entryOf(r);
    if (!e || e.kind !== 'dnat') continue;
    const args = argsOf(r);
    const proto = option(args, '-p');
    const ports = portList(option(args, '--dports') ?? option(args, '--destination-ports'));
    const admit = (p: string, n: number): boolean => (proto === undefined || proto === p) && (ports === undefined || ports(n));
    const s = entered.get(e.chain) ?? { owner: e.owner, comment: r.comment ?? '', admits: [] };
    s.admits.push(admit);
    entered.set(e.chain, s);
  }
  const dnatRules = new Map<string, Rule[]>();
  for (const r of snapshot.rules) {
    if (r.jump !== 'DNAT' || !isCertain(r) || !entered.has(r.chain)) continue;
    const list = dnatRules.get(r.chain);
    if (list) list.push(r);
    else dnatRules.set(r.chain, [r]);
  }
  const out: HostportState[] = [];
  for (const [chain, s] of entered) {
    const ports: HostPort[] = [];
    for (const r of dnatRules.get(chain) ?? []) {
      const args = argsOf(r);
      const proto = option(args, '-p');
      const port = Number(option(args, '--dport'));
      const destination = option(args, '--to-destination');
      if (proto === undefined || !Number.isInteger(port) || destination === undefined) continue;
      if (!s.admits.some((a) => a(proto, port))) continue;
      const d = option(args, '-d');
      ports.push({ proto, port, hostIp: d === undefined ? undefined : stripHostMask(d), destination });
    }
    out.push({ owner: s.owner, comment: s.comment, chain, ports });
  }
  return out;
}
