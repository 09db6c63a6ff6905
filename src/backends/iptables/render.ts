import { MASQ_CHAIN_PATTERN } from '../../identity.js';
import { HOSTPORT_CHAIN_PATTERN } from './hostport.js';
import type { IptablesPlan } from './plan.js';

/** Every chain name a plan may empty and delete: bridge's masquerade chains and portmap's per-container chains. */
export const CHAIN_PATTERNS: readonly RegExp[] = [MASQ_CHAIN_PATTERN, HOSTPORT_CHAIN_PATTERN];
import { parseRuleLine } from './parse.js';

/**
 * Render a plan as `iptables-restore --noflush` input for the nat table:
 * `:C` empties each doomed chain, `-D` deletes each jump by its exact saved
 * text, and `-X C` deletes the chain: the kernel refuses while anything
 * still enters it, and the whole transaction with it.
 *
 * The chains bridge still needs are created again by a second transaction
 * (renderRecreate), never by `-N` in this one: iptables-nft 1.8.9 replays a
 * batch after a concurrent change to the table, and a replayed `-X C` +
 * `-N C` loses the `-N` (17 of 20 chains gone with 10 concurrent writers).
 * Legacy has no replay (`recreateInline`).
 *
 * Every line is checked again here, the last point before root acts on it:
 * a chain name outside the patterns or a rule line that does not read back
 * as a certain rule throws instead of reaching iptables-restore.
 */
export function renderRestore(plan: IptablesPlan, chainPatterns: readonly RegExp[] = CHAIN_PATTERNS, opts: { readonly recreateInline?: boolean } = {}): string {
  // Chain names go on lines of their own; the patterns exclude anything else.
  const safeChain = (c: string): string => {
    if (!chainPatterns.some((p) => p.test(c))) throw new Error(`refusing to render chain ${JSON.stringify(c)}`);
    return c;
  };
  const lines = ['*nat'];
  // A plan that names the rules inside its chains deletes those, and -X then fails on anything left.
  if (plan.inside === undefined) for (const c of plan.chains) lines.push(`:${safeChain(c)} - [0:0]`);
  // Chains declared and deleted in one transaction whatever they hold: if anything enters one, the kernel refuses.
  for (const c of plan.probe ?? []) lines.push(`:${safeChain(c)} - [0:0]`);
  for (const j of plan.jumps) lines.push(`-D ${safeRuleBody(j.line)}`);
  // portmap's entry rules live in its shared chains; a -D by exact line takes only them, never the chain.
  for (const e of plan.entries) lines.push(`-D ${safeRuleBody(e.line)}`);
  for (const r of plan.inside ?? []) lines.push(`-D ${safeRuleBody(r.line)}`);
  for (const c of plan.chains) lines.push(`-X ${safeChain(c)}`);
  for (const c of plan.probe ?? []) lines.push(`-X ${safeChain(c)}`);
  // iptables-legacy-restore edits one in-memory copy of the table under the lock and commits it once: no
  // replay can lose a -N there, so the chains bridge still needs come back in this same transaction.
  if (opts.recreateInline === true) for (const c of plan.recreate) lines.push(`-N ${safeChain(c)}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The empty chains bridge's own teardown still needs, created after the plan's transaction succeeded. */
export function renderRecreate(plan: IptablesPlan, chainPatterns: readonly RegExp[] = CHAIN_PATTERNS): string | undefined {
  if (plan.recreate.length === 0) return undefined;
  for (const c of plan.recreate) if (!chainPatterns.some((p) => p.test(c))) throw new Error(`refusing to render chain ${JSON.stringify(c)}`);
  return ['*nat', ...plan.recreate.map((c) => `-N ${c}`), 'COMMIT', ''].join('\n');
}

/** Can this saved line travel inside a restore batch as one `-D`? */
export function renderable(line: string): boolean {
  return line.startsWith('-A ') && !/[\r\n\0]/.test(line) && parseRuleLine(line)?.certain === true;
}

function safeRuleBody(line: string): string {
  if (!renderable(line)) throw new Error(`refusing to render rule ${JSON.stringify(line)}`);
  return line.slice(3);
}

/**
 * Split a plan into transactions of at most `size` chains, each complete on
 * its own (a chain always travels with the jumps into it). Chunks follow the
 * jumps' order in the table: iptables-nft finds each `-D <spec>` by scanning
 * the chain from the top, so deleting in table order keeps every lookup
 * short (10,000 orphans in chunks of 1,000: ~1 s in table order, ~14 s in
 * chain-name order).
 */
export function chunkPlan(plan: IptablesPlan, size: number): IptablesPlan[] {
  if (plan.chains.length + plan.jumps.length + plan.entries.length <= size) return [plan];
  const chunkOf = new Map<string, number>();
  const place = (c: string): void => {
    if (!chunkOf.has(c)) chunkOf.set(c, Math.floor(chunkOf.size / size));
  };
  for (const j of plan.jumps) place(j.jump ?? j.line);
  // A DN chain travels with its entry rules (the kernel refuses its -X while one still enters it).
  for (const e of plan.entries) place(e.jump ?? e.line);
  for (const c of plan.chains) place(c);
  // Chunks count chains (a jump travels with its chain): a sweep's 100,000 chains and jumps are one chunk of 100,000.
  if (chunkOf.size <= size) return [plan];
  type Part = { jumps: IptablesPlan['jumps'][number][]; entries: IptablesPlan['entries'][number][]; chains: string[]; recreate: string[] };
  const parts: Part[] = Array.from({ length: Math.max(1, Math.ceil(chunkOf.size / size)) }, () => ({ jumps: [], entries: [], chains: [], recreate: [] }));
  const at = (c: string): Part => parts[chunkOf.get(c) ?? 0] as Part;
  for (const j of plan.jumps) at(j.jump ?? j.line).jumps.push(j);
  for (const e of plan.entries) at(e.jump ?? e.line).entries.push(e);
  for (const c of plan.chains) at(c).chains.push(c);
  for (const c of plan.recreate) at(c).recreate.push(c);
  return parts.filter((p) => p.jumps.length + p.chains.length + p.entries.length > 0).map((p) => ({ ...p, owners: [] }));
}
