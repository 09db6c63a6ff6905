import { fail, janitorError, ok, type JanitorError, type Result } from '../../errors.js';
import type { Backend, Removed } from '../backend.js';
import { NONE_REMOVED } from '../backend.js';
import type { Runner } from '../exec.js';
import {
  NFT_HOSTPORT_RULE_CHAINS,
  NFT_HOSTPORT_TABLE,
  parseNftHostportListing,
  planNftHostports,
  planNftHostportSelection,
  type NftHostportFamily,
  type NftHostportPlan,
  type NftHostportRule,
} from './hostport.js';
import { applyNft } from './run.js';

/**
 * The shell for portmap's nftables tables (`ip cni_hostport`, `ip6
 * cni_hostport`): one backend, one transaction, per table. The comments
 * name only the container ID, so what goes is decided from the ID (and, on
 * DEL, this attachment's IPs), not from the Selection's per-network answers.
 */
export type NftHostportDecision =
  /** DEL: this container's rules, restricted to these IPs when prevResult gave them. */
  | { readonly kind: 'del'; readonly containerId: string; readonly ips: readonly string[] | undefined }
  /**
   * sweep: every rule of a container ID that the selection dooms on every
   * network in `networks` (those records or state name): an ID some network
   * still records is kept.
   */
  | { readonly kind: 'ids'; readonly networks: () => readonly string[] };

const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ');

export async function listHostportTable(run: Runner, family: NftHostportFamily): Promise<Result<NftHostportRule[] | undefined, JanitorError>> {
  const r = await run('nft', ['-j', 'list', 'table', family, NFT_HOSTPORT_TABLE], { timeoutMs: 120_000 });
  if (r.notFound) return fail(janitorError('missing-tool', 'nft: not found on PATH'));
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return ok(undefined);
    return fail(janitorError('failed', `nft list ${family} ${NFT_HOSTPORT_TABLE}: exit ${r.exitCode ?? '?'}: ${tail(r.stderr)}`));
  }
  try {
    return ok(parseNftHostportListing(r.stdout).filter((x) => x.family === family));
  } catch (e) {
    return fail(janitorError('failed', `nft list ${family} ${NFT_HOSTPORT_TABLE}: unreadable JSON: ${(e as Error).message}`));
  }
}

/** `delete rule` by handle, each line checked again: the last point before root acts on it. */
export function renderNftHostport(plan: NftHostportPlan): string {
  const lines = plan.rules.map((r) => {
    if ((r.family !== 'ip' && r.family !== 'ip6') || !NFT_HOSTPORT_RULE_CHAINS.includes(r.chain) || !Number.isSafeInteger(r.handle) || r.handle < 0) {
      throw new Error(`refusing to render nft rule ${JSON.stringify(r)}`);
    }
    return `delete rule ${r.family} ${NFT_HOSTPORT_TABLE} ${r.chain} handle ${r.handle}`;
  });
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

export function nftHostportBackend(run: Runner, family: NftHostportFamily, decision: NftHostportDecision): Backend<readonly NftHostportRule[], NftHostportPlan> {
  return {
    where: `nft ${family} ${NFT_HOSTPORT_TABLE}`,
    read: () => listHostportTable(run, family),
    plan(rules, selection, _attempt, within) {
      if (selection.hostports === false) return { rules: [] };
      const planned =
        decision.kind === 'del'
          ? planNftHostports(rules, decision.containerId, decision.ips)
          : planNftHostportSelection(rules, (id) => {
              const networks = decision.networks();
              return networks.length > 0 && networks.every((network) => selection.containerGone({ network, containerId: id }));
            });
      if (within === undefined) return planned;
      const allowed = new Set(within.rules.map((r) => r.handle));
      return { rules: planned.rules.filter((r) => allowed.has(r.handle)) };
    },
    isEmpty: (p) => p.rules.length === 0,
    async apply(plan) {
      if (plan.rules.length === 0) return { removed: NONE_REMOVED };
      const r = await applyNft(run, renderNftHostport(plan));
      if (!r.ok) return { removed: NONE_REMOVED, error: r.error };
      const removed: Removed = { jumps: 0, chains: 0, rules: plan.rules.length, transactions: 1 };
      return { removed };
    },
  };
}
