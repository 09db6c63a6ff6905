import { describe, expect, it } from 'vitest';
import { e2eSuite, expectDelOk, expectForeignIntact, expectJanitorQuiet, expectMasq, expectNat, expectNoMasq, resultIps } from './support/expect.js';
import { VARIANTS } from '../support/xtables.js';
import { cniChains, cniRules } from './support/iptables.js';
import { DEL_MODES, withLab, type DelMode } from './support/lab.js';
import { nsMust } from '../support/netns.js';

/**
 * The issue (containernetworking/plugins#810): bridge with ipMasq skips its
 * masquerade teardown on DEL when CNI_NETNS is empty or the netns is gone.
 * With masq-janitor appended, every DEL must bring both nat tables back to
 * exactly what they were before ADD, whatever state the netns is in, and
 * bridge's own DEL must still succeed.
 */

e2eSuite();

const MODE_TEXT: Record<DelMode, string> = {
  empty: 'CNI_NETNS="" (nerdctl/ctr)',
  deleted: 'the netns already deleted (its path passed)',
  alive: 'the netns alive: bridge DEL succeeds too',
  'iface-gone': 'the netns alive but eth0 already deleted',
};

describe.each(VARIANTS)('iptables-%s', (variant) => {
  it('control: without masq-janitor, bridge DEL with CNI_NETNS="" leaks the chain and its rules (both families)', () =>
    withLab(variant, async (lab) => {
      const list = lab.bridgeList({ janitor: false, dualStack: true });
      const ctr = await lab.container();
      const before = await lab.snapshot();
      const result = await lab.add(list, ctr);
      const afterAdd = await lab.snapshot();
      for (const family of ['v4', 'v6'] as const) {
        expect(cniChains(afterAdd[family]).sort(), `one new CNI chain (${family})`).toEqual([...cniChains(before[family]), lab.chain(ctr.id)].sort());
        expect(cniRules(afterAdd[family]).length - cniRules(before[family]).length, `jump + ACCEPT + MASQUERADE (${family})`).toBe(3);
        expect(cniRules(afterAdd[family], lab.network, ctr.id)).toHaveLength(3);
      }

      expectDelOk(await lab.del(list, ctr, 'empty', result));
      expect(await lab.snapshot(), 'bridge alone leaks everything it made').toEqual(afterAdd);
    }));

  describe.each(DEL_MODES)('IPv4 bridge, DEL with %s', (mode) => {
    it(`restores the nat tables exactly: ${MODE_TEXT[mode]}`, () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList();
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);
        const afterAdd = await lab.snapshot();
        expectMasq(lab, afterAdd, ctr.id, 4, resultIps(result, 4));

        expectDelOk(await lab.del(list, ctr, mode, result));

        const after = await lab.snapshot();
        expectNoMasq(lab, after, ctr.id);
        expectNat(after, before, `after DEL (${mode})`);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }));
  });

  describe.each(DEL_MODES)('dual-stack bridge, DEL with %s', (mode) => {
    it(`cleans both families: ${MODE_TEXT[mode]}`, () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList({ dualStack: true });
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);
        const afterAdd = await lab.snapshot();
        expect(resultIps(result, 6), 'bridge assigned an IPv6 address').toHaveLength(1);
        expectMasq(lab, afterAdd, ctr.id, 4, resultIps(result, 4));
        expectMasq(lab, afterAdd, ctr.id, 6, resultIps(result, 6));

        expectDelOk(await lab.del(list, ctr, mode, result));

        const after = await lab.snapshot();
        expectNoMasq(lab, after, ctr.id);
        expectNat(after, before, `after DEL (${mode})`);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }));
  });

  it('dual-stack, netns alive but the container lost its IPv6 address: bridge tears down IPv4 only, the janitor IPv6 whole', () =>
    withLab(variant, async (lab) => {
      const list = lab.bridgeList({ dualStack: true });
      const ctr = await lab.container();
      const before = await lab.snapshot();
      const result = await lab.add(list, ctr);
      expectMasq(lab, await lab.snapshot(), ctr.id, 6, resultIps(result, 6));
      // bridge reads the addresses from the link on DEL: with no global IPv6 left it will not touch ip6tables.
      await nsMust(ctr.ns, 'ip', ['-6', 'addr', 'flush', 'dev', 'eth0', 'scope', 'global']);

      expectDelOk(await lab.del(list, ctr, 'alive', result));

      const after = await lab.snapshot();
      expectNoMasq(lab, after, ctr.id);
      expectNat(after, before, 'after DEL with the IPv6 address gone');
      expectForeignIntact(lab, after);
      expectJanitorQuiet(lab);
    }));

  describe.each(['empty', 'deleted', 'alive'] as const)('ptp instead of bridge, DEL with %s', (mode) => {
    it(`restores the nat tables exactly: ${MODE_TEXT[mode]}`, () =>
      withLab(variant, async (lab) => {
        const list = lab.ptpList();
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);
        expectMasq(lab, await lab.snapshot(), ctr.id, 4, resultIps(result, 4));

        expectDelOk(await lab.del(list, ctr, mode, result));

        const after = await lab.snapshot();
        expectNoMasq(lab, after, ctr.id);
        expectNat(after, before, `after ptp DEL (${mode})`);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }));
  });
});
