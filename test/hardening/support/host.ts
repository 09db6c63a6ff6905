import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nsExec, nsMust, SYSTEM_PATH, type Netns } from './netns.js';
import { describe as describeProc, type ProcResult } from './proc.js';
import { JANITOR, NODE, normalizeSave } from './ref.js';

/**
 * A throwaway "host" namespace as the janitor sees it: an iptables variant
 * chosen by PATH (Debian's default nft, or a directory of symlinks to the
 * legacy binaries in front of it), snapshots of every table, and the
 * janitor run inside it.
 */

export type Variant = 'nft' | 'legacy';

const LEGACY_LINKS: Readonly<Record<string, string>> = {
  iptables: 'iptables-legacy',
  'iptables-save': 'iptables-legacy-save',
  'iptables-restore': 'iptables-legacy-restore',
  ip6tables: 'ip6tables-legacy',
  'ip6tables-save': 'ip6tables-legacy-save',
  'ip6tables-restore': 'ip6tables-legacy-restore',
};

const made: string[] = [];

/** PATH for this variant; the legacy one puts symlinks to the legacy binaries first. */
export function variantPath(variant: Variant): string {
  if (variant === 'nft') return SYSTEM_PATH;
  const dir = mkdtempSync(join(tmpdir(), 'mjh-legacy-bin-'));
  for (const [name, target] of Object.entries(LEGACY_LINKS)) symlinkSync(`/usr/sbin/${target}`, join(dir, name));
  made.push(dir);
  return `${dir}:${SYSTEM_PATH}`;
}

export function disposeVariantPaths(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export async function restoreIn(ns: Netns, path: string, family: 4 | 6, text: string, flush = false): Promise<void> {
  await nsMust(ns, family === 4 ? 'iptables-restore' : 'ip6tables-restore', ['-w', '5', ...(flush ? [] : ['--noflush'])], { env: { PATH: path }, input: text });
}

export async function nftIn(ns: Netns, text: string): Promise<void> {
  await nsMust(ns, 'nft', ['-f', '-'], { input: text });
}

export interface Tables {
  /** `iptables-save` (every table), normalized. */
  readonly v4: string;
  readonly v6: string;
  /** `nft list ruleset` minus the tables iptables-nft manages (those are in v4/v6), counters stripped. */
  readonly nft: string;
}

export async function snapshot(ns: Netns, path: string): Promise<Tables> {
  const [v4, v6, nft] = await Promise.all([
    nsMust(ns, 'iptables-save', [], { env: { PATH: path } }),
    nsMust(ns, 'ip6tables-save', [], { env: { PATH: path } }),
    nsMust(ns, 'nft', ['list', 'ruleset']),
  ]);
  return { v4: normalizeSave(v4), v6: normalizeSave(v6), nft: nativeNft(nft) };
}

/** Keep only nft tables that iptables-nft does not own, one block per table. */
export function nativeNft(text: string): string {
  const blocks = text.split(/^(?=table )/m).filter((b) => b.startsWith('table '));
  return blocks
    .filter((b) => !/^table (ip|ip6) (nat|filter|mangle|raw|security) \{/.test(b))
    .map((b) => b.replace(/counter packets \d+ bytes \d+/g, 'counter').trimEnd())
    .join('\n');
}

export interface JanitorRun extends ProcResult {
  /** Problems with the CNI protocol shape of stdout (empty or one JSON document). */
  readonly protocolProblems: string[];
  readonly reply: Record<string, unknown> | undefined;
}

/** Run dist/masq-janitor inside `ns` with exactly this environment and stdin. */
export async function janitor(ns: Netns, env: Record<string, string>, stdin: string, timeoutMs = 60_000): Promise<JanitorRun> {
  const r = await nsExec(ns, NODE, [JANITOR], { env, input: stdin, timeoutMs });
  const problems: string[] = [];
  let reply: Record<string, unknown> | undefined;
  if (r.stdout !== '') {
    if (!r.stdout.endsWith('\n') || r.stdout.slice(0, -1).includes('\n')) problems.push(`stdout is not one JSON line: ${JSON.stringify(r.stdout.slice(0, 300))}`);
    else {
      try {
        reply = JSON.parse(r.stdout) as Record<string, unknown>;
      } catch {
        problems.push(`stdout is not JSON: ${JSON.stringify(r.stdout.slice(0, 300))}`);
      }
    }
  }
  if (r.exitCode !== 0 && (reply === undefined || typeof reply.code !== 'number')) problems.push(`exit ${r.exitCode ?? r.signal ?? '?'} without a CNI error on stdout`);
  if (r.timedOut) problems.push('timed out');
  return { ...r, protocolProblems: problems, reply };
}

export const explain = (r: ProcResult): string => describeProc(r);

/** Lines of a that b lacks, and lines of b that a lacks: for readable table diffs. */
export function lineDiff(a: string, b: string): string {
  const la = a.split('\n');
  const lb = b.split('\n');
  const sb = new Set(lb);
  const sa = new Set(la);
  const gone = la.filter((l) => !sb.has(l)).map((l) => `- ${l}`);
  const added = lb.filter((l) => !sa.has(l)).map((l) => `+ ${l}`);
  return [...gone, ...added].join('\n') || '(same lines, different order or duplicates)';
}
