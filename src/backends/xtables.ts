import { fail, ok, type Result } from '../cni/errors.js';
import { parseListing, parseSave, type Snapshot } from '../plan/iptables-save.js';
import type { Runner } from './exec.js';

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

export type XtablesError =
  | { readonly kind: 'missing-tool'; readonly message: string }
  | { readonly kind: 'lock'; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string };

/** What iptables prints (rc 4, xtables.c) when it gave up waiting for the lock; kept in our messages too. */
export const LOCK_HELD = /xtables lock/i;

function classify(xt: Xtables, what: string, r: { exitCode: number | undefined; stderr: string; notFound: boolean; timedOut: boolean }): XtablesError {
  const head = `${what} (${xt.base})`;
  if (r.notFound) return { kind: 'missing-tool', message: `${head}: not found on PATH` };
  const text = r.stderr.trim().split('\n').slice(-3).join(' | ');
  if (LOCK_HELD.test(r.stderr)) return { kind: 'lock', message: `${head}: ${text}` };
  if (r.timedOut) return { kind: 'failed', message: `${head}: timed out` };
  return { kind: 'failed', message: `${head}: exit ${r.exitCode ?? '?'}: ${text}` };
}

/** Rules of one nat chain (`-S`), far cheaper than a full save on big tables. */
export async function listChain(run: Runner, xt: Xtables, chain: string, wait: number): Promise<Result<Snapshot, XtablesError>> {
  const r = await run(binary(xt, ''), ['-w', String(wait), '-t', 'nat', '-S', chain], { timeoutMs: (wait + 30) * 1000 });
  if (r.exitCode !== 0) return fail(classify(xt, `list ${chain}`, r));
  return ok(parseListing(r.stdout));
}

/** The chain's own listing (`-N` and its rules), or undefined when it does not exist (`-S` exits 1). */
export async function listChainIfExists(run: Runner, xt: Xtables, chain: string, wait: number): Promise<Result<Snapshot | undefined, XtablesError>> {
  const r = await run(binary(xt, ''), ['-w', String(wait), '-t', 'nat', '-S', chain], { timeoutMs: (wait + 30) * 1000 });
  if (r.exitCode === 0) return ok(parseListing(r.stdout));
  if (r.exitCode === 1 && !r.notFound && !LOCK_HELD.test(r.stderr)) return ok(undefined);
  return fail(classify(xt, `list ${chain}`, r));
}

/** The whole nat table. */
export async function saveNat(run: Runner, xt: Xtables): Promise<Result<Snapshot, XtablesError>> {
  const r = await run(binary(xt, 'save'), ['-t', 'nat'], { timeoutMs: 120_000 });
  if (r.exitCode !== 0) return fail(classify(xt, 'save', r));
  return ok(parseSave(r.stdout));
}

/** One atomic transaction: all of `text` applies, or none of it. */
export async function restore(run: Runner, xt: Xtables, text: string, wait: number): Promise<Result<void, XtablesError>> {
  const r = await run(binary(xt, 'restore'), ['-w', String(wait), '--noflush'], { input: text, timeoutMs: (wait + 120) * 1000 });
  if (r.exitCode !== 0) return fail(classify(xt, 'restore', r));
  return ok(undefined);
}

/** go-iptables' IsNotExist texts, plus the one a -D of a jump to a vanished chain prints. */
const NOT_EXIST = /Bad rule|does a matching rule exist|No chain\/target\/match|does not exist|No such file or directory|Couldn't load target/;

/** A single iptables command whose "already gone" outcome counts as success. */
export async function runTolerant(run: Runner, xt: Xtables, args: readonly string[], wait: number): Promise<Result<void, XtablesError>> {
  const r = await run(binary(xt, ''), ['-w', String(wait), '-t', 'nat', ...args], { timeoutMs: (wait + 30) * 1000 });
  if (r.exitCode === 0 || (!r.notFound && NOT_EXIST.test(r.stderr))) return ok(undefined);
  return fail(classify(xt, args.slice(0, 2).join(' '), r));
}
