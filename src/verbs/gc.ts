import { converge, type Attempt } from '../backends/backend.js';
import { hostBackends } from '../backends/host.js';
import { Code, cniError } from '../cni/errors.js';
import type { JanitorError } from '../errors.js';
import { readRecords } from '../records/recorded.js';
import { gcSelection } from '../records/selections.js';
import { NONE, type Reply, type VerbContext } from './context.js';

/**
 * GC (cniVersion 1.1.0): remove this network's masquerade state whose
 * interface the runtime no longer lists. Keeps going past errors and
 * reports them all, as the spec asks; like DEL, they fail GC only when
 * `"strict": true`.
 */
export async function gc(ctx: VerbContext): Promise<Reply> {
  const { conf, run, log } = ctx;
  if (!conf.settings.gc) return NONE;
  const valid = conf.validAttachments;
  if (valid === undefined) {
    // No list means the runtime did not say what is valid; assuming "nothing" would wipe live containers.
    log.info({ network: conf.name }, 'GC without cni.dev/valid-attachments: nothing to do');
    return NONE;
  }
  // libcni's cache only refines which of a valid container's iptables jumps belong to an invalid interface.
  // Read after each read of each table (the attempt's), never shared with another table's.
  const evidence = async (_a: Attempt) => gcSelection(conf.name, valid, readRecords(conf.settings.stateDir, { reservations: false }));
  const backends = hostBackends(run, ctx.path, conf.settings.lockWait, [conf.name]);
  const outcomes = [];
  const errors: JanitorError[] = [];
  for (const b of backends) {
    const r = await converge<unknown, unknown>(b, evidence, { firstWhole: true });
    if (r.ok) outcomes.push({ table: r.value.where, ...r.value.removed, ...(r.value.skipped ? { skipped: r.value.skipped } : {}) });
    else errors.push(r.error);
  }
  log.info({ network: conf.name, valid: valid.length, tables: outcomes, errors: errors.map((e) => e.message) }, 'GC done');
  if (errors.length === 0) return NONE;
  if (!conf.settings.strict) {
    log.error({ network: conf.name, errors: errors.map((e) => e.message) }, 'masquerade GC incomplete; reported only (not strict)');
    return NONE;
  }
  const code = errors.some((e) => e.kind === 'lock') ? Code.TryAgainLater : Code.IoFailure;
  return { kind: 'error', error: cniError(code, 'masquerade GC incomplete', errors.map((e) => e.message).join('; ')) };
}
