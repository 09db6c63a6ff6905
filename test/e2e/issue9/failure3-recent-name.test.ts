import { describe, expect, it } from 'vitest';
import { VARIANTS } from '../../support/xtables.js';
import { e2eSuite, expectDelOk, expectForeignIntact, expectNoMasq } from '../support/expect.js';
import { lines } from '../support/iptables.js';
import { withLab, type Lab } from '../support/lab.js';
import { bridgeList, leak, procText, sweep, world } from './support/world.js';

/**
 * Issue 9, failure 3: a rule's target is its top-level -j/-g, never a
 * token inside another match's argument. iptables-save prints
 * `-m recent --name "-j CNI-<hash>"` without quotes, as
 * `--name -j CNI-<hash>`, so a reader that takes the first `-j` anywhere
 * sees a jump into the container's chain and never removes it.
 */

e2eSuite();

type Where = 'OUTPUT' | 'POSTROUTING';

/** The foreign rule: xt_recent list named like a jump into `chain`. */
async function recentNamed(lab: Lab, chain: string, where: Where = 'OUTPUT'): Promise<string> {
  await lab.iptables(4, ['-A', where, '-m', 'recent', '--set', '--name', `-j ${chain}`, '--rsource']);
  const line = lines((await lab.snapshot()).v4).find((l) => l.startsWith(`-A ${where} `) && l.includes('-m recent') && l.includes(chain));
  if (!line) throw new Error('the recent rule is not in the table');
  return line;
}

describe.each(VARIANTS)('iptables-%s: a foreign -m recent --name "-j CNI-<hash>"', (variant) => {
  // The issue names OUTPUT; the same rule in POSTROUTING is what a POSTROUTING-only DEL planner reads.
  describe.each([
    ['OUTPUT', true],
    ['OUTPUT', false],
    ['POSTROUTING', true],
    ['POSTROUTING', false],
  ] as const)('the foreign rule in %s, prevResult given: %s', (where, withPrev) => {
    it('DEL with an empty netns removes the container’s chain; the foreign rule stays', () =>
      withLab(variant, async (lab) => {
        const list = lab.bridgeList();
        const ctr = await lab.container();
        const result = await lab.add(list, ctr);
        const foreign = await recentNamed(lab, lab.chain(ctr.id), where);
        expectDelOk(await lab.del(list, ctr, 'empty', withPrev ? result : undefined));
        const after = await lab.snapshot();
        expectNoMasq(lab, after, ctr.id);
        expect(lines(after.v4)).toContain(foreign);
        expectForeignIntact(lab, after);
      }));

    it('strict DEL succeeds and removes the chain', () =>
      withLab(variant, async (lab) => {
        const w = world(lab);
        const list = bridgeList(w, { janitorKeys: { strict: true } });
        const ctr = await lab.container();
        const result = await lab.add(list, ctr);
        const foreign = await recentNamed(lab, lab.chain(ctr.id), where);
        expectDelOk(await lab.del(list, ctr, 'empty', withPrev ? result : undefined));
        const after = await lab.snapshot();
        expectNoMasq(lab, after, ctr.id);
        expect(lines(after.v4)).toContain(foreign);
      }));
  });

  it('sweep --apply removes the orphans of that table; the foreign rules (in OUTPUT) stay', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const o1 = await leak(w);
      const o2 = await leak(w);
      const foreign = [await recentNamed(lab, lab.chain(o1.c.id)), await recentNamed(lab, lab.chain(o2.c.id))];
      const r = await sweep(w, ['--apply', '--json']);
      expect(r.exitCode, procText(r)).toBe(0);
      const after = await lab.snapshot();
      expectNoMasq(lab, after, o1.c.id);
      expectNoMasq(lab, after, o2.c.id);
      for (const f of foreign) expect(lines(after.v4)).toContain(f);
      expectForeignIntact(lab, after);
      // And a second look finds nothing left (the dry run exits 0).
      const dry = await sweep(w, ['--json']);
      expect(dry.exitCode, procText(dry)).toBe(0);
    }));
});
