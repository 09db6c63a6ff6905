import { fail, ok, retryable, type JanitorError, type Result } from '../errors.js';
import type { Selection } from './selection.js';

/**
 * The small interface both backends implement (as upstream portmap's
 * PortMapper): read a table, plan from it (pure), apply a plan as one
 * transaction. `converge` is the one retry loop every verb uses.
 */

export interface Attempt {
  /** 1, 2, ... */
  readonly n: number;
  /** Read the whole table (a retry always does); otherwise what can hold one attachment's state. */
  readonly whole: boolean;
  /** Count lines that cannot be read for sure as references (a retry after the kernel refused). */
  readonly conservative: boolean;
}

/** What one transaction (or the chunks of one plan) removed. */
export interface Removed {
  readonly jumps: number;
  readonly chains: number;
  readonly rules: number;
  readonly transactions: number;
}

export const NONE_REMOVED: Removed = { jumps: 0, chains: 0, rules: 0, transactions: 0 };

const add = (a: Removed, b: Removed): Removed => ({ jumps: a.jumps + b.jumps, chains: a.chains + b.chains, rules: a.rules + b.rules, transactions: a.transactions + b.transactions });

export type Progress = (line: string) => void;

export interface Backend<S, P> {
  /** For reports: `iptables-nft v4 nat`, `nft inet cni_plugins_masquerade`. */
  readonly where: string;
  /** undefined: this table does not exist here, so it holds nothing. */
  read(attempt: Attempt): Promise<Result<S | undefined, JanitorError>>;
  /** Pure: what goes, from this snapshot and selection, within what an earlier attempt doomed. */
  plan(snapshot: S, selection: Selection, attempt: Attempt, within: P | undefined): P;
  isEmpty(plan: P): boolean;
  /**
   * Complete transactions only; on failure, what the transactions before it
   * removed. `final`: the failure came after the removal (reading again
   * would find nothing left to plan), so it is reported, not retried.
   */
  apply(plan: P, progress: Progress): Promise<{ readonly removed: Removed; readonly error?: JanitorError; readonly final?: boolean }>;
}

export interface Outcome<P> {
  readonly where: string;
  readonly removed: Removed;
  readonly attempts: number;
  /** The first plan made from evidence (what a report lists). */
  readonly plan: P | undefined;
  readonly skipped?: string;
}

export interface ConvergeOptions<P> {
  readonly attempts?: number;
  /** Whether the first attempt reads the whole table (GC, sweep) or only what one attachment can hold (DEL). */
  readonly firstWhole: boolean;
  /** A plan made without reading (DEL's fast path): tried first; if the table is otherwise, the kernel refuses it. */
  readonly speculative?: P;
  readonly progress?: Progress;
  /**
   * Attempt 1's plan, made by the caller from its own read and attempt 1's
   * evidence (sweep's report): applied as it is, so the caller need not keep
   * the snapshot (100,000 attachments) while the transaction runs. A retry
   * reads again, as always.
   */
  readonly planned?: unknown;
}

/**
 * Read, then the evidence, plan, apply; on a failed transaction read the
 * table AND the evidence again, and plan only within what the first plan
 * doomed. So a retry never removes what the first look kept, and never
 * decides from records read before the table moved.
 */
export async function converge<S, P>(b: Backend<S, P>, evidence: (attempt: Attempt) => Promise<Selection>, opts: ConvergeOptions<P>): Promise<Result<Outcome<P>, JanitorError>> {
  const progress = opts.progress ?? (() => {});
  let removed = NONE_REMOVED;
  if (opts.speculative !== undefined && !b.isEmpty(opts.speculative)) {
    const r = await b.apply(opts.speculative, progress);
    removed = add(removed, r.removed);
    if (r.error === undefined) return ok({ where: b.where, removed, attempts: 0, plan: opts.speculative });
    // A missing restore binary does not mean there is nothing to read: the table may hold nothing of ours.
    if ((!retryable(r.error) && r.error.kind !== 'missing-tool') || r.final === true) return fail(r.error);
  }
  const attempts = opts.attempts ?? 3;
  let within: P | undefined;
  let first: P | undefined;
  let last: JanitorError | undefined;
  for (let n = 1; n <= attempts; n++) {
    const attempt: Attempt = { n, whole: n > 1 || opts.firstWhole, conservative: n > 1 };
    let plan: P;
    if (n === 1 && opts.planned !== undefined) plan = opts.planned as P;
    else {
      const read = await b.read(attempt);
      if (!read.ok) {
        if (read.error.kind === 'missing-tool') return ok({ where: b.where, removed, attempts: n, plan: first, skipped: read.error.message });
        return fail(read.error);
      }
      if (read.value === undefined) return ok({ where: b.where, removed, attempts: n, plan: first, skipped: 'table absent' });
      // Evidence is read after the table, on every attempt: what was recorded by now is what counts.
      const selection = await evidence(attempt);
      plan = b.plan(read.value, selection, attempt, within);
    }
    first ??= plan;
    within ??= plan;
    if (b.isEmpty(plan)) return ok({ where: b.where, removed, attempts: n, plan: first });
    const r = await b.apply(plan, progress);
    removed = add(removed, r.removed);
    if (r.error === undefined) return ok({ where: b.where, removed, attempts: n, plan: first });
    if (!retryable(r.error) || r.final === true) return fail(r.error);
    last = r.error;
    progress(`${b.where}: a transaction failed (${r.error.message}); reading the table and the records again`);
  }
  return fail(last ?? { kind: 'failed', message: `${b.where}: gave up` });
}
