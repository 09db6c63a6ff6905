import { fail, ok, type Result } from '../cni/errors.js';
import type { Attachment } from '../identity.js';
import type { Runner } from '../backends/exec.js';
import { listMasqChecks } from '../backends/nft.js';
import { restore, saveNat, type Xtables, type XtablesError } from '../backends/xtables.js';
import { isEmptyPlan, planSelection, type IptablesPlan } from '../plan/iptables-plan.js';
import type { Snapshot } from '../plan/iptables-save.js';
import type { NftPlan } from '../plan/nft-plan.js';
import type { NftRule } from '../plan/nft-rules.js';
import { chunkPlan, renderRestore } from '../plan/restore-text.js';
import { removeNftRules } from './nft.js';

/**
 * GC and sweep: read every table that can hold masquerade state, plan the
 * removal of whatever a predicate dooms, and apply it one transaction per
 * table (chunked where one would be too slow).
 */

export interface TableState {
  readonly xt: Xtables;
  readonly snapshot: Snapshot;
}

export interface HostState {
  readonly tables: readonly TableState[];
  /** undefined when there is no nft binary. */
  readonly nft: readonly NftRule[] | undefined;
  readonly errors: readonly string[];
}

export async function readHostState(run: Runner, variants: readonly Xtables[]): Promise<HostState> {
  const errors: string[] = [];
  const tables: TableState[] = [];
  const [nft, ...saved] = await Promise.all([listMasqChecks(run), ...variants.map((xt) => saveNat(run, xt))]);
  saved.forEach((s, i) => {
    if (s.ok) tables.push({ xt: variants[i] as Xtables, snapshot: s.value });
    else if (s.error.kind !== 'missing-tool') errors.push(s.error.message);
  });
  if (!nft.ok && nft.error.kind !== 'missing-tool') errors.push(nft.error.message);
  return { tables, nft: nft.ok ? nft.value : undefined, errors };
}

/** Attachments per transaction. iptables-nft deletes grow super-linearly with batch size; legacy pays per batch. */
export function chunkSize(xt: Xtables): number {
  return xt.variant === 'legacy' ? 20_000 : 1_000;
}

export interface TableOutcome {
  readonly table: string;
  readonly jumps: number;
  readonly chains: number;
  readonly transactions: number;
}

export type Progress = (line: string) => void;

const ATTEMPTS = 3;

/** Apply the selection to one table; a batch that fails re-reads the table and re-plans what is left. */
export async function applyToTable(
  run: Runner,
  state: TableState,
  doomed: (a: Attachment) => boolean,
  wait: number,
  progress: Progress,
): Promise<Result<TableOutcome, XtablesError>> {
  const name = `${state.xt.base} nat`;
  let snapshot = state.snapshot;
  let jumps = 0;
  let chains = 0;
  let transactions = 0;
  let lastError: XtablesError | undefined;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const plan: IptablesPlan = planSelection(snapshot, doomed);
    if (isEmptyPlan(plan)) return ok({ table: name, jumps, chains, transactions });
    const parts = chunkPlan(plan, chunkSize(state.xt));
    if (attempt === 1) progress(`${name}: removing ${plan.remove.length} chains and ${plan.jumps.length} jumps in ${parts.length} transaction${parts.length === 1 ? '' : 's'}`);
    let failed = false;
    for (const [i, part] of parts.entries()) {
      if (parts.length > 1) progress(`${name}: transaction ${i + 1}/${parts.length} (${part.remove.length} chains)`);
      const r = await restore(run, state.xt, renderRestore(part), wait);
      if (!r.ok) {
        lastError = r.error;
        failed = true;
        break;
      }
      transactions++;
      jumps += part.jumps.length;
      chains += part.remove.length;
    }
    if (!failed) return ok({ table: name, jumps, chains, transactions });
    if (lastError?.kind !== 'failed') break;
    progress(`${name}: a transaction failed (${lastError.message}); re-reading the table`);
    const again = await saveNat(run, state.xt);
    if (!again.ok) return again;
    snapshot = again.value;
  }
  return fail(lastError ?? { kind: 'failed', message: `${name}: gave up` });
}

export interface SelectionOutcome {
  readonly tables: readonly TableOutcome[];
  readonly nftRules: number;
  readonly errors: readonly string[];
}

/** Every table, then nft; errors do not stop the rest (GC: "remove as much as possible"). */
export async function applySelection(
  run: Runner,
  state: HostState,
  doomed: (a: Attachment) => boolean,
  nftPlan: (rules: readonly NftRule[]) => NftPlan,
  wait: number,
  progress: Progress = () => {},
): Promise<SelectionOutcome> {
  const errors = [...state.errors];
  const tables: TableOutcome[] = [];
  for (const t of state.tables) {
    const r = await applyToTable(run, t, doomed, wait, progress);
    if (r.ok) tables.push(r.value);
    else errors.push(r.error.message);
  }
  let nftRules = 0;
  const nftDoomed = state.nft === undefined ? 0 : nftPlan(state.nft).rules.length;
  if (nftDoomed > 0) {
    progress(`nft inet cni_plugins_masquerade: removing ${nftDoomed} rules`);
    const r = await removeNftRules(run, nftPlan, state.nft);
    if (r.ok) nftRules = r.value.rules;
    else errors.push(r.error.message);
  }
  return { tables, nftRules, errors };
}
