import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nsMust } from '../../support/netns.js';
import { loadNft } from '../../support/xtables.js';
import { REPO_ROOT } from '../../support/guard.js';
import { e2eSuite, expectDelOk } from '../support/expect.js';
import { withLab, type Lab } from '../support/lab.js';

/**
 * portmap's nftables backend (v1.6+) is not in Debian, so its tables are
 * loaded here with the exact rules upstream writes (the ruleset behind the
 * unit fixtures, test/backends/nft/hostport-fixtures.ts), into a throwaway
 * netns; then the real masq-janitor DEL runs against the real nft.
 */

e2eSuite();

/** The `nft -f` scripts quoted in the fixture file's header comment. */
function rulesets(): string {
  const text = readFileSync(join(REPO_ROOT, 'test/backends/nft/hostport-fixtures.ts'), 'utf8');
  return text
    .split('\n')
    .map((l) => /^ \* {3}(add .*)$/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined)
    .join('\n');
}

const ruleLines = async (lab: Lab, family: 'ip' | 'ip6'): Promise<string[]> =>
  (await nsMust(lab.host, 'nft', ['list', 'table', family, 'cni_hostport']))
    .split('\n')
    .map((l) => l.trim().replace(/counter packets \d+ bytes \d+/, 'counter'))
    .filter((l) => l.includes('comment') || l.includes('dnat') || l.startsWith('jump') || l.startsWith('fib') || l.startsWith('chain'));

const result = (ips: string[]) => ({ cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: ips.map((address) => ({ address, interface: 0 })) });

describe('nft cni_hostport tables (portmap "backend": "nftables")', () => {
  it('DEL with prevResult removes only this attachment\'s rules; the same container\'s other network, other containers and the skeleton stay', () =>
    withLab('nft', async (lab) => {
      await loadNft(lab.host, rulesets());
      const before4 = await ruleLines(lab, 'ip');
      const before6 = await ruleLines(lab, 'ip6');
      const out = await lab.delRaw({ ...lab.janitorOnlyList(), name: 'anynet' }, { containerId: 'default-c1', netns: '', ifname: 'eth0' }, result(['10.88.0.2/16', 'fd00:88::2/64']));
      expectDelOk(out);
      const gone = (l: string): boolean => l.includes('"default-c1"') && (l.includes('10.88.0.2') || l.includes('fd00:88::2'));
      expect(await ruleLines(lab, 'ip')).toEqual(before4.filter((l) => !gone(l)));
      expect(await ruleLines(lab, 'ip6')).toEqual(before6.filter((l) => !gone(l)));
      expect((await ruleLines(lab, 'ip')).filter((l) => l.includes('10.99.0.2'))).toHaveLength(3);
    }));

  it('DEL without prevResult removes every portmap rule of the container ID (as portmap\'s own DEL), and only those', () =>
    withLab('nft', async (lab) => {
      await loadNft(lab.host, rulesets());
      const before4 = await ruleLines(lab, 'ip');
      const out = await lab.delRaw({ ...lab.janitorOnlyList('0.3.1'), name: 'anynet' }, { containerId: 'default-c1', netns: '', ifname: 'eth0' }, undefined);
      expectDelOk(out);
      const after4 = await ruleLines(lab, 'ip');
      // Everything of default-c1 portmap writes goes; its "counter" rule (not portmap's shape) stays.
      expect(after4).toEqual(before4.filter((l) => !l.includes('"default-c1"') || l.includes('counter')));
      expect(after4.filter((l) => l.includes('"default-c1"'))).toEqual(['tcp dport 7000 counter comment "default-c1"']);
      expect((await ruleLines(lab, 'ip6')).filter((l) => l.includes('"default-c1"'))).toEqual([]);
    }));

  it('"hostports": false leaves the tables alone', () =>
    withLab('nft', async (lab) => {
      await loadNft(lab.host, rulesets());
      const before4 = await ruleLines(lab, 'ip');
      const list = { ...lab.janitorOnlyList(), name: 'anynet' };
      const noHostports = { ...list, plugins: list.plugins.map((p) => ({ ...p, hostports: false })) };
      expectDelOk(await lab.delRaw(noHostports, { containerId: 'default-c1', netns: '', ifname: 'eth0' }, undefined));
      expect(await ruleLines(lab, 'ip')).toEqual(before4);
    }));
});
