import { describe, expect, it } from 'vitest';
import { e2eSuite, expectDelOk, expectJanitorQuiet, expectMasq, expectNat, resultIps } from './support/expect.js';
import { delNetworkList, type CniHost } from './support/cni.js';
import { natSnapshot, toolchain, VARIANTS } from '../support/xtables.js';
import { IFNAME, withLab } from './support/lab.js';

/**
 * An IPv4-only network on a host that never used IPv6 NAT (no ip6tables nat
 * table at all, the common nerdctl/containerd host). Cleaning up after an
 * IPv4 container must not leave the host with an IPv6 nat table it did not
 * have: in legacy that instantiates the ip6tables nat table (with its
 * netfilter hooks) in the namespace, in nft it adds `table ip6 nat`.
 */

e2eSuite();

describe.each(VARIANTS)('iptables-%s', (variant) => {
  describe.each(['empty', 'deleted', 'alive'] as const)('DEL with %s netns', (mode) => {
    it('an IPv4-only network leaves no IPv6 nat table behind', () =>
      withLab(
        variant,
        async (lab) => {
          const list = lab.bridgeList();
          const ctr = await lab.container();
          const tablesBefore = await lab.natTables();
          expect(tablesBefore.legacy6 || tablesBefore.nft.includes('table ip6 nat'), 'precondition: no ip6 nat table').toBe(false);
          const before = await lab.snapshot([4]);

          const result = await lab.add(list, ctr);
          expectMasq(lab, await lab.snapshot([4]), ctr.id, 4, resultIps(result, 4));
          expectDelOk(await lab.del(list, ctr, mode, result));

          expectNat(await lab.snapshot([4]), before, `IPv4 nat and nft ruleset after DEL (${mode})`);
          expect(await lab.natTables(), 'nat tables after DEL').toEqual(tablesBefore);
          expectJanitorQuiet(lab);
        },
        { ipv6NatUntouched: true },
      ));
  });
});

/**
 * Debian's alternatives switched from legacy to nft between ADD and DEL
 * (an upgrade, or a host that moved to nft): bridge made its rules with
 * iptables-legacy, the DEL runs with nft as the default `iptables`. The
 * legacy nat tables are not empty, so masq-janitor must look there too.
 */
describe('host switched iptables from legacy to nft between ADD and DEL', () => {
  it.each(['empty', 'alive'] as const)('DEL with %s netns removes the legacy state', (mode) =>
    withLab('legacy', async (lab) => {
      const list = lab.bridgeList({ dualStack: true });
      const ctr = await lab.container();
      const before = await lab.snapshot();
      const nftBefore = await natSnapshot(lab.host, toolchain('nft'));
      const result = await lab.add(list, ctr);
      expectMasq(lab, await lab.snapshot(), ctr.id, 4, resultIps(result, 4));

      const nftHost: CniHost = { ...lab.cni, toolchain: toolchain('nft') };
      const netns = mode === 'empty' ? '' : ctr.ns.path;
      const out = await delNetworkList(nftHost, list, { containerId: ctr.id, netns, ifname: IFNAME }, { cachedResult: result });
      if (mode === 'empty') expectDelOk(out);
      // With the netns alive, bridge (now on nft) finds no chain of its own: its DEL outcome is upstream's business.

      expectNat(await lab.snapshot(), before, `legacy tables after DEL under nft (${mode})`);
      expectNat(await natSnapshot(lab.host, toolchain('nft')), nftBefore, `nft tables after DEL under nft (${mode})`);
      expectJanitorQuiet(lab);
    }),
  );
});
