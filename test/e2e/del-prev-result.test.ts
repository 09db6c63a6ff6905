import { describe, expect, it } from 'vitest';
import { e2eSuite, expectDelOk, expectForeignIntact, expectJanitorQuiet, expectMasq, expectNat, resultIps } from './support/expect.js';
import { VARIANTS } from '../support/xtables.js';
import { withLab } from './support/lab.js';

/**
 * DEL without prevResult: libcni sends none when its result cache is gone
 * (deleted, unreadable, a reboot wiped /var/lib/cni) and never for conflists
 * below 0.4.0. masq-janitor must still find and remove the state, from the
 * network name and container ID alone.
 */

e2eSuite();

describe.each(VARIANTS)('iptables-%s', (variant) => {
  describe.each(['empty', 'alive'] as const)('DEL with %s netns', (mode) => {
    it('libcni result cache gone (cniVersion 1.0.0, no prevResult)', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList({ dualStack: true });
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);
        expectMasq(lab, await lab.snapshot(), ctr.id, 4, resultIps(result, 4));

        const out = await lab.del(list, ctr, mode, undefined);
        expectDelOk(out);
        expect(out.calls.every((c) => !c.stdin.includes('"prevResult"')), 'no plugin got a prevResult').toBe(true);

        const after = await lab.snapshot();
        expectNat(after, before, `after DEL without prevResult (${mode})`);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }));

    it('cniVersion 0.3.1 conflist (libcni sends no prevResult on DEL)', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList({ cniVersion: '0.3.1' });
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await lab.add(list, ctr);
        expect(result.cniVersion).toBe('0.3.1');
        expectMasq(lab, await lab.snapshot(), ctr.id, 4, resultIps(result, 4));

        // The runner is handed the cached result but must drop it, as libcni does below 0.4.0.
        const out = await lab.del(list, ctr, mode, result);
        expectDelOk(out);
        expect(out.calls.every((c) => !c.stdin.includes('"prevResult"')), 'no plugin got a prevResult').toBe(true);

        const after = await lab.snapshot();
        expectNat(after, before, `after 0.3.1 DEL (${mode})`);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }));
  });
});
