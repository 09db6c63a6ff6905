import { describe, expect, it } from 'vitest';
import type { Conflist, JsonObject } from '../../support/conflist.js';
import { VARIANTS } from '../../support/xtables.js';
import { explain } from '../support/cni.js';
import { e2eSuite, expectDelOk, expectForeignIntact, expectNoMasq } from '../support/expect.js';
import { masqState } from '../support/iptables.js';
import { withLab, type Container, type Lab } from '../support/lab.js';
import { addIf, bridgeList, delIf, gc, ip4, masqWhole, procText, removeCache, sweep, world, writeCache, type World } from './support/world.js';

/**
 * Issue 9, failure 5: one container with two interfaces (eth0, net1) on
 * the same network through the real bridge. bridge's iptables backend
 * ignores ifname: both share one chain, each has its own POSTROUTING jump.
 * Removing eth0 (DEL, GC, sweep) takes only eth0's jump; the shared chain
 * goes with the last jump. libcni's cache (<stateDir>/results) tells the
 * janitor about the other interface.
 */

e2eSuite();

interface Scene {
  readonly w: World;
  readonly lab: Lab;
  readonly list: Conflist;
  readonly c: Container;
  readonly eth0: JsonObject;
  readonly net1: JsonObject;
}

async function scene(lab: Lab): Promise<Scene> {
  const w = world(lab);
  const list = bridgeList(w, { janitorKeys: { stateDir: w.stateDir }, noRoutes: true });
  const c = await lab.container();
  const eth0 = await addIf(w, list, c, 'eth0');
  const net1 = await addIf(w, list, c, 'net1');
  writeCache(w, list, c.id, 'eth0', c.ns.path, eth0);
  writeCache(w, list, c.id, 'net1', c.ns.path, net1);
  const s: Scene = { w, lab, list, c, eth0, net1 };
  const v4 = (await lab.snapshot()).v4;
  const both = masqWhole(v4, lab.network, c.id, [ip4(eth0), ip4(net1)]);
  expect(both.ok, `the scene: one chain, a jump per interface: ${both.why}`).toBe(true);
  return s;
}

/** Only net1 masquerades: the shared chain whole, net1's jump, and no other jump of the container. */
async function expectOnlyNet1(s: Scene, what: string): Promise<void> {
  const snap = await s.lab.snapshot();
  const whole = masqWhole(snap.v4, s.lab.network, s.c.id, [ip4(s.net1)]);
  expect(whole.ok, `${what}: net1 lost its masquerade state: ${whole.why}`).toBe(true);
  const sources = masqState(snap.v4, s.lab.network, s.c.id).jumps.map((j) => /-s (\S+)/.exec(j)?.[1]);
  expect(sources, `${what}: jumps left`).toEqual([`${ip4(s.net1)}/32`]);
  expectForeignIntact(s.lab, snap);
}

describe.each(VARIANTS)('iptables-%s: one container, eth0 and net1 on the same network', (variant) => {
  it('DEL of eth0 (empty netns, prevResult): net1’s jump and the shared chain stay; then DEL of net1 removes everything', () =>
    withLab(variant, async (lab) => {
      const s = await scene(lab);
      expectDelOk(await delIf(s.w, s.list, s.c.id, '', 'eth0', s.eth0));
      removeCache(s.w, s.c.id, 'eth0');
      await expectOnlyNet1(s, 'after DEL of eth0');
      expectDelOk(await delIf(s.w, s.list, s.c.id, '', 'net1', s.net1));
      removeCache(s.w, s.c.id, 'net1');
      expectNoMasq(lab, await lab.snapshot(), s.c.id);
    }));

  it('DEL of eth0 without prevResult (its cache gone, net1’s cached): the same', () =>
    withLab(variant, async (lab) => {
      const s = await scene(lab);
      removeCache(s.w, s.c.id, 'eth0');
      const out = await delIf(s.w, s.list, s.c.id, '', 'eth0', undefined);
      expectDelOk(out);
      await expectOnlyNet1(s, 'after DEL of eth0 without prevResult');
      expectDelOk(await delIf(s.w, s.list, s.c.id, '', 'net1', undefined));
      removeCache(s.w, s.c.id, 'net1');
      expectNoMasq(lab, await lab.snapshot(), s.c.id);
    }));

  it('GC with only net1 valid: eth0’s jump goes, the chain and net1’s jump stay', () =>
    withLab(variant, async (lab) => {
      const s = await scene(lab);
      const r = await gc(s.w, [{ containerID: s.c.id, ifname: 'net1' }], { stateDir: s.w.stateDir });
      expect({ exitCode: r.exitCode, stdout: r.stdout }, procText(r)).toEqual({ exitCode: 0, stdout: '' });
      await expectOnlyNet1(s, 'after GC');
    }));

  it('sweep --apply with only net1 recorded: eth0’s jump goes, the chain and net1’s jump stay', () =>
    withLab(variant, async (lab) => {
      const s = await scene(lab);
      // eth0 leaks the way bridge leaks: its DEL with CNI_NETNS="" releases the IP and keeps the jump.
      const bridgeOnly: Conflist = { ...s.list, plugins: s.list.plugins.slice(0, 1) };
      const out = await delIf(s.w, bridgeOnly, s.c.id, '', 'eth0', s.eth0);
      expect(out.failure, explain(out)).toBeUndefined();
      removeCache(s.w, s.c.id, 'eth0');
      const r = await sweep(s.w, ['--apply', '--json']);
      expect(r.exitCode, procText(r)).toBe(0);
      await expectOnlyNet1(s, 'after sweep');
    }));
});
