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
export async function removeNftRules(run: Runner, plan: (rules: readonly NftRule[]) => NftPlan, chunk = 5000): Promise<Result<NftReport, NftError>> {
  let last: NftError | undefined;
  let removed = 0;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const listed = await listMasqChecks(run);
    if (!listed.ok) {
      if (listed.error.kind === 'missing-tool') return ok({ table: 'nft inet cni_plugins_masquerade', rules: 0, skipped: listed.error.message });
      return listed;
    }
    const doomed = plan(listed.value).rules;
    if (doomed.length === 0) return ok({ table: 'nft inet cni_plugins_masquerade', rules: removed });
    let failed = false;
    for (let i = 0; i < doomed.length; i += chunk) {
      const part = doomed.slice(i, i + chunk);
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
