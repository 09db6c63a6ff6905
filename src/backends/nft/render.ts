import { NFT_CHAIN, NFT_TABLE, type NftRule } from './parse.js';
import type { NftPlan } from './plan.js';

/** One `nft -f` transaction; handles are integers, so nothing else can reach the text. */
export function renderNft(plan: NftPlan): string {
  return plan.rules
    .map((r) => {
      if (!Number.isSafeInteger(r.handle) || r.handle < 0) throw new Error(`refusing to render nft handle ${String(r.handle)}`);
      return `delete rule inet ${NFT_TABLE} ${NFT_CHAIN} handle ${r.handle}\n`;
    })
    .join('');
}

/** The instance a rule belongs to: its v4 and v6 rules must go in one transaction. */
const instanceOf = (r: NftRule): string => r.owner?.instance ?? r.comment?.split(',')[0] ?? `handle ${r.handle}`;

/** Batches of about `size` rules that never split one instance's rules (v4 and v6) across two transactions. */
export function chunkByInstance(rules: readonly NftRule[], size: number): NftRule[][] {
  const groups = new Map<string, NftRule[]>();
  for (const r of rules) {
    const key = instanceOf(r);
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  const out: NftRule[][] = [];
  let cur: NftRule[] = [];
  for (const g of groups.values()) {
    if (cur.length > 0 && cur.length + g.length > size) {
      out.push(cur);
      cur = [];
    }
    cur.push(...g);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
