import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweepHost, type SweepOptions } from '../../src/cli/sweep.js';
import type { Attachment } from '../../src/identity.js';
import { addBridge, addNftMasq, fakeWorld, writeCache, type FakeWorld } from '../support/fake-world.js';

/**
 * sweep's decisions (the shell of `masq-janitor sweep`) against the stateful
 * fake: what is recorded stays, what is not goes, and a retry decides from
 * the table and the records read again, within what the first plan doomed.
 */

const NET = 'swnet';
const B = 'iptables-nft';
const at = (id: string): Attachment => ({ network: NET, containerId: id });

let w: FakeWorld;
let progress: string[];
beforeEach(() => {
  w = fakeWorld();
  progress = [];
});
afterEach(() => w.dispose());

const run = (o: Partial<SweepOptions> = {}) =>
  sweepHost({ run: w.host.run, path: w.path, stateDir: w.stateDir, network: undefined, settleMs: 0, apply: true, wait: 5, progress: (l) => progress.push(l), ...o });

const lines = (base: string) => w.host.table(base).rules.map((r) => r.line).sort();
const stateOf = (s: ReturnType<typeof addBridge>) => [s.jump, ...s.inside].map((r) => r.line);

describe('sweep', () => {
  it('removes the unrecorded, keeps what libcni or host-local records', async () => {
    const cached = addBridge(w.host, B, at('cached'), '10.6.0.2', '10.6.0.0/24');
    const reserved = addBridge(w.host, B, at('reserved'), '10.6.0.3', '10.6.0.0/24');
    addBridge(w.host, B, at('orphan'), '10.6.0.4', '10.6.0.0/24');
    writeCache(w.stateDir, at('cached'), 'eth0', ['10.6.0.2']);
    mkdirSync(join(w.stateDir, 'networks', NET));
    writeFileSync(join(w.stateDir, 'networks', NET, '10.6.0.3'), 'reserved\r\neth0');
    const r = await run();
    expect(r.errors).toEqual([]);
    expect(r.rows.map((x) => x.containerId)).toEqual(['orphan']);
    expect(lines(B)).toEqual([...stateOf(cached), ...stateOf(reserved)].sort());
  });

  it('failure 1: a container recorded while the first transaction failed is kept by the retry (records are read again)', async () => {
    addBridge(w.host, B, at('orphan'), '10.6.0.4', '10.6.0.0/24');
    // Its rules exist at the first read, its record not yet: an ADD in flight.
    const inflight = addBridge(w.host, B, at('inflight'), '10.6.0.5', '10.6.0.0/24');
    let failed = false;
    w.host.beforeApply = (kind) => {
      if (kind !== 'restore' || failed) return undefined;
      failed = true;
      writeCache(w.stateDir, at('inflight'), 'eth0', ['10.6.0.5']);
      return 'fail';
    };
    const r = await run();
    expect(r.errors).toEqual([]);
    expect(lines(B)).toEqual(stateOf(inflight).sort());
  });

  it('a retry only shrinks: an orphan that appeared after the first read waits for the next sweep', async () => {
    addBridge(w.host, B, at('orphan'), '10.6.0.4', '10.6.0.0/24');
    let late: ReturnType<typeof addBridge> | undefined;
    w.host.beforeApply = (kind) => {
      if (kind !== 'restore' || late) return undefined;
      late = addBridge(w.host, B, at('late'), '10.6.0.6', '10.6.0.0/24');
      return 'fail';
    };
    const r = await run();
    expect(r.errors).toEqual([]);
    expect(lines(B)).toEqual(stateOf(late as ReturnType<typeof addBridge>).sort());
  });

  it('a chain another rule enters keeps its rules; the orphan’s jump goes', async () => {
    const o = addBridge(w.host, B, at('orphan'), '10.6.0.4', '10.6.0.0/24');
    const foreign = { line: `-A OUTPUT -d 192.0.2.1/32 -j ${o.chain}`, target: o.chain };
    w.host.addRule(B, foreign);
    const r = await run();
    expect(r.errors).toEqual([]);
    expect(lines(B)).toEqual([foreign.line, ...o.inside.map((x) => x.line)].sort());
  });

  it('nft: a rule whose interface gets recorded during the retry stays', async () => {
    addNftMasq(w.host, at('orphan'), 'eth0', '10.6.0.4');
    const inflight = addNftMasq(w.host, at('inflight'), 'eth0', '10.6.0.5');
    let failed = false;
    w.host.beforeApply = (kind) => {
      if (kind !== 'nft' || failed) return undefined;
      failed = true;
      writeCache(w.stateDir, at('inflight'), 'eth0', ['10.6.0.5']);
      return 'fail';
    };
    const r = await run();
    expect(r.errors).toEqual([]);
    expect(w.host.nft.map((x) => x.handle)).toEqual([inflight]);
  });

  it('dry run changes nothing and reports each orphan once', async () => {
    addBridge(w.host, B, at('orphan'), '10.6.0.4', '10.6.0.0/24');
    const before = lines(B);
    const r = await run({ apply: false });
    expect(r.rows.map((x) => `${x.network}/${x.containerId}`)).toEqual([`${NET}/orphan`]);
    expect(lines(B)).toEqual(before);
    expect(w.host.count('iptables-nft-restore')).toBe(0);
  });

  it('counts per backend and network for --metrics-file: found, removed, kept', async () => {
    addBridge(w.host, B, at('orphan'), '10.6.0.4', '10.6.0.0/24');
    addBridge(w.host, B, at('cached'), '10.6.0.2', '10.6.0.0/24');
    writeCache(w.stateDir, at('cached'), 'eth0', ['10.6.0.2']);
    addNftMasq(w.host, at('gone'), 'eth0', '10.6.0.9');
    const dry = await run({ apply: false });
    expect(dry.counts).toEqual([
      { backend: 'iptables-nft', network: NET, found: 1, removed: 0, kept: 1 },
      { backend: 'nft', network: NET, found: 1, removed: 0, kept: 0 },
    ]);
    const applied = await run();
    expect(applied.counts).toEqual([
      { backend: 'iptables-nft', network: NET, found: 1, removed: 1, kept: 1 },
      { backend: 'nft', network: NET, found: 1, removed: 1, kept: 0 },
    ]);
  });

  it('warns about a --network no record and no state names', async () => {
    await run({ apply: false, network: 'typo' });
    expect(progress.join('\n')).toMatch(/no record and no state names network "typo"/);
  });
});
