import * as z from 'zod/mini';
import '../../cni/zod.js';
import { CNI_NAME_PATTERN, nftComment, nftNetworkHash } from '../../identity.js';

/** The nftables masquerade backend's objects (plugins >= v1.6.0). */
export const NFT_TABLE = 'cni_plugins_masquerade';
export const NFT_CHAIN = 'masq_checks';

export interface NftOwner {
  readonly network: string;
  readonly ifname: string;
  /** Possibly cut short: upstream truncates the whole comment to 128 characters. */
  readonly containerId: string;
  readonly truncated: boolean;
  /** `<16 hex>-<16 hex>`: the instance hash, whole even when the comment was cut. */
  readonly instance: string;
  /** The text's fields do not hash to `instance` (quotes stripped, or forged): only an exact instance match counts. */
  readonly unverified?: true;
}

export interface NftRule {
  readonly handle: number;
  readonly comment: string | undefined;
  /** Source addresses the rule matches, for reports. */
  readonly saddr: readonly string[];
  /** Set only when the comment's hashes prove the fields. */
  readonly owner: NftOwner | undefined;
}

const Match = z.looseObject({
  match: z.looseObject({ left: z.looseObject({ payload: z.optional(z.looseObject({ field: z.string() })) }), right: z.unknown() }),
});
/** One rule of an `nft -j list` answer: every backend's rules come in this shape. */
const RuleJson = z.looseObject({
  rule: z.looseObject({
    family: z.string(),
    table: z.string(),
    chain: z.string(),
    handle: z.int().check(z.nonnegative()),
    comment: z.optional(z.string()),
    expr: z.optional(z.array(z.unknown())),
  }),
});
/** The `nft -j list` document. */
const Listing = z.looseObject({ nftables: z.array(z.unknown()) });

export type RuleItem = z.infer<typeof RuleJson>['rule'];

/** The rules of an `nft -j list` answer (other objects, and items that are no rule, are skipped); throws on a document that is none. */
export function listingRules(json: string): RuleItem[] {
  const out: RuleItem[] = [];
  for (const item of Listing.parse(JSON.parse(json)).nftables) {
    const parsed = RuleJson.safeParse(item);
    if (parsed.success) out.push(parsed.data.rule);
  }
  return out;
}

const COMMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16}), net: (.*), if: (.*), id: (.*)$/s;

/** Who a masq_checks comment belongs to, checked against both hashes it carries. */
export function nftCommentOwner(comment: string): NftOwner | undefined {
  const m = COMMENT_RE.exec(comment);
  if (!m) return undefined;
  const [, netHash, ifHash, network, ifname, containerId] = m as unknown as [string, string, string, string, string, string];
  if (!CNI_NAME_PATTERN.test(network) || nftNetworkHash(network) !== netHash) return undefined;
  const exact = nftComment(network, ifname, containerId) === comment;
  // A truncated comment (128 chars) cannot prove its id; it proves the network and the instance hash only.
  const truncated = !exact && comment.length === 128;
  if (!exact && !truncated) return undefined;
  return { network, ifname, containerId, truncated, instance: `${netHash}-${ifHash}` };
}

/**
 * Bridge hashes the raw fields but strips '"' from the text (an ifname like
 * e"th), so such a comment's instance hash cannot be recomputed from its
 * text. For a network the caller knows (DEL's, GC's), it is attributed by
 * the network hash, and then matched by its instance hash alone.
 */
export function unverifiedOwner(comment: string, network: string): NftOwner | undefined {
  const m = COMMENT_RE.exec(comment);
  if (!m || m[3] !== network || nftNetworkHash(network) !== m[1]) return undefined;
  return { network, ifname: m[4] as string, containerId: m[5] as string, truncated: false, instance: `${m[1]}-${m[2]}`, unverified: true };
}

/** Parse `nft -j list chain inet cni_plugins_masquerade masq_checks`. */
export function parseNftListing(json: string): NftRule[] {
  const rules: NftRule[] = [];
  for (const r of listingRules(json)) {
    if (r.family !== 'inet' || r.table !== NFT_TABLE || r.chain !== NFT_CHAIN) continue;
    const saddr = (r.expr ?? []).flatMap((e) => {
      const m = Match.safeParse(e);
      return m.success && m.data.match.left.payload?.field === 'saddr' && typeof m.data.match.right === 'string' ? [m.data.match.right] : [];
    });
    rules.push({ handle: r.handle, comment: r.comment, saddr, owner: r.comment === undefined ? undefined : nftCommentOwner(r.comment) });
  }
  return rules;
}
