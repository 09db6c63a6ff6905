import { Code, cniError } from '../cni/errors.js';
import { which } from '../backends/tools.js';
import { NONE, type Reply, type VerbContext } from './context.js';

/** Tools DEL needs: listing and restoring both families, and looking into a netns. */
export const REQUIRED_TOOLS = ['iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'nsenter', 'ip'] as const;

export function missingTools(path: string): string[] {
  return REQUIRED_TOOLS.filter((t) => which(t, path) === undefined);
}

export function status(ctx: VerbContext): Reply {
  const missing = missingTools(ctx.path);
  if (missing.length === 0) return NONE;
  return { kind: 'error', error: cniError(Code.NotAvailable, `masq-janitor cannot clean up: missing ${missing.join(', ')}`, `searched PATH=${ctx.path}`) };
}
