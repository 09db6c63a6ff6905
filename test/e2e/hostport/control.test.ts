import { describe, expect, it } from 'vitest';
import { e2eSuite, expectDelOk } from '../support/expect.js';
import { withLab } from '../support/lab.js';
import { VARIANTS } from '../../support/xtables.js';
import { addWithPorts, delWithPorts, dnatState, dnChain, HOSTPORT_DEL_MODES, NO_DNAT, withPortmap, type PortMapping } from './support.js';

/**
 * The hostport leak, reproduced with the Debian bridge + portmap (v1.1.1) +
 * host-local and no janitor: portmap's DEL returns at once when the runtime
 * passes no runtimeConfig.portMappings, whatever the netns, so the
 * attachment's CNI-DN- chain and its entry rules in CNI-HOSTPORT-DNAT stay.
 * Also the other half of the control: with portMappings, portmap cleans.
 */

e2eSuite();

const MAPPINGS: readonly PortMapping[] = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 5353, containerPort: 53, protocol: 'udp' },
];

describe.each(VARIANTS)('iptables-%s, no janitor', (variant) => {
  describe.each([false, true])('dual-stack %s', (dualStack) => {
    const families = dualStack ? (['v4', 'v6'] as const) : (['v4'] as const);

    it.each(HOSTPORT_DEL_MODES)('DEL without portMappings, netns %s: the DN chain and its entry rules leak', (mode) =>
      withLab(variant, async (lab) => {
        const list = withPortmap(lab.bridgeList({ janitor: false, dualStack }));
        const ctr = await lab.container();
        const result = await addWithPorts(lab, list, ctr, MAPPINGS);
        const afterAdd = await lab.snapshot();
        for (const f of families) {
          const s = dnatState(afterAdd[f], lab.network, ctr.id);
          expect(s.chainDeclared, `${dnChain(lab.network, ctr.id)} made (${f})`).toBe(true);
          expect(s.entries, `one entry rule per protocol (${f})`).toHaveLength(2);
          expect(s.chainRules.filter((r) => r.includes('-j DNAT')), `DNAT rules (${f})`).toHaveLength(2);
        }

        expectDelOk(await delWithPorts(lab, list, ctr, mode, result, undefined));

        const after = await lab.snapshot();
        for (const f of families) {
          expect(dnatState(after[f], lab.network, ctr.id), `portmap alone leaks its DNAT state (${f}, netns ${mode})`).toEqual(dnatState(afterAdd[f], lab.network, ctr.id));
        }
      }),
    );

    it('DEL with portMappings: portmap removes its own state (the leak is only the runtime passing none)', () =>
      withLab(variant, async (lab) => {
        const list = withPortmap(lab.bridgeList({ janitor: false, dualStack }));
        const ctr = await lab.container();
        const result = await addWithPorts(lab, list, ctr, MAPPINGS);
        expectDelOk(await delWithPorts(lab, list, ctr, 'alive', result, MAPPINGS));
        const after = await lab.snapshot();
        for (const f of families) expect(dnatState(after[f], lab.network, ctr.id), f).toEqual(NO_DNAT);
      }),
    );
  });
});
