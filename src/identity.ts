import { createHash } from 'node:crypto';

/**
 * Names upstream derives for one attachment. These must match
 * containernetworking/plugins pkg/utils byte for byte: the whole product
 * rests on recomputing the chain bridge created without asking bridge.
 */

const sha512hex = (s: string): string => createHash('sha512').update(s).digest('hex');

/**
 * sha512(network + containerID) to 26 hex digits, all any chain name uses.
 * Memoized, and cut from the digest bytes (no 128-digit string kept alive):
 * a sweep of 100,000 attachments names each one's chains five times.
 */
const attachmentHashes = new Map<string, string>();
function attachmentHex(a: Attachment): string {
  const input = a.network + a.containerId;
  let hex = attachmentHashes.get(input);
  if (hex === undefined) {
    if (attachmentHashes.size >= 500_000) attachmentHashes.clear();
    hex = createHash('sha512').update(input).digest().toString('hex', 0, 13);
    attachmentHashes.set(input, hex);
  }
  return hex;
}

/** CNI names and container IDs are limited to this (libcni/pkg/utils). */
export const CNI_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Any masquerade chain upstream ever made: 24 hex today, 25 before v0.7. */
export const MASQ_CHAIN_PATTERN = /^CNI-[0-9a-f]{24,25}$/;

export interface Attachment {
  readonly network: string;
  readonly containerId: string;
}

/** `"CNI-" + sha512(network + containerID)`, 28 characters (no separator). */
export function chainName(a: Attachment): string {
  return 'CNI-' + attachmentHex(a).slice(0, 24);
}

/** Chain names of this attachment across upstream releases (29-char form first used before v0.7). */
export function chainNames(a: Attachment): readonly string[] {
  const hex = attachmentHex(a);
  return ['CNI-' + hex.slice(0, 24), 'CNI-' + hex.slice(0, 25)];
}

/**
 * Go's `fmt.Sprintf("name: %q id: %q")`. %q adds no escapes for names that
 * passed CNI_NAME_PATTERN, so plain quoting is exact.
 */
export function iptablesComment(a: Attachment): string {
  return `name: "${a.network}" id: "${a.containerId}"`;
}

const COMMENT_RE = /^name: "([a-zA-Z0-9][a-zA-Z0-9_.-]*)" id: "([a-zA-Z0-9][a-zA-Z0-9_.-]*)"$/;

/** The attachment an iptables masquerade comment names, if it is one. */
export function parseIptablesComment(comment: string): Attachment | undefined {
  const m = COMMENT_RE.exec(comment);
  return m ? { network: m[1] as string, containerId: m[2] as string } : undefined;
}

/** nft backend (plugins >= v1.6.0): first 16 hex of sha512(network). */
export function nftNetworkHash(network: string): string {
  return sha512hex(network).slice(0, 16);
}

/** nft backend instance key; unlike the iptables chain it includes ifname. */
export function nftInstancePrefix(network: string, ifname: string, containerId: string): string {
  return `${nftNetworkHash(network)}-${sha512hex(`${ifname}:${containerId}`).slice(0, 16)}`;
}

/** knftables.CommentLengthMax: upstream truncates its comment to this. */
export const NFT_COMMENT_MAX = 128;

export function nftComment(network: string, ifname: string, containerId: string): string {
  const strip = (s: string): string => s.replaceAll('"', '');
  const full = `${nftInstancePrefix(network, ifname, containerId)}, net: ${strip(network)}, if: ${strip(ifname)}, id: ${strip(containerId)}`;
  return full.slice(0, NFT_COMMENT_MAX);
}

/*
 * portmap (hostPort) state. Names use MustFormatChainNameWithPrefix(name, id,
 * "DN-"): the same sha512(network + containerID) as the masquerade chain, cut
 * so the whole name is iptables' 28 characters (21 hex).
 */

const HOSTPORT_HASH_LEN = 28 - 'CNI-DN-'.length;

/** Any per-container chain portmap ever made: `CNI-DN-` now, `CNI-SN-` in plugins before v0.7. */
export const HOSTPORT_CHAIN_NAME_PATTERN = /^CNI-(?:DN|SN)-[0-9a-f]{21}$/;

/** portmap's DNAT chain of this attachment (all versions, both families share the name). */
export function dnatChainName(a: Attachment): string {
  return 'CNI-DN-' + attachmentHex(a).slice(0, HOSTPORT_HASH_LEN);
}

/** The SNAT chain very old portmap versions made; newer ones still try to remove it on DEL. */
export function snatChainName(a: Attachment): string {
  return 'CNI-SN-' + attachmentHex(a).slice(0, HOSTPORT_HASH_LEN);
}

/** iptables refuses comments over 255 bytes; portmap's trimComment cuts them to 253 + `...`. */
export const IPTABLES_COMMENT_MAX = 255;

function trimComment(c: string): string {
  // Names are ASCII (CNI_NAME_PATTERN), so characters are bytes here.
  return c.length <= IPTABLES_COMMENT_MAX ? c : c.slice(0, IPTABLES_COMMENT_MAX - 2) + '...';
}

export type PortmapCommentKind = 'dnat' | 'snat';

/** The comment on portmap's entry rules into the DN chain (CNI-HOSTPORT-DNAT). */
export function dnatComment(a: Attachment): string {
  return trimComment(`dnat name: "${a.network}" id: "${a.containerId}"`);
}

/** The comment old portmap put on its entry rules into the SN chain (CNI-HOSTPORT-SNAT). */
export function snatComment(a: Attachment): string {
  return trimComment(`snat name: "${a.network}" id: "${a.containerId}"`);
}

/**
 * The comment as iptables keeps it: the kernel stores at most 255 bytes and
 * iptables silently cuts a longer one (checked on iptables-nft and -legacy
 * 1.8.9), so a trimmed portmap comment is saved as its 253 bytes + `..`.
 */
export function savedComment(comment: string): string {
  return comment.slice(0, IPTABLES_COMMENT_MAX);
}

export interface PortmapComment {
  readonly kind: PortmapCommentKind;
  /** Undefined when the comment was trimmed: the ID it names is incomplete, so it proves nobody. */
  readonly owner: Attachment | undefined;
  readonly trimmed: boolean;
}

const PORTMAP_COMMENT_RE = /^(dnat|snat) name: "([a-zA-Z0-9][a-zA-Z0-9_.-]*)" id: "([a-zA-Z0-9][a-zA-Z0-9_.-]*)"$/;
const NAME_CHARS_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Can `head` be the first 253 bytes of a portmap comment for some valid network and ID? */
function isTrimmedHead(head: string, kind: PortmapCommentKind): boolean {
  const rest = head.slice(`${kind} name: "`.length);
  const q = rest.indexOf('"');
  if (q < 0) return NAME_CHARS_RE.test(rest);
  if (!NAME_CHARS_RE.test(rest.slice(0, q))) return false;
  const tail = rest.slice(q);
  const sep = '" id: "';
  if (tail.length <= sep.length) return sep.startsWith(tail);
  return tail.startsWith(sep) && NAME_CHARS_RE.test(tail.slice(sep.length));
}

/**
 * Read a portmap entry-rule comment as iptables-save prints it (or as
 * portmap wrote it); undefined for anything portmap never writes.
 */
export function parsePortmapComment(comment: string): PortmapComment | undefined {
  const m = PORTMAP_COMMENT_RE.exec(comment);
  if (m && comment.length <= IPTABLES_COMMENT_MAX) {
    return { kind: m[1] as PortmapCommentKind, owner: { network: m[2] as string, containerId: m[3] as string }, trimmed: false };
  }
  // Trimmed: 253 bytes + "..." as portmap passes it, or + ".." as the kernel keeps it.
  const head = comment.slice(0, IPTABLES_COMMENT_MAX - 2);
  const tail = comment.slice(IPTABLES_COMMENT_MAX - 2);
  if (head.length !== IPTABLES_COMMENT_MAX - 2 || (tail !== '..' && tail !== '...')) return undefined;
  const kind = comment.startsWith('dnat name: "') ? 'dnat' : comment.startsWith('snat name: "') ? 'snat' : undefined;
  if (!kind || !isTrimmedHead(head, kind)) return undefined;
  return { kind, owner: undefined, trimmed: true };
}
