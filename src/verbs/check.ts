import { Code, cniError } from '../cni/errors.js';
import { parsePrevResult } from '../cni/result.js';
import { atLeast } from '../cni/versions.js';
import { NONE, type Reply, type VerbContext } from './context.js';

/**
 * CHECK has nothing of ours to verify (ADD made nothing), but the spec
 * still asks a chained plugin to insist on a sound prevResult.
 */
export function check(ctx: VerbContext): Reply {
  const { conf } = ctx;
  if (!atLeast(conf.cniVersion, '0.4.0')) {
    return { kind: 'error', error: cniError(Code.IncompatibleVersion, 'config version does not allow CHECK', `config is ${conf.cniVersion}`) };
  }
  if (conf.prevResult === undefined || conf.prevResult === null) {
    return { kind: 'error', error: cniError(Code.InvalidConfig, 'required prevResult missing') };
  }
  const parsed = parsePrevResult(conf.prevResult, conf.cniVersion);
  if (!parsed.ok) return { kind: 'error', error: cniError(Code.InvalidConfig, 'invalid prevResult', parsed.error) };
  return NONE;
}
