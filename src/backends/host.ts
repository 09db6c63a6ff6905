import type { Backend } from './backend.js';
import type { Runner } from './exec.js';
import { iptablesBackend } from './iptables/run.js';
import { allVariants } from './iptables/variants.js';
import { nftBackend } from './nft/run.js';

/**
 * Every table that can hold masquerade state on this host, for GC and
 * sweep: each iptables variant of each family, then the nft backend's.
 * `networks`: names known to the caller, for nft comments cut inside one.
 */
export function hostBackends(run: Runner, path: string, wait: number, networks: readonly string[] = []): Backend<unknown, unknown>[] {
  const tables = [...allVariants(4, path), ...allVariants(6, path)].map((xt) => iptablesBackend(run, xt, { kind: 'host' }, wait));
  return [...tables, nftBackend(run, networks)] as Backend<unknown, unknown>[];
}
