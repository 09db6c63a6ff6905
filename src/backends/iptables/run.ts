import { fail, janitorError, ok, type JanitorError, type Result } from '../../errors.js';
import { chainName, dnatChainName, snatChainName, type Attachment } from '../../identity.js';
import { entryOf } from './hostport.js';
import type { Backend, Progress, Removed } from '../backend.js';
import { NONE_REMOVED } from '../backend.js';
import type { Runner } from '../exec.js';
import type { Selection } from '../selection.js';
import { mergeSnapshots, parseListing, parseSave, type Snapshot } from './parse.js';
import { doomedBy, isEmptyPlan, jumpOwner, planIptables, type IptablesPlan } from './plan.js';
import { chunkPlan, renderRecreate, renderRestore } from './render.js';
import { legacyHasNat } from './variants.js';

/**
 * The iptables shell: run the binaries, nothing else. What to delete is
 * plan.ts's; when to try again is backend.ts's.
 */

/**
 * One iptables binary family: `iptables` (whatever the host's alternatives
 * chose, like bridge uses), or an explicit `iptables-legacy` / `iptables-nft`.
 */
export interface Xtables {
  readonly family: 4 | 6;
  readonly variant: 'default' | 'legacy' | 'nft';
  /** e.g. `iptables`, `ip6tables-legacy`; `-save`/`-restore` are derived. */
  readonly base: string;
  /** What the binary really is, where the host tells (Debian's alternatives do). */
  readonly backend: 'legacy' | 'nft' | 'unknown';
}

export function xtables(family: 4 | 6, variant: Xtables['variant'] = 'default', backend: Xtables['backend'] = variant === 'default' ? 'unknown' : variant): Xtables {
  const stem = family === 4 ? 'iptables' : 'ip6tables';
  return { family, variant, base: variant === 'default' ? stem : `${stem}-${variant}`, backend };
}

/** Binary name for `iptables-save` style helpers: iptables-legacy-save, ip6tables-save, ... */
export const binary = (xt: Xtables, suffix: '' | 'save' | 'restore'): string => (suffix ? `${xt.base}-${suffix}` : xt.base);

export const whereOf = (xt: Xtables): string => `${xt.base} nat`;

/** What iptables prints (rc 4, xtables.c) when it gave up waiting for the lock; kept in our messages too. */
export const LOCK_HELD = /xtables lock/i;

/** A `-D` of a rule or chain that is no longer there: the table moved under us. */
const VANISHED = /Bad rule|does a matching rule exist|No chain\/target\/match|does not exist|Couldn't load target|No such file or directory/;

function classify(xt: Xtables, what: string, r: { exitCode: number | undefined; stderr: string; notFound: boolean; timedOut: boolean }): JanitorError {
  const head = `${what} (${xt.base})`;
  if (r.notFound) return janitorError('missing-tool', `${head}: not found on PATH`);
  const text = r.stderr.trim().split('\n').slice(-3).join(' | ');
  if (LOCK_HELD.test(r.stderr)) return janitorError('lock', `${head}: ${text}`);
  if (r.timedOut) return janitorError('failed', `${head}: timed out`);
  return janitorError(what === 'restore' && VANISHED.test(r.stderr) ? 'vanished' : 'failed', `${head}: exit ${r.exitCode ?? '?'}: ${text}`);
}

/** One nat chain (`-S`); undefined when it does not exist (`-S` exits 1). */
export async function listChain(run: Runner, xt: Xtables, chain: string, wait: number): Promise<Result<Snapshot | undefined, JanitorError>> {
  const r = await run(binary(xt, ''), ['-w', String(wait), '-t', 'nat', '-S', chain], { timeoutMs: (wait + 30) * 1000 });
  if (r.exitCode === 0) return ok(parseListing(r.stdout));
  if (r.exitCode === 1 && !r.notFound && !LOCK_HELD.test(r.stderr)) return ok(undefined);
  return fail(classify(xt, `list ${chain}`, r));
}

/**
 * Only a rule that mentions `CNI-` can be ours or enter a chain of ours; a
 * kube-proxy node's other 20,000 rules are dropped before they are parsed.
 */
const mayConcernUs = (line: string): boolean => line.includes('CNI-');

/** The whole nat table, as far as it can concern us. */
export async function saveNat(run: Runner, xt: Xtables): Promise<Result<Snapshot, JanitorError>> {
  const r = await run(binary(xt, 'save'), ['-t', 'nat'], { timeoutMs: 300_000, stdoutBytes: true });
  if (r.exitCode !== 0) return fail(classify(xt, 'save', r));
  return ok(parseSave(r.bytes ?? r.stdout, 'nat', mayConcernUs));
}

/** One atomic transaction: all of `text` applies, or none of it. */
export async function restore(run: Runner, xt: Xtables, text: string, wait: number): Promise<Result<void, JanitorError>> {
  const r = await run(binary(xt, 'restore'), ['-w', String(wait), '--noflush'], { input: text, timeoutMs: (wait + 300) * 1000 });
  if (r.exitCode !== 0) return fail(classify(xt, 'restore', r));
  return ok(undefined);
}


export type Scope =
  /**
   * DEL: read POSTROUTING and the attachment's own chain, never the whole
   * table; with `hostports` also portmap's entry chains and its own CNI-DN-/-SN- chains.
   */
  | { readonly kind: 'attachment'; readonly attachment: Attachment; readonly hostports?: boolean }
  /** GC, sweep: the whole table. */
  | { readonly kind: 'host' };

const isLegacy = (xt: Xtables): boolean => xt.variant === 'legacy' || xt.backend === 'legacy';

/** Chains per transaction. iptables-nft deletes grow super-linearly with batch size; legacy pays per batch. */
export function chunkSize(xt: Xtables): number {
  return isLegacy(xt) ? 100_000 : 1_000;
}

const removedBy = (p: IptablesPlan): Removed => ({ jumps: p.jumps.length + p.entries.length, chains: p.chains.length, rules: 0, transactions: 1 });

export function iptablesBackend(run: Runner, xt: Xtables, scope: Scope, wait: number): Backend<Snapshot, IptablesPlan> {
  return {
    where: whereOf(xt),
    async read(attempt) {
      // Listing a legacy table loads it; no legacy nat table in this netns means no state in it.
      if (xt.backend === 'legacy' && !legacyHasNat(xt.family)) return ok(undefined);
      // Legacy hands every listing the whole table (one copy of the kernel's blob per process): one save
      // costs less than the six listings below (20,000 foreign rules: -S of one chain 60 ms, the save 85 ms).
      if (attempt.whole || scope.kind === 'host' || isLegacy(xt)) return saveNat(run, xt);
      const me = scope.attachment;
      const hostports = scope.hostports !== false;
      // Everything that can hold this attachment's state, listed at once (the wall time of one listing):
      // POSTROUTING, our chains by name, and portmap's entry chains (absent when no port was ever published).
      const first = ['POSTROUTING', chainName(me), ...(hostports ? ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SNAT', dnatChainName(me), snatChainName(me)] : [])];
      const listed = await Promise.all(first.map((c) => listChain(run, xt, c, wait)));
      const parts: Snapshot[] = [];
      for (const l of listed) {
        if (!l.ok) return l;
        if (l.value !== undefined) parts.push(l.value);
      }
      if (listed[0]?.ok && listed[0].value === undefined) return ok(undefined);
      // The chains our jumps and entry rules enter, if another name than the ones above (plugins before v0.7):
      // their rules prove whose they are (names can collide).
      const mine = (o: Attachment | undefined): boolean => o !== undefined && o.network === me.network && o.containerId === me.containerId;
      const more = new Set<string>();
      for (const p of parts)
        for (const r of p.rules) {
          if (mine(jumpOwner(r))) more.add(r.jump as string);
          const e = hostports ? entryOf(r) : undefined;
          if (e && mine(e.owner)) more.add(e.chain);
        }
      for (const c of first) more.delete(c);
      for (const name of more) {
        const chain = await listChain(run, xt, name, wait);
        if (!chain.ok) return chain;
        if (chain.value !== undefined) parts.push(chain.value);
      }
      return ok(mergeSnapshots(...parts));
    },
    plan: (snapshot, selection: Selection, attempt, within) =>
      planIptables(snapshot, selection, { recreate: selection.recreateChains === true, conservative: attempt.conservative }, within === undefined ? undefined : doomedBy(within)),
    isEmpty: isEmptyPlan,
    async apply(plan, progress: Progress) {
      const parts = chunkPlan(plan, chunkSize(xt));
      if (parts.length > 1 || plan.chains.length >= 1000) progress(`${whereOf(xt)}: removing ${plan.chains.length} chains and ${plan.jumps.length + plan.entries.length} jumps in ${parts.length} transaction${parts.length === 1 ? '' : 's'}`);
      let removed = NONE_REMOVED;
      const started = Date.now();
      const inline = isLegacy(xt);
      for (const [i, part] of parts.entries()) {
        const r = await restore(run, xt, renderRestore(part, undefined, { recreateInline: inline }), wait);
        if (!r.ok) return { removed, error: r.error };
        const again = inline ? undefined : renderRecreate(part);
        const made = again === undefined ? ok(undefined) : await restore(run, xt, again, wait);
        const done = removedBy(part);
        removed = { jumps: removed.jumps + done.jumps, chains: removed.chains + done.chains, rules: 0, transactions: removed.transactions + 1 };
        // Not retried: the removal is done, and planning again would find nothing to remove and so nothing to re-create.
        if (!made.ok) return { removed, error: janitorError(made.error.kind, `re-creating the empty chain bridge still needs: ${made.error.message}`), final: true };
        if (parts.length > 1) {
          const elapsed = (Date.now() - started) / 1000;
          const eta = (elapsed / (i + 1)) * (parts.length - i - 1);
          progress(`${whereOf(xt)}: transaction ${i + 1}/${parts.length} done: ${removed.chains}/${plan.chains.length} chains, ${removed.jumps}/${plan.jumps.length} jumps, ${elapsed.toFixed(1)} s, about ${eta.toFixed(0)} s left`);
        }
      }
      return { removed };
    },
  };
}

