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

/** Split a plan into chunks of at most `size` attachments, each a complete transaction. */
export function chunkPlan(plan: IptablesPlan, size: number): IptablesPlan[] {
  if (plan.owners.length <= size) return [plan];
  const out: IptablesPlan[] = [];
  const chainOf = new Map<string, number>();
  const n = Math.ceil(plan.flush.length / size);
  plan.flush.forEach((c, i) => chainOf.set(c, Math.floor(i / size)));
  for (let k = 0; k < Math.max(n, 1); k++) {
    out.push({
      jumps: plan.jumps.filter((j) => (chainOf.get(j.jump ?? '') ?? 0) === k),
      flush: plan.flush.filter((c) => chainOf.get(c) === k),
      remove: plan.remove.filter((c) => chainOf.get(c) === k),
      owners: [],
    });
  }
  return out.filter((p) => p.jumps.length + p.flush.length + p.remove.length > 0);
}
