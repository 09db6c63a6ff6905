import { describe, expect, it } from 'vitest';
import { converge, NONE_REMOVED, type Attempt, type Backend, type Removed } from '../../src/backends/backend.js';
import { parseSave, type Snapshot } from '../../src/backends/iptables/parse.js';
import { doomedBy, isEmptyPlan, planIptables, type IptablesPlan } from '../../src/backends/iptables/plan.js';
import { renderRestore } from '../../src/backends/iptables/render.js';
import type { Selection } from '../../src/backends/selection.js';
import { janitorError, type ErrorKind, type JanitorError } from '../../src/errors.js';
import { chainName, type Attachment } from '../../src/identity.js';
import { applyRestore, bridgeRules, RestoreError, toSave, type NatModel } from '../support/nat-model.js';

/**
 * converge() against tiny in-memory backends: one over a set of owned items
 * (to see exactly what each attempt reads, plans and applies), and one over
 * the nat model with the real iptables planner (to see a table that moves
 * between read and apply).
 */

type Item = string; // `<containerId>:<n>`
interface SetPlan {
  readonly items: readonly Item[];
}

const owner = (i: Item): string => i.split(':')[0] as string;
const ref = (containerId: string) => ({ network: 'n', containerId });

interface Script {
  table: Set<Item>;
  /** The error (if any) of the n-th apply, 1-based (the speculative apply counts). */
  applyErrors?: Record<number, ErrorKind | { kind: ErrorKind; final: true }>;
  readError?: Record<number, ErrorKind | 'absent'>;
  /** Runs after each read: the host moves on. */
  afterRead?: (n: number, table: Set<Item>) => void;
}

interface Log {
  reads: Attempt[];
  plans: { attempt: Attempt; within: SetPlan | undefined; plan: SetPlan }[];
  applies: SetPlan[];
}

function setBackend(s: Script): Backend<ReadonlySet<Item>, SetPlan> & { log: Log } {
  const log: Log = { reads: [], plans: [], applies: [] };
  return {
    where: 'memory',
    log,
    async read(attempt) {
      log.reads.push(attempt);
      const e = s.readError?.[log.reads.length];
      if (e === 'absent') return { ok: true, value: undefined };
      if (e !== undefined) return { ok: false, error: janitorError(e, `read ${e}`) };
      const snapshot = new Set(s.table);
      s.afterRead?.(log.reads.length, s.table);
      return { ok: true, value: snapshot };
    },
    plan(snapshot, selection, attempt, within) {
      const plan = { items: [...snapshot].filter((i) => (within === undefined || within.items.includes(i)) && selection.interfaceGone(ref(owner(i)))) };
      log.plans.push({ attempt, within, plan });
      return plan;
    },
    isEmpty: (p) => p.items.length === 0,
    async apply(plan) {
      log.applies.push(plan);
      const e = s.applyErrors?.[log.applies.length];
      if (e !== undefined) {
        const kind = typeof e === 'string' ? e : e.kind;
        return { removed: NONE_REMOVED, error: janitorError(kind, `apply ${kind}`), ...(typeof e === 'string' ? {} : { final: true }) };
      }
      if (plan.items.some((i) => !s.table.has(i))) return { removed: NONE_REMOVED, error: janitorError('vanished', 'an item is gone') };
      for (const i of plan.items) s.table.delete(i);
      return { removed: { ...NONE_REMOVED, rules: plan.items.length, transactions: 1 } };
    },
  };
}

/** Evidence: which containers are recorded now; everything else is gone. */
function evidenceOf(recorded: Set<string>): { calls: Attempt[]; evidence: (a: Attempt) => Promise<Selection> } {
  const calls: Attempt[] = [];
  return {
    calls,
    evidence: async (a) => {
      calls.push(a);
      const now = new Set(recorded);
      return { interfaceGone: (r) => !now.has(r.containerId), containerGone: (r) => !now.has(r.containerId) };
    },
  };
}

describe('converge', () => {
  it('one attempt when the transaction succeeds: read, then evidence, plan, apply', async () => {
    const b = setBackend({ table: new Set(['c1:1', 'c2:1']) });
    const ev = evidenceOf(new Set(['c2']));
    const r = await converge(b, ev.evidence, { firstWhole: false });
    expect(r.ok && r.value.attempts).toBe(1);
    expect(r.ok && r.value.removed.rules).toBe(1);
    expect(b.log.applies).toEqual([{ items: ['c1:1'] }]);
    expect(b.log.reads).toEqual([{ n: 1, whole: false, conservative: false }]);
    expect(ev.calls).toEqual([{ n: 1, whole: false, conservative: false }]);
  });

  it('firstWhole makes attempt 1 read the whole table', async () => {
    const b = setBackend({ table: new Set(['c1:1']) });
    await converge(b, evidenceOf(new Set()).evidence, { firstWhole: true });
    expect(b.log.reads[0]).toEqual({ n: 1, whole: true, conservative: false });
  });

  it('a retry re-reads the table AND calls evidence again, whole and conservative', async () => {
    const b = setBackend({ table: new Set(['c1:1']), applyErrors: { 1: 'failed' } });
    const ev = evidenceOf(new Set());
    const r = await converge(b, ev.evidence, { firstWhole: false });
    expect(r.ok && r.value.attempts).toBe(2);
    expect(b.log.reads.map((a) => a.n)).toEqual([1, 2]);
    expect(ev.calls).toEqual([
      { n: 1, whole: false, conservative: false },
      { n: 2, whole: true, conservative: true },
    ]);
    // Evidence comes after the table on every attempt: the planner sees the records read after its snapshot.
    expect(b.log.plans[1]?.attempt.n).toBe(2);
  });

  it('a record that appears during the retry keeps its container (issue 9 failure 1)', async () => {
    const recorded = new Set<string>();
    const table = new Set(['dead:1', 'new:1']);
    // `new` was starting at the first look (rules written, records not yet): attempt 1 dooms it, and its
    // transaction fails; its records are written by the time the retry reads the table again.
    const b = setBackend({ table, applyErrors: { 1: 'vanished' }, afterRead: (n) => n === 2 && recorded.add('new') });
    const ev = evidenceOf(recorded);
    const r = await converge(b, ev.evidence, { firstWhole: true });
    expect(r.ok).toBe(true);
    expect(b.log.applies[0]).toEqual({ items: ['dead:1', 'new:1'] });
    expect(b.log.applies.at(-1)).toEqual({ items: ['dead:1'] });
    expect(table.has('new:1')).toBe(true);
  });

  it('a retry never dooms what attempt 1 did not (within), even if the evidence now dooms it', async () => {
    const table = new Set(['a:1']);
    // After attempt 1 read, b's state appears and nothing records it.
    const b = setBackend({ table, applyErrors: { 1: 'failed' }, afterRead: (n, t) => n === 1 && t.add('b:1') });
    const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: true });
    expect(r.ok).toBe(true);
    expect(b.log.plans[1]?.within).toEqual({ items: ['a:1'] });
    expect(b.log.applies.at(-1)).toEqual({ items: ['a:1'] });
    expect(table.has('b:1')).toBe(true);
    for (const p of b.log.plans.slice(1)) for (const i of p.plan.items) expect(b.log.plans[0]?.plan.items).toContain(i);
  });

  it.each(['lock', 'missing-tool'] as const)('%s on apply stops at once', async (kind) => {
    const b = setBackend({ table: new Set(['c1:1']), applyErrors: { 1: kind } });
    const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: false });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.kind).toBe(kind);
    expect(b.log.applies).toHaveLength(1);
    expect(b.log.reads).toHaveLength(1);
  });

  it('lock on read stops at once; a missing tool on read means nothing to do (skipped)', async () => {
    const locked = setBackend({ table: new Set(['c1:1']), readError: { 1: 'lock' } });
    const r1 = await converge(locked, evidenceOf(new Set()).evidence, { firstWhole: false });
    expect(!r1.ok && r1.error.kind).toBe('lock');
    expect(locked.log.reads).toHaveLength(1);
    const missing = setBackend({ table: new Set(['c1:1']), readError: { 1: 'missing-tool' } });
    const ev = evidenceOf(new Set());
    const r2 = await converge(missing, ev.evidence, { firstWhole: false });
    expect(r2.ok && r2.value.skipped).toBe('read missing-tool');
    expect(missing.log.applies).toHaveLength(0);
    expect(ev.calls).toHaveLength(0);
  });

  it('an absent table is skipped; an empty plan applies nothing', async () => {
    const absent = setBackend({ table: new Set(), readError: { 1: 'absent' } });
    const r = await converge(absent, evidenceOf(new Set()).evidence, { firstWhole: false });
    expect(r.ok && r.value.skipped).toBe('table absent');
    const idle = setBackend({ table: new Set(['c1:1']) });
    const r2 = await converge(idle, evidenceOf(new Set(['c1'])).evidence, { firstWhole: false });
    expect(r2.ok && r2.value.removed).toEqual(NONE_REMOVED);
    expect(idle.log.applies).toHaveLength(0);
  });

  it('gives up after `attempts` failed transactions with the last error', async () => {
    const b = setBackend({ table: new Set(['c1:1']), applyErrors: { 1: 'failed', 2: 'vanished', 3: 'failed' } });
    const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: false, attempts: 3 });
    expect(!r.ok && r.error).toEqual({ kind: 'failed', message: 'apply failed' });
    expect(b.log.reads).toHaveLength(3);
  });

  it('a final failure (after the removal) is reported, not retried', async () => {
    const b = setBackend({ table: new Set(['c1:1']), applyErrors: { 1: { kind: 'failed', final: true } } });
    const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: false });
    expect(r.ok).toBe(false);
    expect(b.log.reads).toHaveLength(1);
  });

  describe('speculative plan', () => {
    it('is tried first, without reading; success ends there (attempts 0)', async () => {
      const b = setBackend({ table: new Set(['c1:1']) });
      const ev = evidenceOf(new Set());
      const r = await converge(b, ev.evidence, { firstWhole: false, speculative: { items: ['c1:1'] } });
      expect(r.ok && r.value.attempts).toBe(0);
      expect(b.log.reads).toHaveLength(0);
      expect(ev.calls).toHaveLength(0);
    });

    it('if the table is otherwise, the shell reads and plans from evidence', async () => {
      const b = setBackend({ table: new Set(['c1:2']) });
      const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: false, speculative: { items: ['c1:1'] } });
      expect(r.ok && r.value.attempts).toBe(1);
      expect(b.log.applies).toEqual([{ items: ['c1:1'] }, { items: ['c1:2'] }]);
      // The speculative plan is no bound on what evidence may doom: it was made without looking.
      expect(b.log.plans[0]?.within).toBeUndefined();
    });

    it('a lock on the speculative apply stops at once; an empty speculative plan is not applied', async () => {
      const b = setBackend({ table: new Set(['c1:1']), applyErrors: { 1: 'lock' } });
      const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: false, speculative: { items: ['c1:1'] } });
      expect(!r.ok && r.error.kind).toBe('lock');
      expect(b.log.reads).toHaveLength(0);
      const e = setBackend({ table: new Set(['c1:1']) });
      await converge(e, evidenceOf(new Set()).evidence, { firstWhole: false, speculative: { items: [] } });
      expect(e.log.applies).toEqual([{ items: ['c1:1'] }]);
    });
  });

  it('a `planned` plan is applied on attempt 1 without reading; a retry reads again and stays within it', async () => {
    const table = new Set(['c1:1', 'c2:1']);
    const b = setBackend({ table, applyErrors: { 1: 'failed' } });
    const planned: SetPlan = { items: ['c1:1'] };
    const r = await converge(b, evidenceOf(new Set()).evidence, { firstWhole: true, planned });
    expect(r.ok).toBe(true);
    expect(b.log.reads.map((a) => a.n)).toEqual([2]);
    expect(b.log.applies[0]).toBe(planned);
    expect(b.log.plans[0]?.plan).toEqual({ items: ['c1:1'] });
    expect(r.ok && r.value.plan).toBe(planned);
    expect(table.has('c2:1')).toBe(true);
  });
});

// ---- the nat model as a stateful fake of iptables --------------------------

function natBackend(state: { model: NatModel }, hooks: { afterRead?: (n: number) => void } = {}): Backend<Snapshot, IptablesPlan> & { reads: number } {
  const b = {
    where: 'model v4 nat',
    reads: 0,
    async read() {
      b.reads++;
      const s = parseSave(toSave(state.model));
      hooks.afterRead?.(b.reads);
      return { ok: true as const, value: s };
    },
    plan: (s: Snapshot, sel: Selection, a: Attempt, within: IptablesPlan | undefined) => planIptables(s, sel, { recreate: false, conservative: a.conservative }, within && doomedBy(within)),
    isEmpty: isEmptyPlan,
    async apply(plan: IptablesPlan): Promise<{ removed: Removed; error?: JanitorError }> {
      try {
        state.model = applyRestore(state.model, renderRestore(plan));
        return { removed: { jumps: plan.jumps.length, chains: plan.chains.length, rules: 0, transactions: 1 } };
      } catch (e) {
        if (!(e instanceof RestoreError)) throw e;
        return { removed: NONE_REMOVED, error: janitorError(/no such rule/.test(e.message) ? 'vanished' : 'failed', e.message) };
      }
    },
  };
  return b;
}

describe('converge over the nat model (the table moves between read and apply)', () => {
  const at = (id: string): Attachment => ({ network: 'bridge', containerId: id });
  const dead = bridgeRules(at('dead'), '10.0.0.2', '10.0.0.0/24');
  const other = bridgeRules(at('other'), '10.0.0.3', '10.0.0.0/24');
  const fresh = bridgeRules(at('new'), '10.0.0.4', '10.0.0.0/24');

  it('a container that starts during a failed sweep keeps every rule; the orphan still goes', async () => {
    const recorded = new Set(['other']);
    const state = { model: { chains: [dead.chain, other.chain], rules: [...dead.rules, ...other.rules] } as NatModel };
    const b = natBackend(state, {
      afterRead: (n) => {
        if (n !== 1) return;
        // Between attempt 1's read and its apply: `other` is deleted by its own DEL (so -D fails), `new` starts.
        state.model = { chains: [dead.chain, fresh.chain], rules: [...dead.rules, ...fresh.rules] };
        recorded.delete('other');
        recorded.add('new');
      },
    });
    const sel = async (): Promise<Selection> => {
      const now = new Set(recorded);
      return { interfaceGone: (r) => !now.has(r.containerId), containerGone: (a) => !now.has(a.containerId) };
    };
    const r = await converge(b, sel, { firstWhole: true });
    expect(r.ok).toBe(true);
    expect(r.ok && r.value.attempts).toBe(2);
    expect(state.model).toEqual({ chains: [fresh.chain], rules: fresh.rules });
  });

  it('even with evidence that never learns of the new container, within keeps it', async () => {
    const state = { model: { chains: [dead.chain, other.chain], rules: [...dead.rules, ...other.rules] } as NatModel };
    const b = natBackend(state, {
      afterRead: (n) => {
        // dead's jump vanishes (a concurrent DEL), so attempt 1 fails; `new` starts, unrecorded by this evidence.
        if (n === 1) state.model = { chains: [dead.chain, other.chain, fresh.chain], rules: [...dead.rules.slice(1), ...fresh.rules, ...other.rules] };
      },
    });
    // Stale evidence: only `other` recorded, ever.
    const stale = async (): Promise<Selection> => ({ interfaceGone: (r) => r.containerId !== 'other', containerGone: (a) => a.containerId !== 'other' });
    const r = await converge(b, stale, { firstWhole: true });
    expect(r.ok).toBe(true);
    expect(r.ok && r.value.attempts).toBe(2);
    expect(state.model.rules).toEqual(expect.arrayContaining(fresh.rules));
    expect(state.model.chains).toContain(chainName(at('new')));
    expect(state.model.rules.some((l) => l.includes(dead.chain))).toBe(false);
  });
});
