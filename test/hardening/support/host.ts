import { JANITOR } from '../../support/guard.js';
import { nsExec, rootRulesetMentions, type Netns } from '../../support/netns.js';
import { NODE, type ProcResult } from '../../support/proc.js';

/**
 * The janitor as the hardening suite runs it inside a throwaway "host"
 * namespace (`mjh-<role>-<random>`, see test/support/netns.ts), and what the
 * suite checks around it. Tables, PATH variants and snapshots are in
 * test/support/xtables.ts.
 */

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

/** Guard: lines of the root namespace's nftables ruleset that mention this suite's names (there must be none). */
export const rootMentions = (): Promise<string[]> => rootRulesetMentions(/mjh-|mjh_/);

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
