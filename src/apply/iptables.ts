import { fail, ok, type Result } from '../cni/errors.js';
import type { Attachment } from '../identity.js';
import type { Logger } from '../log.js';
import { EMPTY_PLAN, isEmptyPlan, planAttachmentTeardown, type ChainPolicy, type IptablesPlan } from '../plan/iptables-plan.js';
import { renderRestore } from '../plan/restore-text.js';
import type { Runner } from '../backends/exec.js';
import { legacyHasNat } from '../backends/variants.js';
import { chainExists, listChain, restore, runTolerant, type Xtables, type XtablesError } from '../backends/xtables.js';
import { chainName } from '../identity.js';

export interface TeardownReport {
  readonly table: string;
  readonly jumps: number;
  readonly chainsFlushed: number;
  readonly chainsRemoved: number;
  /** Why nothing was looked at, when nothing was. */
  readonly skipped?: string;
  /** The batch kept failing and single tolerant commands finished the job. */
  readonly fallback?: boolean;
}

const ATTEMPTS = 3;

const report = (xt: Xtables, p: IptablesPlan, fallback = false): TeardownReport => ({
  table: `${xt.base} nat`,
  jumps: p.jumps.length,
  chainsFlushed: p.flush.length,
  chainsRemoved: p.remove.length,
  ...(fallback ? { fallback } : {}),
});

/**
 * One attachment's masquerade state in one nat table, as one transaction:
 * list POSTROUTING, plan, restore. A batch that fails because the table
 * moved under us (another plugin, another DEL) is planned again from a
 * fresh listing; after that, single commands that tolerate "not found".
 */
export async function teardownAttachment(
  run: Runner,
  xt: Xtables,
  a: Attachment,
  policy: ChainPolicy,
  wait: number,
  log: Logger,
): Promise<Result<TeardownReport, XtablesError>> {
  // Listing a legacy table loads it; no legacy nat table in this netns means no state in it.
  if (xt.backend === 'legacy' && !legacyHasNat(xt.family)) return ok({ ...report(xt, EMPTY_PLAN), skipped: 'no legacy nat table' });
  let plan: IptablesPlan | undefined;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const snap = await listChain(run, xt, 'POSTROUTING', wait);
    if (!snap.ok) {
      // No iptables binary for this family: nothing can have made rules with it.
      if (snap.error.kind === 'missing-tool') return ok({ ...report(xt, EMPTY_PLAN), skipped: snap.error.message });
      return snap;
    }
    let snapshot = snap.value;
    plan = planAttachmentTeardown(snapshot, a, policy);
    if (isEmptyPlan(plan) && policy === 'remove-chain') {
      // No jump proves the chain; it may still be there, emptied or unreferenced (an earlier partial cleanup).
      const own = chainName(a);
      const exists = await chainExists(run, xt, own, wait);
      if (!exists.ok) return exists;
      if (!exists.value) return ok(report(xt, plan));
      snapshot = { ...snapshot, chains: new Set([...snapshot.chains, own]) };
      plan = planAttachmentTeardown(snapshot, a, policy);
    }
    if (isEmptyPlan(plan)) return ok(report(xt, plan));
    const applied = await restore(run, xt, renderRestore(plan), wait);
    if (applied.ok) return ok(report(xt, plan));
    if (applied.error.kind !== 'failed') return applied;
    log.info({ table: xt.base, attempt, error: applied.error.message }, 'restore batch failed; re-reading the table');
  }
  return singleCommands(run, xt, plan as IptablesPlan, wait);
}

async function singleCommands(run: Runner, xt: Xtables, plan: IptablesPlan, wait: number): Promise<Result<TeardownReport, XtablesError>> {
  const steps: string[][] = [
    ...plan.jumps.map((j) => ['-D', j.chain, ...j.args]),
    ...plan.flush.map((c) => ['-F', c]),
    ...plan.remove.map((c) => ['-X', c]),
  ];
  const errors: XtablesError[] = [];
  for (const step of steps) {
    const r = await runTolerant(run, xt, step, wait);
    if (!r.ok) errors.push(r.error);
  }
  if (errors.length > 0) {
    const kind = errors.some((e) => e.kind === 'lock') ? 'lock' : 'failed';
    return fail({ kind, message: errors.map((e) => e.message).join('; ') });
  }
  return ok(report(xt, plan, true));
}
