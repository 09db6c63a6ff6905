import { describe, expect, it } from 'vitest';
import { VARIANTS } from '../../support/xtables.js';
import { explain } from '../support/cni.js';
import { e2eSuite, expectForeignIntact } from '../support/expect.js';
import { lines, masqState } from '../support/iptables.js';
import { IFNAME, withLab } from '../support/lab.js';

/**
 * Issue 9, failure 2: DEL with a live netns (bridge will tear down after
 * the janitor, so the janitor keeps bridge's chain) must never empty a
 * chain that another rule enters from outside POSTROUTING, here by `-j`
 * and by `-g` from a user chain. The janitor alone runs first (as libcni's reverse
 * order has it), and its effect is checked before bridge's own teardown.
 */

e2eSuite();

// A chain holding MASQUERADE can only be reached from POSTROUTING (the kernel refuses `-A OUTPUT -j <chain>`
// with EINVAL in both variants), so the foreign entries sit in user chains that POSTROUTING enters.
const ENTRIES = [
  {
    name: 'by -j from a user chain',
    setup: (chain: string) => [
      ['-N', 'MJT-USER'],
      ['-A', 'POSTROUTING', '-o', 'mjt-nowhere', '-j', 'MJT-USER'],
      ['-A', 'MJT-USER', '-d', '10.251.0.9/32', '-j', chain],
    ],
  },
  {
    name: 'by -g from a user chain',
    setup: (chain: string) => [
      ['-N', 'MJT-USER'],
      ['-A', 'POSTROUTING', '-o', 'mjt-nowhere', '-j', 'MJT-USER'],
      ['-A', 'MJT-USER', '-d', '10.251.0.10/32', '-g', chain],
    ],
  },
] as const;

describe.each(VARIANTS)('iptables-%s', (variant) => {
  describe.each(ENTRIES)('DEL with the netns alive while the container’s chain is also entered $name', ({ setup }) => {
    it('the chain is not emptied: its ACCEPT and MASQUERADE rules and the foreign entry stay', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList();
        const ctr = await lab.container();
        const result = await lab.add(list, ctr);
        const chain = lab.chain(ctr.id);
        for (const args of setup(chain)) await lab.iptables(4, args);
        const before = await lab.snapshot();
        const foreign = lines(before.v4).filter((l) => l.includes('MJT-USER') || l.startsWith(':MJT-USER'));
        expect(foreign.length).toBeGreaterThan(0);

        // The janitor's DEL on its own (it runs first in libcni's reverse order), netns and eth0 alive.
        const out = await lab.delRaw(lab.janitorOnlyList(), { containerId: ctr.id, netns: ctr.ns.path, ifname: IFNAME }, result);
        expect(out.failure, explain(out)).toBeUndefined();

        const after = await lab.snapshot();
        const s = masqState(after.v4, lab.network, ctr.id);
        expect(s.chainDeclared, `${chain} still declared`).toBe(true);
        expect(s.chainRules.map((r) => / -j (\S+)$/.exec(r)?.[1]).sort(), `${chain} was emptied although another rule enters it`).toEqual(['ACCEPT', 'MASQUERADE']);
        for (const l of foreign) expect(lines(after.v4), 'foreign entry into the chain').toContain(l);
        expectForeignIntact(lab, after);
      }));
  });
});
