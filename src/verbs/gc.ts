import { NONE, type Reply, type VerbContext } from './context.js';

/** GC arrives only for 1.1.0 configs. Accepted, and for now a no-op. */
export function gc(_ctx: VerbContext): Reply {
  return NONE;
}
