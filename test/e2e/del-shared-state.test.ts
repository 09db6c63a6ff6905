import { describe, expect, it } from 'vitest';
import { e2eSuite, expectDelOk, expectForeignIntact, expectJanitorQuiet, expectMasq, expectNat, expectNoMasq, resultIps } from './support/expect.js';
import type { JsonObject } from '../support/conflist.js';
import { VARIANTS } from '../support/xtables.js';
import { cniChains, cniRules, masqState, savedComment } from './support/iptables.js';
import { FOREIGN_NETWORK } from './support/foreign.js';
import { DEL_MODES, IFNAME, newContainerId, withLab, type DelMode } from './support/lab.js';

/**
 * DEL in a nat table that holds more than one attachment's state: other
 * containers, a leaked predecessor on the same IP, old subnet-form jumps,
 * other networks and non-CNI rules. masq-janitor removes exactly the state
 * of the attachment being deleted.
 */

e2eSuite();

describe.each(VARIANTS)('iptables-%s', (variant) => {
  describe.each(['empty', 'alive'] as const)('DEL with %s netns', (mode) => {
    it('also removes an old-plugin subnet-form POSTROUTING jump (-s <subnet>/24)', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList();
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);
        // What plugins before v0.8.0 made: a jump from the whole subnet.
        const comment = `name: "${lab.network}" id: "${ctr.id}"`;
        await lab.iptables(4, ['-A', 'POSTROUTING', '-s', lab.subnet4, '-m', 'comment', '--comment', comment, '-j', lab.chain(ctr.id)]);
        const jumps = masqState((await lab.snapshot()).v4, lab.network, ctr.id).jumps;
        expect(jumps.map((j) => /-s (\S+)/.exec(j)?.[1]).sort()).toEqual([`${resultIps(result, 4)[0]}/32`, lab.subnet4].sort());

        expectDelOk(await lab.del(list, ctr, mode, result));

        const after = await lab.snapshot();
        expectNoMasq(lab, after, ctr.id);
        expectNat(after, before, `after DEL (${mode})`);
        expectJanitorQuiet(lab);
      }));

    it('a repeated DEL succeeds and changes nothing', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList({ dualStack: true });
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);

        expectDelOk(await lab.del(list, ctr, mode, result));
        const afterFirst = await lab.snapshot();
        expectNat(afterFirst, before, 'after the first DEL');

        // The runtime retries with the same arguments (in 'alive' mode bridge removed eth0 the first time).
        expectDelOk(await lab.del(list, ctr, mode === 'empty' ? 'empty' : 'alive', result));
        expectNat(await lab.snapshot(), afterFirst, 'after the second DEL');
        expectDelOk(await lab.del(list, ctr, mode === 'empty' ? 'empty' : 'alive', undefined));
        expectNat(await lab.snapshot(), afterFirst, 'after a third DEL without prevResult');
        expectJanitorQuiet(lab);
      }));

    it("two containers on one network: deleting one leaves the other's chain, jump and rules", () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList({ dualStack: true });
        const a = await lab.container();
        const b = await lab.container();
        const pristine = await lab.snapshot();
        const resultA = await lab.add(list, a);
        const withA = await lab.snapshot();
        const resultB = await lab.add(list, b);
        const withBoth = await lab.snapshot();
        expectMasq(lab, withBoth, b.id, 4, resultIps(resultB, 4));

        expectDelOk(await lab.del(list, b, mode, resultB));

        const afterB = await lab.snapshot();
        expectNoMasq(lab, afterB, b.id);
        expectNat(afterB, withA, 'after deleting B: exactly the state with A alone');
        expectMasq(lab, afterB, a.id, 4, resultIps(resultA, 4));
        expectMasq(lab, afterB, a.id, 6, resultIps(resultA, 6));
        expectForeignIntact(lab, afterB);

        // And A's own DEL (netns alive, the normal stop) still works afterwards.
        expectDelOk(await lab.del(list, a, 'alive', resultA));
        expectNat(await lab.snapshot(), pristine, 'after deleting A too');
        expectJanitorQuiet(lab);
      }));

    it("an IP reused after a leak: B's DEL removes B's state only; A's leak goes with a DEL for A's identity", () =>
      withLab(variant, async (lab) => {
        // One address in the range: host-local hands A's released IP to B.
        const withJanitor = lab.bridgeList({ singleAddress: true });
        const bridgeOnly = lab.bridgeList({ singleAddress: true, janitor: false });
        const a = await lab.container();
        const pristine = await lab.snapshot();

        const resultA = await lab.add(withJanitor, a);
        // A leaks: a DEL through bridge alone with an empty netns (the upstream bug).
        expectDelOk(await lab.del(bridgeOnly, a, 'empty', resultA));
        const leakedA = await lab.snapshot();
        expectMasq(lab, leakedA, a.id, 4, resultIps(resultA, 4));

        const b = await lab.container();
        const resultB = await lab.add(withJanitor, b);
        expect(resultIps(resultB, 4), 'B got the IP A leaked').toEqual(resultIps(resultA, 4));
        const bothOnSameIp = await lab.snapshot();
        expectMasq(lab, bothOnSameIp, a.id, 4, resultIps(resultA, 4));
        expectMasq(lab, bothOnSameIp, b.id, 4, resultIps(resultB, 4));

        expectDelOk(await lab.del(withJanitor, b, mode, resultB));
        const afterB = await lab.snapshot();
        expectNoMasq(lab, afterB, b.id);
        expectNat(afterB, leakedA, "after B's DEL: A's leak (not B's identity) is left alone");

        // An operator's DEL for A's identity through masq-janitor alone, as a runtime would send it.
        expectDelOk(await lab.delRaw(lab.janitorOnlyList(), { containerId: a.id, netns: '', ifname: IFNAME }, undefined));
        const afterA = await lab.snapshot();
        expectNat(afterA, pristine, "after the DEL for A's identity");
        expectJanitorQuiet(lab);
      }));
  });

  it('four containers deleted at the same time, each netns in a different state: all gone, nothing else touched', () =>
    withLab(variant, async (lab) => {
      const list = lab.bridgeList({ dualStack: true });
      const ctrs = await Promise.all(DEL_MODES.map(() => lab.container()));
      const before = await lab.snapshot();
      const results: JsonObject[] = [];
      // ADDs one after another (host-local and bridge are not what is under test here).
      for (const c of ctrs) results.push(await lab.add(list, c));
      const afterAdd = await lab.snapshot();
      for (const [i, c] of ctrs.entries()) expectMasq(lab, afterAdd, c.id, 6, resultIps(results[i], 6));

      const outs = await Promise.all(ctrs.map((c, i) => lab.del(list, c, DEL_MODES[i] as DelMode, results[i])));
      for (const out of outs) expectDelOk(out);

      const after = await lab.snapshot();
      for (const c of ctrs) expectNoMasq(lab, after, c.id);
      expectNat(after, before, 'after concurrent DELs');
      expectJanitorQuiet(lab);
    }));

  describe('foreign rules in the host namespace', () => {
    it('a DEL for a container that never had state changes nothing (KUBE-*, DOCKER, user MASQUERADE, other network)', () =>
      withLab(variant, async (lab) => {
        const before = await lab.snapshot();
        expect(before, 'the lab starts from the foreign rules alone').toEqual(lab.pristine);
        for (const family of ['v4', 'v6'] as const) {
          expect(cniChains(before[family]), `othernet's two chains (${family})`).toHaveLength(2);
          expect(cniRules(before[family]), `othernet's jumps and rules (${family})`).toHaveLength(6);
          expect(before[family]).toMatch(/^:KUBE-SERVICES /m);
          expect(before[family]).toMatch(/^:DOCKER /m);
          expect(before[family]).toMatch(/^-A POSTROUTING -s \S+ -j MASQUERADE$/m);
        }
        for (const id of [newContainerId(), lab.sharedId, 'default-otherctr']) {
          expectDelOk(await lab.delRaw(lab.janitorOnlyList(), { containerId: id, netns: '', ifname: IFNAME }, undefined));
        }
        expectNat(await lab.snapshot(), before, 'after DELs of unknown containers');
        expectJanitorQuiet(lab);
      }));

    it('a container whose ID also has a chain on another network: only this network’s chain goes', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList({ dualStack: true });
        const ctr = await lab.container(lab.sharedId);
        const before = await lab.snapshot();
        const foreign = masqState(before.v4, FOREIGN_NETWORK, ctr.id);
        expect(foreign.chainRules, 'the foreign chain for the same container ID exists').toHaveLength(2);
        expect(before.v4).toContain(savedComment(FOREIGN_NETWORK, ctr.id));

        const result = await lab.add(list, ctr);
        expectDelOk(await lab.del(list, ctr, 'empty', result));

        const after = await lab.snapshot();
        expectNat(after, before, 'after DEL');
        expect(masqState(after.v4, FOREIGN_NETWORK, ctr.id)).toEqual(foreign);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }));
  });
});
