import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Conflist, JsonObject } from '../../support/conflist.js';
import { removeNetns, type Netns } from '../../support/netns.js';
import { sleep } from '../../support/proc.js';
import { VARIANTS } from '../../support/xtables.js';
import { explain } from '../support/cni.js';
import { e2eSuite, expectForeignIntact } from '../support/expect.js';
import { masqState } from '../support/iptables.js';
import { newContainerId, withLab } from '../support/lab.js';
import { addIf, bridgeList, delIf, gc, ip4, makeHook, masqWhole, procText, removeCache, reservedIps, sweep, world, writeCache, type World } from './support/world.js';

/**
 * Issue 9, "Done when": containers are added and deleted in a loop through
 * the real bridge + host-local + janitor, the way libcni runs a conflist
 * (ADD, cache entry written; later DEL with an empty or a live netns, cache
 * entry removed), while two `sweep --apply` loops (with and without --settle 1) and
 * the CNI GC verb (valid attachments = what the "runtime" knows) run in a
 * loop beside them. Some lifecycles leak on purpose (bridge alone, empty
 * netns: a node before the janitor was installed), so sweep and GC always
 * have orphans to remove next to live containers.
 *
 * After every sweep or GC pass, every container that was recorded before
 * the pass started and was not being deleted when the tables were read
 * afterwards must still have its chain, both rules and its jump. At the
 * end, after one more sweep --apply, a dry run reports nothing and the nat
 * table holds no state of a gone container.
 *
 * The "runtime" lists in GC every attachment from before its ADD until its
 * DEL is done, and starts no ADD between computing that list and GC's read
 * of the table (otherwise GC would rightly remove an ADD it was never told
 * about); ADDs that start after the read must survive GC's retries.
 */

e2eSuite();

const LOOP_MS = 22_000;
const WORKERS = 3;
const RESIDENTS = 2;

type Fate = 'empty' | 'alive' | 'leak';

interface Ctr {
  readonly id: string;
  readonly fate: Fate;
  ns?: Netns;
  ip?: string;
  result?: JsonObject;
  recordedAt?: number;
  deletingAt?: number;
}

interface Counts {
  lifecycles: number;
  leaks: number;
  sweeps: number;
  settledSweeps: number;
  gcs: number;
  checks: number;
  losses: number;
  sweptChains: number;
  sweepRetries: number;
}

async function churn(w: World): Promise<{ counts: Counts; problems: string[]; alive: Ctr[]; everyId: string[]; sweepConf: string }> {
  const { lab } = w;
  const list: Conflist = bridgeList(w, { janitorKeys: { lockWait: 30 } });
  // sweep takes lockWait from --config: other suites on this machine hold the xtables lock too.
  const sweepConf = join(lab.tmp, 'sweep-conflist.json');
  writeFileSync(sweepConf, JSON.stringify(list));
  const bridgeOnly: Conflist = { ...list, plugins: list.plugins.slice(0, 1) };
  const counts: Counts = { lifecycles: 0, leaks: 0, sweeps: 0, settledSweeps: 0, gcs: 0, checks: 0, losses: 0, sweptChains: 0, sweepRetries: 0 };
  const problems: string[] = [];
  const known = new Set<Ctr>();
  const everyId: string[] = [];
  const alive: Ctr[] = [];
  let tick = 0;
  let gcRunning: Promise<void> | undefined;
  const stopAt = Date.now() + LOOP_MS;
  const running = (): boolean => Date.now() < stopAt;

  async function start(fate: Fate): Promise<Ctr | undefined> {
    while (gcRunning) await gcRunning;
    const c: Ctr = { id: newContainerId(), fate };
    known.add(c); // synchronously after the gate: the next GC lists it
    everyId.push(c.id);
    const ctr = await lab.container(c.id);
    c.ns = ctr.ns;
    try {
      c.result = await addIf(w, list, ctr, 'eth0');
    } catch (e) {
      problems.push(`ADD ${c.id}: ${(e as Error).message.slice(0, 2000)}`);
      known.delete(c);
      return undefined;
    }
    c.ip = ip4(c.result);
    writeCache(w, list, c.id, 'eth0', ctr.ns.path, c.result);
    c.recordedAt = ++tick;
    return c;
  }

  async function stop(c: Ctr): Promise<void> {
    c.deletingAt = ++tick;
    const ns = c.ns as Netns;
    if (c.fate !== 'alive') await removeNetns(ns);
    const out = await delIf(w, c.fate === 'leak' ? bridgeOnly : list, c.id, c.fate === 'alive' ? ns.path : '', 'eth0', c.result);
    if (out.failure) problems.push(`DEL ${c.id} (${c.fate}): ${explain(out).slice(0, 2000)}`);
    removeCache(w, c.id, 'eth0');
    known.delete(c);
    if (c.fate === 'alive') await removeNetns(ns);
    counts.lifecycles++;
    if (c.fate === 'leak') counts.leaks++;
  }

  async function worker(k: number): Promise<void> {
    let n = 0;
    for (;;) {
      const fate: Fate = (['empty', 'alive', 'leak'] as const)[(n + k) % 3] as Fate;
      n++;
      const c = await start(fate);
      if (!c) continue;
      if (!running()) {
        // The last one of each worker stays alive: checked at the end.
        alive.push(c);
        return;
      }
      await sleep(randomInt(100, 2500));
      await stop(c);
    }
  }

  /** After a pass that started at `startedAt`: every container recorded before it and not yet being deleted keeps all its state. */
  async function check(what: string, startedAt: number): Promise<void> {
    const v4 = (await lab.snapshot([4])).v4;
    const readAt = ++tick;
    for (const c of known) {
      if (c.recordedAt === undefined || c.recordedAt > startedAt) continue;
      if (c.deletingAt !== undefined && c.deletingAt < readAt) continue;
      counts.checks++;
      const r = masqWhole(v4, lab.network, c.id, [c.ip as string]);
      if (!r.ok) {
        counts.losses++;
        problems.push(`${what}: recorded container ${c.id} lost state: ${r.why}`);
      }
    }
  }

  async function sweeper(): Promise<void> {
    let n = 0;
    while (running()) {
      const settle = n++ % 2 === 1;
      const startedAt = ++tick;
      const r = await sweep(w, ['--apply', '--json', '--config', sweepConf, ...(settle ? ['--settle', '1'] : [])]);
      counts.sweeps++;
      if (settle) counts.settledSweeps++;
      if (r.exitCode !== 0) problems.push(`sweep exit ${r.exitCode ?? '?'}:\n${procText(r)}`);
      try {
        const report = JSON.parse(r.stdout) as { removed?: { chains?: number } };
        counts.sweptChains += report.removed?.chains ?? 0;
      } catch {
        problems.push(`sweep printed no JSON:\n${procText(r)}`);
      }
      counts.sweepRetries += (r.stderr.match(/transaction failed/g) ?? []).length;
      await check(`sweep #${counts.sweeps}${settle ? ' (--settle 1)' : ''}`, startedAt);
    }
  }

  async function collector(): Promise<void> {
    // GC's read of this lab's nat table, seen through a PATH wrapper that only observes.
    const table = `iptables-${lab.toolchain.variant}-save`;
    while (running()) {
      await sleep(300);
      let release: () => void = () => {};
      gcRunning = new Promise<void>((r) => (release = r));
      const startedAt = ++tick;
      const valid = [...known].map((c) => ({ containerID: c.id, ifname: 'eth0' }));
      const hook = makeHook(w, 'iptables', 'observe');
      let finished = false;
      const run = gc(w, valid, { lockWait: 30 }, hook.dir).finally(() => {
        finished = true;
      });
      try {
        // New ADDs wait only until GC has read the table: an ADD after that is one GC never saw, and a retry must not take it.
        while (!finished && !hook.readBy(table)) await sleep(10);
      } finally {
        gcRunning = undefined;
        release();
      }
      const r = await run;
      counts.gcs++;
      if (r.exitCode !== 0 || r.stdout !== '') problems.push(`GC failed:\n${procText(r)}`);
      await check(`GC #${counts.gcs}`, startedAt);
    }
  }

  // Residents: recorded before the loops and alive throughout, so every pass checks someone.
  for (let i = 0; i < RESIDENTS; i++) {
    const c = await start('alive');
    if (c) alive.push(c);
  }
  // Two sweepers: a DaemonSet's periodic sweep and an operator's can overlap.
  await Promise.all([...Array.from({ length: WORKERS }, (_, k) => worker(k)), sweeper(), sweeper(), collector()]);
  return { counts, problems, alive, everyId, sweepConf };
}

describe.each(VARIANTS)('iptables-%s', (variant) => {
  it('containers come and go through bridge + host-local + janitor while sweep --apply (with and without --settle) and GC loop beside them: 0 recorded containers lose a rule, 0 orphans at the end', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const { counts, problems, alive, everyId, sweepConf } = await churn(w);

      // Those still alive: whole.
      const end = (await lab.snapshot([4])).v4;
      for (const c of alive) {
        const r = masqWhole(end, lab.network, c.id, [c.ip as string]);
        if (!r.ok) problems.push(`alive at the end: ${c.id} lost state: ${r.why}`);
      }
      // One last sweep for leaks made after the loop's last pass; then nothing is orphaned.
      const last = await sweep(w, ['--apply', '--json', '--config', sweepConf]);
      if (last.exitCode !== 0) problems.push(`final sweep --apply:\n${procText(last)}`);
      const dry = await sweep(w, ['--json', '--config', sweepConf]);
      const orphans = (JSON.parse(dry.stdout || '{"orphans":[]}') as { orphans: unknown[] }).orphans;
      const after = await lab.snapshot();
      const aliveIds = new Set(alive.map((c) => c.id));
      const leftovers = everyId.filter((id) => !aliveIds.has(id)).filter((id) => {
        const s = masqState(after.v4, lab.network, id);
        return s.chainDeclared || s.jumps.length > 0 || s.chainRules.length > 0;
      });
      for (const c of alive) {
        const r = masqWhole(after.v4, lab.network, c.id, [c.ip as string]);
        if (!r.ok) problems.push(`alive after the final sweep: ${c.id} lost state: ${r.why}`);
      }
      console.log(
        `[issue9 concurrency, iptables-${variant}] lifecycles=${counts.lifecycles} (leaked on purpose ${counts.leaks}), alive at end=${alive.length}, ` +
          `sweeps=${counts.sweeps} (with --settle 1: ${counts.settledSweeps}), GCs=${counts.gcs}, live-container checks=${counts.checks}, ` +
          `lost=${counts.losses}, chains removed by the loop's sweeps=${counts.sweptChains}, sweep transaction retries=${counts.sweepRetries}, ` +
          `orphans in the final dry run=${orphans.length}, gone containers' state left=${leftovers.length}`,
      );
      expect(problems, problems.join('\n\n')).toEqual([]);
      expect(counts.losses).toBe(0);
      expect({ dryExit: dry.exitCode, orphans }, procText(dry)).toEqual({ dryExit: 0, orphans: [] });
      expect(leftovers, 'state of gone containers left').toEqual([]);
      expectForeignIntact(lab, after);
      expect(counts.sweeps).toBeGreaterThan(2);
      expect(counts.settledSweeps).toBeGreaterThan(0);
      expect(counts.gcs).toBeGreaterThan(2);
      expect(counts.lifecycles).toBeGreaterThan(10);

      // Clean up the survivors with their own DEL; host-local is then empty.
      const list = bridgeList(w, { janitorKeys: { lockWait: 30 } });
      for (const c of alive) {
        await removeNetns(c.ns as Netns);
        const out = await delIf(w, list, c.id, '', 'eth0', c.result);
        expect(out.failure, explain(out)).toBeUndefined();
        removeCache(w, c.id, 'eth0');
      }
      expect(reservedIps(w)).toEqual([]);
    }), 150_000);
});
