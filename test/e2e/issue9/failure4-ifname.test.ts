import { describe, expect, it } from 'vitest';
import type { Conflist } from '../../support/conflist.js';
import { VARIANTS } from '../../support/xtables.js';
import { explain } from '../support/cni.js';
import { e2eSuite, expectDelOk, expectNoMasq } from '../support/expect.js';
import { withLab } from '../support/lab.js';
import { addIf, bridgeList, delIf, ip4, janitorOnly, masqWhole, reservedIps, world } from './support/world.js';

/**
 * Issue 9, failure 4: CNI_IFNAME is checked as libcni and skel check it
 * (raw bytes, Go's unicode.IsSpace, which does not count U+FEFF). A name
 * bridge accepts must never make the janitor's DEL fail: libcni stops the
 * DEL chain at the first error, bridge never runs and the IP is never
 * released. A name the janitor cannot use means "nothing to remove".
 */

e2eSuite();

/** 7 bytes in UTF-8 (the kernel's limit is 15); JavaScript's \s matches U+FEFF, Go's unicode.IsSpace does not. */
const BOM_IFNAME = 'eth\u{FEFF}0';

describe.each(VARIANTS)('iptables-%s', (variant) => {
  it('DEL with CNI_IFNAME holding U+FEFF through the real bridge: the janitor exits 0, bridge runs, the IP is released', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const list = bridgeList(w);
      const bridgeOnly: Conflist = { ...list, plugins: list.plugins.slice(0, 1) };
      const c = await lab.container();
      // bridge (and skel) accept the name: ADD through bridge alone, so only the janitor's DEL is under test.
      const result = await addIf(w, bridgeOnly, c, BOM_IFNAME);
      expect(masqWhole((await lab.snapshot()).v4, lab.network, c.id, [ip4(result)]).ok).toBe(true);
      expect(reservedIps(w)).toEqual([ip4(result)]);

      const out = await delIf(w, list, c.id, '', BOM_IFNAME, result);
      expectDelOk(out);
      expect(out.calls.map((call) => `${call.plugin} ${call.exitCode ?? '?'}`), explain(out)).toEqual(['masq-janitor 0', 'bridge 0']);
      expect(reservedIps(w), 'host-local still holds the IP: bridge never ran').toEqual([]);
      expectNoMasq(lab, await lab.snapshot(), c.id);
    }));

  it('DEL with an invalid CNI_IFNAME ("a b"): the janitor exits 0 and removes nothing', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const before = await lab.snapshot();
      const out = await delIf(w, janitorOnly(w), 'default-0123456789abcdef', '', 'a b', undefined);
      expect(out.failure, explain(out)).toBeUndefined();
      expect(out.calls.map((call) => call.stdout), 'nothing on stdout').toEqual(['']);
      expect(await lab.snapshot()).toEqual(before);
    }));
});
