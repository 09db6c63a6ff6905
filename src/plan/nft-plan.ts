import { NFT_COMMENT_MAX, nftComment, nftInstancePrefix, nftNetworkHash } from '../identity.js';
import { NFT_CHAIN, NFT_TABLE, type NftOwner, type NftRule } from './nft-rules.js';

/** Rules to delete from masq_checks, by handle. The table and its chains are shared and never removed. */
export interface NftPlan {
  readonly rules: readonly NftRule[];
}

/** DEL: every rule of this instance (upstream's own teardown selects by this prefix too). */
export function planNftAttachment(rules: readonly NftRule[], network: string, ifname: string, containerId: string): NftPlan {
  const prefix = nftInstancePrefix(network, ifname, containerId) + ',';
  return { rules: rules.filter((r) => r.comment?.startsWith(prefix)) };
}

/**
 * Does this rule provably belong to `network`? Its hashes must check out;
 * where upstream's 128-character cut fell inside the name, what is left must
 * agree with this network's comment as far as it goes.
 */
export function belongsToNetwork(r: NftRule, network: string): boolean {
  if (r.owner) return r.owner.network === network;
  const c = r.comment;
  if (c === undefined || c.length !== NFT_COMMENT_MAX) return false;
  const m = /^([0-9a-f]{16})-([0-9a-f]{16}), net: /.exec(c);
  if (!m || m[1] !== nftNetworkHash(network)) return false;
  const head = `${m[1]}-${m[2]}, net: ${network}, if: `;
  return head.startsWith(c) || c.startsWith(head);
}

/** GC: rules of `network` whose full comment is none of the valid attachments' (as upstream's gcIPMasqNFTables). */
export function planNftGc(rules: readonly NftRule[], network: string, valid: readonly { containerId: string; ifname: string }[]): NftPlan {
  const keep = new Set(valid.map((a) => nftComment(network, a.ifname, a.containerId)));
  return { rules: rules.filter((r) => r.comment !== undefined && !keep.has(r.comment) && belongsToNetwork(r, network)) };
}

/** Sweep: rules whose proven owner the predicate dooms. Rules without a provable owner stay. */
export function planNftSelection(rules: readonly NftRule[], doomed: (o: NftOwner) => boolean): NftPlan {
  return { rules: rules.filter((r) => r.owner !== undefined && doomed(r.owner)) };
}

/** One `nft -f` transaction; handles are integers, so nothing else can reach the text. */
export function renderNft(plan: NftPlan): string {
  return plan.rules.map((r) => `delete rule inet ${NFT_TABLE} ${NFT_CHAIN} handle ${Math.trunc(r.handle)}\n`).join('');
}
