import { fail, ok, type Result } from '../cni/errors.js';
import { chainName, type Attachment } from '../identity.js';
import type { Logger } from '../log.js';
import { chainOwner, EMPTY_PLAN, isEmptyPlan, planAttachmentTeardown, planKnownJumps, type ChainPolicy, type IptablesPlan } from '../plan/iptables-plan.js';
import { renderRestore } from '../plan/restore-text.js';
import type { Runner } from '../backends/exec.js';
import { legacyHasNat } from '../backends/variants.js';
import { listChain, listChainIfExists, restore, runTolerant, saveNat, type Xtables, type XtablesError } from '../backends/xtables.js';
import { enters } from '../plan/iptables-save.js';

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
 * with prevResult's addresses, a planned batch first; otherwise (or if it
 * does not fit) list POSTROUTING, plan, restore. A batch that fails because the table
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
  knownIps: readonly string[] = [],
): Promise<Result<TeardownReport, XtablesError>> {
  // Listing a legacy table loads it; no legacy nat table in this netns means no state in it.
  if (xt.backend === 'legacy' && !legacyHasNat(xt.family)) return ok({ ...report(xt, EMPTY_PLAN), skipped: 'no legacy nat table' });
  // One process instead of two in the case this product exists for: a leak with prevResult in hand.
  const fast = policy === 'remove-chain' ? planKnownJumps(a, knownIps, xt.family) : undefined;
  if (fast) {
    const applied = await restore(run, xt, renderRestore(fast), wait);
    if (applied.ok) return ok(report(xt, fast));
    // A held lock is final; anything else (the batch did not fit, no restore binary) is sorted out by reading the table.
    if (applied.error.kind === 'lock') return applied;
    log.debug({ table: xt.base, error: applied.error.message }, 'fast path did not fit the table; reading it');
  }
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
      const listed = await listChainIfExists(run, xt, own, wait);
      if (!listed.ok) return listed;
      if (listed.value === undefined) return ok(report(xt, plan));
      // Take it only if it is empty or its rules say it is ours: another attachment can hash to the same name.
      const owner = chainOwner(own, listed.value.rules);
      if (listed.value.rules.length > 0 && (owner?.network !== a.network || owner.containerId !== a.containerId)) {
        return ok({ ...report(xt, plan), skipped: `${own} exists but its rules do not name this attachment` });
      }
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

/**
 * The last resort: single commands that tolerate "already gone". The
 * batches failed, and a POSTROUTING listing cannot show a reference from
 * another chain, so the whole table is read before any chain is emptied:
 * a chain that something else still enters is left whole.
 */
async function singleCommands(run: Runner, xt: Xtables, plan: IptablesPlan, wait: number): Promise<Result<TeardownReport, XtablesError>> {
  const errors: XtablesError[] = [];
  for (const j of plan.jumps) {
    const r = await runTolerant(run, xt, ['-D', j.chain, ...j.args], wait);
    if (!r.ok) errors.push(r.error);
  }
  const table = await saveNat(run, xt);
  if (!table.ok) return table;
  const free = (c: string): boolean => !table.value.rules.some((r) => enters(r, c));
  const flush = plan.flush.filter(free);
  const remove = plan.remove.filter(free);
  for (const step of [...flush.map((c) => ['-F', c]), ...remove.map((c) => ['-X', c])]) {
    const r = await runTolerant(run, xt, step, wait);
    if (!r.ok) errors.push(r.error);
  }
  const kept = plan.flush.filter((c) => !free(c));
  if (errors.length > 0 || kept.length > 0) {
    const kind = errors.some((e) => e.kind === 'lock') ? 'lock' : 'failed';
    const why = [...errors.map((e) => e.message), ...kept.map((c) => `${c} left whole: another rule still enters it`)];
    return fail({ kind, message: why.join('; ') });
  }
  return ok(report(xt, { ...plan, flush, remove }, true));
}
