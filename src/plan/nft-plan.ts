import { nftComment, nftInstancePrefix, nftNetworkHash } from '../identity.js';
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

/** GC: rules of `network` whose full comment is none of the valid attachments' (as upstream's gcIPMasqNFTables). */
export function planNftGc(rules: readonly NftRule[], network: string, valid: readonly { containerId: string; ifname: string }[]): NftPlan {
  const prefix = nftNetworkHash(network) + '-';
  const keep = new Set(valid.map((a) => nftComment(network, a.ifname, a.containerId)));
  return { rules: rules.filter((r) => r.comment !== undefined && r.comment.startsWith(prefix) && r.owner?.network === network && !keep.has(r.comment)) };
}

/** Sweep: rules whose proven owner the predicate dooms. Rules without a provable owner stay. */
export function planNftSelection(rules: readonly NftRule[], doomed: (o: NftOwner) => boolean): NftPlan {
  return { rules: rules.filter((r) => r.owner !== undefined && doomed(r.owner)) };
}

/** One `nft -f` transaction; handles are integers, so nothing else can reach the text. */
export function renderNft(plan: NftPlan): string {
  return plan.rules.map((r) => `delete rule inet ${NFT_TABLE} ${NFT_CHAIN} handle ${Math.trunc(r.handle)}\n`).join('');
}
