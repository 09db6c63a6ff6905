import { createHash } from 'node:crypto';

/**
 * Names upstream derives for one attachment. These must match
 * containernetworking/plugins pkg/utils byte for byte: the whole product
 * rests on recomputing the chain bridge created without asking bridge.
 */

const sha512hex = (s: string): string => createHash('sha512').update(s).digest('hex');

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
  return 'CNI-' + sha512hex(a.network + a.containerId).slice(0, 24);
}

/** Chain names of this attachment across upstream releases (29-char form first used before v0.7). */
export function chainNames(a: Attachment): readonly string[] {
  const hex = sha512hex(a.network + a.containerId);
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
