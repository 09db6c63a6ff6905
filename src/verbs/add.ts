import { Code, cniError } from '../cni/errors.js';
import { parsePrevResult } from '../cni/result.js';
import type { Reply, VerbContext } from './context.js';

/** ADD changes nothing: the rules are bridge's. The result goes on as it came. */
export function add(ctx: VerbContext): Reply {
  const { conf } = ctx;
  if (conf.prevResult === undefined || conf.prevResult === null) {
    return { kind: 'error', error: cniError(Code.InvalidConfig, 'masq-janitor must be chained after bridge or ptp: no prevResult', 'append {"type": "masq-janitor"} as the last plugin of a conflist') };
  }
  const parsed = parsePrevResult(conf.prevResult, conf.cniVersion);
  if (!parsed.ok) return { kind: 'error', error: cniError(Code.InvalidConfig, 'invalid prevResult', parsed.error) };
  // Same object, stamped with the config's version (libcni already converted it to that version).
  const { cniVersion: _ignored, ...rest } = parsed.value.raw;
  return { kind: 'result', body: { cniVersion: conf.cniVersion, ...rest } };
}
