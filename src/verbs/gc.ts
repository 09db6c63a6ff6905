import { applySelection, readHostState } from '../apply/selection.js';
import { allVariants } from '../backends/variants.js';
import { LOCK_HELD } from '../backends/xtables.js';
import { Code, cniError } from '../cni/errors.js';
import { planNftGc } from '../plan/nft-plan.js';
import { NONE, type Reply, type VerbContext } from './context.js';

/**
 * GC (cniVersion 1.1.0): remove this network's masquerade state whose
 * attachment the runtime no longer lists. Keeps going past errors and
 * reports them all, as the spec asks.
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
  const validIds = new Set(valid.map((a) => a.containerId));
  const variants = [...allVariants(4, ctx.path), ...allVariants(6, ctx.path)];
  const state = await readHostState(run, variants);
  const outcome = await applySelection(
    run,
    state,
    (a) => a.network === conf.name && !validIds.has(a.containerId),
    (rules) => planNftGc(rules, conf.name, valid),
    conf.settings.lockWait,
  );
  log.info({ network: conf.name, valid: valid.length, tables: outcome.tables, nftRules: outcome.nftRules, errors: outcome.errors }, 'GC done');
  if (outcome.errors.length === 0) return NONE;
  // Errors arrive as messages (GC reports them all); a held lock keeps iptables' own wording.
  const code = outcome.errors.some((e) => LOCK_HELD.test(e)) ? Code.TryAgainLater : Code.IoFailure;
  return { kind: 'error', error: cniError(code, 'masquerade GC incomplete', outcome.errors.join('; ')) };
}
