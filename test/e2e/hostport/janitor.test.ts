import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { e2eSuite, expectDelOk, expectForeignIntact, expectJanitorQuiet, expectNat } from '../support/expect.js';
import { withLab, type Lab } from '../support/lab.js';
import { VARIANTS } from '../../support/xtables.js';
import type { Conflist } from '../../support/conflist.js';
import { addWithPorts, delWithPorts, dnatState, HOSTPORT_DEL_MODES, installForeignDnat, NO_DNAT, secondNetwork, withPortmap, type PortMapping } from './support.js';
import { hijackScenario } from './traffic.js';

/**
 * With masq-janitor appended after portmap, every DEL brings the nat tables
 * back to their state before the container's ADD, whatever the runtime
 * passed, and touches nothing else. "Before" is taken after one full
 * lifecycle of a warm-up container: portmap's shared chains
 * (CNI-HOSTPORT-DNAT, -SETMARK, -MASQ and their jumps) are made on the first
 * ADD and never removed, by portmap or by the janitor.
 */

e2eSuite();

const MAPPINGS: readonly PortMapping[] = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 5353, containerPort: 53, protocol: 'udp' },
];

/** A clean lifecycle (portMappings passed both times), so the shared chains exist before the real test. */
async function warmUp(lab: Lab, list: Conflist): Promise<void> {
  const w = await lab.container();
  const r = await addWithPorts(lab, list, w, [{ hostPort: 1, containerPort: 1, protocol: 'tcp' }]);
  expectDelOk(await delWithPorts(lab, list, w, 'alive', r, [{ hostPort: 1, containerPort: 1, protocol: 'tcp' }]));
}

describe.each(VARIANTS)('iptables-%s, with masq-janitor', (variant) => {
  describe.each([false, true])('dual-stack %s', (dualStack) => {
    it.each(HOSTPORT_DEL_MODES)('DEL without portMappings, netns %s: the nat tables are back to their pre-ADD state', (mode) =>
      withLab(variant, async (lab) => {
        const list = withPortmap(lab.bridgeList({ dualStack }));
        await warmUp(lab, list);
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await addWithPorts(lab, list, ctr, MAPPINGS);
        expect(dnatState((await lab.snapshot()).v4, lab.network, ctr.id).entries).toHaveLength(2);

        expectDelOk(await delWithPorts(lab, list, ctr, mode, result, undefined));

        const after = await lab.snapshot();
        expect(dnatState(after.v4, lab.network, ctr.id)).toEqual(NO_DNAT);
        expect(dnatState(after.v6, lab.network, ctr.id)).toEqual(NO_DNAT);
        expectNat(after, before, `after DEL without portMappings (netns ${mode})`);
        expectForeignIntact(lab, after);
        expectJanitorQuiet(lab);
      }),
    );

    it.each(['alive', 'empty'] as const)('DEL with portMappings, netns %s: portmap\'s own DEL still succeeds after the janitor\'s', (mode) =>
      withLab(variant, async (lab) => {
        const list = withPortmap(lab.bridgeList({ dualStack }));
        await warmUp(lab, list);
        const ctr = await lab.container();
        const before = await lab.snapshot();
        const result = await addWithPorts(lab, list, ctr, MAPPINGS);

        const out = await delWithPorts(lab, list, ctr, mode, result, MAPPINGS);
        expectDelOk(out);
        expect(out.calls.map((c) => `${c.plugin}:${c.exitCode}`)).toEqual(['masq-janitor:0', 'portmap:0', 'bridge:0']);

        expectNat(await lab.snapshot(), before, `after DEL with portMappings (netns ${mode})`);
        expectJanitorQuiet(lab);
      }),
    );
  });

  it('another container\'s mappings, the same host port on another network, the same ID on another network, and foreign DNAT stay', () =>
    withLab(variant, async (lab) => {
      await installForeignDnat(lab, [4, 6]);
      const net1 = withPortmap(lab.bridgeList({ dualStack: true }));
      const net2 = secondNetwork(lab, { janitor: true, octet: randomInt(1, 250) });
      await warmUp(lab, net1);
      const other = await lab.container();
      const otherResult = await addWithPorts(lab, net1, other, [{ hostPort: 9090, containerPort: 90, protocol: 'tcp' }]);
      const rival = await lab.container();
      await addWithPorts(lab, net2, rival, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
      const ctr = await lab.container();
      const twin = await lab.container(ctr.id);
      await addWithPorts(lab, net2, twin, [{ hostPort: 8443, containerPort: 443, protocol: 'tcp' }]);
      const before = await lab.snapshot();
      const result = await addWithPorts(lab, net1, ctr, MAPPINGS);

      expectDelOk(await delWithPorts(lab, net1, ctr, 'empty', result, undefined));

      const after = await lab.snapshot();
      expectNat(after, before, 'after DEL: everything but this attachment is as it was');
      for (const [who, net] of [
        [other.id, lab.network],
        [rival.id, net2.name],
        [ctr.id, net2.name],
      ] as const) {
        expect(dnatState(after.v4, net, who), `${net}/${who}`).toEqual(dnatState(before.v4, net, who));
        expect(dnatState(after.v4, net, who).entries.length, `${net}/${who} still published`).toBeGreaterThan(0);
      }
      expect(after.v4).toContain('--comment "dnat name: \\"' + lab.network + '\\" id: \\"imposter\\""');
      expect(after.v4).toContain('-A DOCKER-PUBLISH ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80');
      expectForeignIntact(lab, after);
      expectJanitorQuiet(lab);
      expect(otherResult).toBeDefined();
    }));

  it('real traffic: the reused host port reaches the new container, not the old IP', () =>
    withLab(variant, async (lab) => {
      const reply = await hijackScenario(lab, { janitor: true, reuseOldIp: false, octet: randomInt(1, 250) });
      expect(reply).toEqual({ viaStale: 'B', direct: 'B' });
    }));

  it('real traffic: the reused host port reaches the new container, not the one that got the old IP', () =>
    withLab(variant, async (lab) => {
      const reply = await hijackScenario(lab, { janitor: true, reuseOldIp: true, octet: randomInt(1, 250) });
      expect(reply).toEqual({ viaStale: 'B', direct: 'B' });
    }));
});
