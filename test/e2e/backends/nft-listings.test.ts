import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRunner, type ExecResult, type Runner } from '../../../src/backends/exec.js';
import { coalescingNftLists } from '../../../src/backends/nft/listings.js';
import { createNetns, nsMust, removeAllNetns, removeNetns, type Netns } from '../../support/netns.js';
import { SYSTEM_PATH } from '../../support/proc.js';

/**
 * The real nft (Debian's 1.0.6) behind coalescingNftLists: for every mix of
 * present and absent tables, DEL's batched listing answers each caller what
 * its own `nft -j list` answers, in one process.
 */

const MASQ = ['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks'];
const HP4 = ['-j', 'list', 'table', 'ip', 'cni_hostport'];
const HP6 = ['-j', 'list', 'table', 'ip6', 'cni_hostport'];

let ns: Netns;
const calls: string[][] = [];
const inNs: Runner = (file, args, opts) => {
  calls.push([file, ...args]);
  return spawnRunner(SYSTEM_PATH)('ip', ['netns', 'exec', ns.name, file, ...args], opts);
};

beforeAll(async () => {
  ns = await createNetns('mjnl');
});
afterAll(async () => {
  await removeNetns(ns);
  await removeAllNetns();
});

const same = (batched: ExecResult, own: ExecResult): void => {
  expect(batched.exitCode).toBe(own.exitCode);
  if (own.exitCode === 0) expect(JSON.parse(batched.stdout)).toEqual(JSON.parse(own.stdout));
  else {
    expect(own.stderr).toMatch(/No such file or directory/);
    expect(batched.stderr).toMatch(/No such file or directory/);
  }
};

describe('nft -j -i for DEL’s three listings, real nft', () => {
  for (let mask = 0; mask < 8; mask++) {
    const present = { masq: (mask & 1) !== 0, hp4: (mask & 2) !== 0, hp6: (mask & 4) !== 0 };
    it(`masq ${present.masq ? 'present' : 'absent'}, ip cni_hostport ${present.hp4 ? 'present' : 'absent'}, ip6 ${present.hp6 ? 'present' : 'absent'}`, async () => {
      await nsMust(ns, 'nft', ['flush', 'ruleset']);
      const script = [
        ...(present.masq ? ['add table inet cni_plugins_masquerade', 'add chain inet cni_plugins_masquerade masq_checks', 'add rule inet cni_plugins_masquerade masq_checks ip saddr 10.1.0.2 ip daddr != 10.1.0.0/24 masquerade comment "c1"'] : []),
        ...(present.hp4 ? ['add table ip cni_hostport', 'add chain ip cni_hostport hostports', 'add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.1.0.2:80 comment "c1"'] : []),
        ...(present.hp6 ? ['add table ip6 cni_hostport', 'add chain ip6 cni_hostport hostports'] : []),
      ];
      if (script.length > 0) await nsMust(ns, 'nft', ['-f', '-'], { input: `${script.join('\n')}\n` });
      const own = await Promise.all([MASQ, HP4, HP6].map((a) => inNs('nft', a)));
      calls.length = 0;
      const run = coalescingNftLists(inNs);
      const batched = await Promise.all([MASQ, HP4, HP6].map((a) => run('nft', a)));
      expect(calls).toEqual([['nft', '-j', '-i']]);
      batched.forEach((b, i) => same(b, own[i] as ExecResult));
    });
  }
});
