import { MASQ_CHAIN_PATTERN } from '../identity.js';
import type { IptablesPlan } from './iptables-plan.js';

/**
 * Render a plan as `iptables-restore --noflush` input for the nat table.
 * Chain lines first (`:C` flushes an existing chain, creates a missing one),
 * then jump deletions by their exact saved text, then chain deletions.
 *
 * Every line is checked again here, at the last point before root acts on
 * it: a chain name outside CNI-<hex> or a line break inside a saved rule
 * throws instead of reaching iptables-restore.
 */
export function renderRestore(plan: IptablesPlan): string {
  const lines = ['*nat'];
  for (const c of plan.flush) lines.push(`:${safeChain(c)} - [0:0]`);
  for (const j of plan.jumps) lines.push(`-D ${safeRuleBody(j.line)}`);
  for (const c of plan.remove) lines.push(`-X ${safeChain(c)}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function safeChain(c: string): string {
  if (!MASQ_CHAIN_PATTERN.test(c)) throw new Error(`refusing to render chain ${JSON.stringify(c)}`);
  return c;
}

function safeRuleBody(line: string): string {
  if (!line.startsWith('-A ') || /[\r\n\0]/.test(line)) throw new Error(`refusing to render rule ${JSON.stringify(line)}`);
  return line.slice(3);
}

/**
 * Split a plan into chunks of at most `size` chains, each a complete
 * transaction (a chain always travels with the jumps into it). Chunks follow
 * the jumps' order in the table: iptables-nft finds each `-D <spec>` by
 * scanning the chain from the top, so deleting in table order keeps every
 * lookup short (10,000 orphans in chunks of 1,000: ~1 s in table order,
 * ~14 s in chain-name order).
 */
export function chunkPlan(plan: IptablesPlan, size: number): IptablesPlan[] {
  if (plan.flush.length <= size) return [plan];
  const chunkOf = new Map<string, number>();
  const place = (c: string): void => {
    if (!chunkOf.has(c)) chunkOf.set(c, Math.floor(chunkOf.size / size));
  };
  for (const j of plan.jumps) if (j.jump !== undefined) place(j.jump);
  for (const c of plan.flush) place(c);
  type Part = { jumps: IptablesPlan['jumps'][number][]; flush: string[]; remove: string[] };
  const parts: Part[] = Array.from({ length: Math.max(1, Math.ceil(chunkOf.size / size)) }, () => ({ jumps: [], flush: [], remove: [] }));
  const at = (c: string | undefined): Part => parts[chunkOf.get(c ?? '') ?? 0] as Part;
  for (const j of plan.jumps) at(j.jump).jumps.push(j);
  for (const c of plan.flush) at(c).flush.push(c);
  for (const c of plan.remove) at(c).remove.push(c);
  return parts.filter((p) => p.jumps.length + p.flush.length + p.remove.length > 0).map((p) => ({ ...p, owners: [] }));
}
