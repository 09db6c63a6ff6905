import { describe, expect, it } from 'vitest';
import { planHostports } from '../../../src/backends/iptables/hostport.js';
import { parseSave } from '../../../src/backends/iptables/parse.js';
import type { Attachment } from '../../../src/identity.js';
import { restore, VARIANTS, type Family } from '../../support/xtables.js';
import { e2eSuite, expectDelOk, expectForeignIntact, expectNat } from '../support/expect.js';
import { withLab, type Lab } from '../support/lab.js';
import { addWithPorts, delWithPorts, installForeignDnat, secondNetwork, withPortmap, type PortMapping } from './support.js';

/**
 * The pure planner against the real thing, before any integration: leak
 * portmap state with the Debian plugins, plan from the real iptables-save
 * text, apply the plan in ONE iptables-restore --noflush per family (a
 * minimal renderer here, not the product's), and the nat tables must be
 * exactly what they were before the container's ADD, with another
 * container's mappings (same host port, other network; same ID, other
 * network) and foreign DNAT still there.
 */

e2eSuite();

const MAPPINGS: readonly PortMapping[] = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 5353, containerPort: 53, protocol: 'udp' },
  { hostPort: 9090, containerPort: 90, protocol: 'tcp', hostIP: '127.0.0.1' },
];

async function applyPlan(lab: Lab, family: Family, a: Attachment, saveText: string): Promise<number> {
  const plan = planHostports(parseSave(saveText), (x) => x.network === a.network && x.containerId === a.containerId, [a]);
  const lines = ['*nat', ...plan.entries.map((r) => `-D ${r.line.slice('-A '.length)}`), ...plan.chains.map((c) => `-F ${c}`), ...plan.chains.map((c) => `-X ${c}`), 'COMMIT', ''];
  await restore(lab.host, lab.toolchain, family, lines.join('\n'));
  return plan.entries.length + plan.chains.length;
}

describe.each(VARIANTS)('iptables-%s', (variant) => {
  it('the plan from a real leak, applied in one transaction per family, restores the pre-ADD tables', () =>
    withLab(variant, async (lab) => {
      await installForeignDnat(lab, [4, 6]);
      const list = withPortmap(lab.bridgeList({ janitor: false, dualStack: true }));
      const net2 = secondNetwork(lab, { janitor: false, octet: 200 });
      const warm = await lab.container();
      expectDelOk(await delWithPorts(lab, list, warm, 'alive', await addWithPorts(lab, list, warm, MAPPINGS), MAPPINGS));
      const ctr = await lab.container();
      const rival = await lab.container();
      await addWithPorts(lab, net2, rival, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
      const twin = await lab.container(ctr.id);
      await addWithPorts(lab, net2, twin, [{ hostPort: 8443, containerPort: 443, protocol: 'tcp' }]);
      // bridge tears its masquerade state down with the netns alive; portmap, given no mappings, leaves its own.
      const before = await lab.snapshot();
      const result = await addWithPorts(lab, list, ctr, MAPPINGS);
      expectDelOk(await delWithPorts(lab, list, ctr, 'alive', result, undefined));
      const leaked = await lab.snapshot();
      expect(leaked.v4, 'the leak is there to plan from').not.toBe(before.v4);

      const a = { network: lab.network, containerId: ctr.id };
      // Per family: the tcp and the udp entry rule, and the one DN chain.
      expect(await applyPlan(lab, 4, a, leaked.v4)).toBe(3);
      expect(await applyPlan(lab, 6, a, leaked.v6)).toBe(3);

      const after = await lab.snapshot();
      expectNat(after, before, 'after applying the hostport plan');
      expectForeignIntact(lab, after);
    }));
});
