import { NFT_COMMENT_MAX, nftNetworkHash } from '../../identity.js';
import type { Selection } from '../selection.js';
import { unverifiedOwner, type NftOwner, type NftRule } from './parse.js';

/**
 * The nft planner: every masq_checks rule DEL, GC and sweep delete is
 * chosen here. A rule goes only if its comment's hashes prove whose it is
 * and the selection says that interface is gone. The table and its chains
 * are shared and never removed.
 */
export interface NftPlan {
  readonly rules: readonly NftRule[];
}

export const EMPTY_NFT_PLAN: NftPlan = { rules: [] };

/**
 * A comment cut at 128 characters inside the network name proves only the
 * network's hash: attribute it to `network` if what is left agrees with it.
 */
export function cutOwner(r: NftRule, network: string): NftOwner | undefined {
  const c = r.comment;
  if (c === undefined || c.length !== NFT_COMMENT_MAX) return undefined;
  const m = /^([0-9a-f]{16})-([0-9a-f]{16}), net: /.exec(c);
  if (!m || m[1] !== nftNetworkHash(network)) return undefined;
  const head = `${m[1]}-${m[2]}, net: ${network}, if: `;
  if (!(head.startsWith(c) || c.startsWith(head))) return undefined;
  return { network, ifname: '', containerId: '', truncated: true, instance: `${m[1]}-${m[2]}` };
}

/**
 * `networks`: the networks the caller knows by name (DEL's, GC's), so that
 * comments cut inside their name can still be attributed. `within`: the
 * handles an earlier attempt doomed.
 */
export function planNft(rules: readonly NftRule[], selection: Selection, networks: readonly string[] = [], within?: ReadonlySet<number>): NftPlan {
  return {
    rules: rules.filter((r) => {
      if (within && !within.has(r.handle)) return false;
      const owner = r.owner ?? networks.map((n) => cutOwner(r, n) ?? (r.comment === undefined ? undefined : unverifiedOwner(r.comment, n))).find((o) => o !== undefined);
      if (!owner) return false;
      return selection.interfaceGone({ network: owner.network, containerId: owner.containerId, ifname: owner.ifname, truncated: owner.truncated, instance: owner.instance, ...(owner.unverified ? { unverified: true } : {}) });
    }),
  };
}
