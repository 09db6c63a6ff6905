import { ok, type Result } from '../cni/errors.js';
import type { Runner } from '../backends/exec.js';
import { applyNft, listMasqChecks, type NftError } from '../backends/nft.js';
import type { NftPlan } from '../plan/nft-plan.js';
import { renderNft } from '../plan/nft-plan.js';
import type { NftRule } from '../plan/nft-rules.js';

export interface NftReport {
  readonly table: 'nft inet cni_plugins_masquerade';
  readonly rules: number;
  readonly skipped?: string;
}

const ATTEMPTS = 3;

/**
 * List, plan, delete by handle in one transaction. A handle that vanished
 * between list and delete (another DEL, bridge's own teardown) fails the
 * whole batch, so read again and re-plan.
 */
export async function removeNftRules(
  run: Runner,
  plan: (rules: readonly NftRule[]) => NftPlan,
  /** A listing the caller already has (GC, sweep): the first attempt plans from it instead of listing again. */
  known?: readonly NftRule[],
  chunk = 20_000,
): Promise<Result<NftReport, NftError>> {
  let last: NftError | undefined;
  let removed = 0;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const listed = attempt === 1 && known !== undefined ? ok(known) : await listMasqChecks(run);
    if (!listed.ok) {
      if (listed.error.kind === 'missing-tool') return ok({ table: 'nft inet cni_plugins_masquerade', rules: 0, skipped: listed.error.message });
      return listed;
    }
    const doomed = plan(listed.value).rules;
    if (doomed.length === 0) return ok({ table: 'nft inet cni_plugins_masquerade', rules: removed });
    let failed = false;
    for (const part of chunkByInstance(doomed, chunk)) {
      const r = await applyNft(run, renderNft({ rules: part }));
      if (!r.ok) {
        if (r.error.kind !== 'vanished') return r;
        last = r.error;
        failed = true;
        break;
      }
      removed += part.length;
    }
    if (!failed) return ok({ table: 'nft inet cni_plugins_masquerade', rules: removed });
  }
  return { ok: false, error: last ?? { kind: 'failed', message: 'nft: gave up' } };
}

/** Batches of about `size` rules that never split one instance's rules (v4 and v6) across two transactions. */
export function chunkByInstance(rules: readonly NftRule[], size: number): NftRule[][] {
  const groups = new Map<string, NftRule[]>();
  for (const r of rules) {
    const key = r.comment?.split(',')[0] ?? `handle ${r.handle}`;
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
