import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { e2eSuite } from '../support/expect.js';
import { withLab } from '../support/lab.js';
import { VARIANTS } from '../../support/xtables.js';
import { hijackScenario } from './traffic.js';

/**
 * The hijack, with real traffic (control, no janitor): a container publishes
 * host port 8080, is deleted without portMappings, and a new container on
 * another network publishes the same port. A TCP connection from the host
 * namespace to the host port then follows the stale DNAT:
 * - to the old IP, where nothing answers any more, or
 * - to whichever container host-local gave the old IP to next.
 * The janitor half (it reaches the new container) is in traffic.pending.ts.
 */

e2eSuite();

describe.each(VARIANTS)('iptables-%s, no janitor', (variant) => {
  it('the reused host port reaches the old IP, where nothing answers', () =>
    withLab(variant, async (lab) => {
      const reply = await hijackScenario(lab, { janitor: false, reuseOldIp: false, octet: randomInt(1, 250) });
      expect(reply.viaStale, 'the stale DNAT wins: the new container is not reached').not.toBe('B');
      expect(reply.viaStale).toMatch(/^ERR:/);
      expect(reply.direct, 'the new container itself is up').toBe('B');
    }));

  it('the reused host port reaches the wrong container (the one that got the old IP)', () =>
    withLab(variant, async (lab) => {
      const reply = await hijackScenario(lab, { janitor: false, reuseOldIp: true, octet: randomInt(1, 250) });
      expect(reply.viaStale, 'the stale DNAT sends the new container\'s traffic to the old IP\'s new owner').toBe('C');
      expect(reply.direct).toBe('B');
    }));
});
