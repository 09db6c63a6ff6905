import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nsExec, nsMust } from '../../support/netns.js';
import { loadNft } from '../../support/xtables.js';
import { REPO_ROOT } from '../../support/guard.js';
import { e2eSuite, expectDelOk } from '../support/expect.js';
import { JANITOR_DIR, withLab, type Lab } from '../support/lab.js';

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

describe('sweep and the nft cni_hostport tables', () => {
  const sweep = (lab: Lab, stateDir: string, args: readonly string[]) =>
    nsExec(lab.host, 'env', ['-i', `PATH=${lab.toolchain.path}`, join(JANITOR_DIR, 'masq-janitor'), 'sweep', '--state-dir', stateDir, ...args]);

  /** A state dir whose libcni cache records default-c3 (on some network) and nothing else. */
  function stateDir(lab: Lab): string {
    const dir = join(lab.tmp, 'cni');
    mkdirSync(join(dir, 'results'), { recursive: true });
    const entry = { kind: 'cniCacheV1', containerId: 'default-c3', config: '', ifName: 'eth0', networkName: 'n1', netns: '/x', cniArgs: null, result: result(['10.88.0.4/16']) };
    writeFileSync(join(dir, 'results', 'n1-default-c3-eth0'), JSON.stringify(entry));
    return dir;
  }

  it('the dry run reports host port 8080 served by three containers, c3 recorded; --apply removes only the unrecorded IDs\' portmap rules', () =>
    withLab('nft', async (lab) => {
      await loadNft(lab.host, rulesets());
      const dir = stateDir(lab);
      const dry = await sweep(lab, dir, ['--json']);
      expect(dry.exitCode, dry.stderr).toBe(1);
      const report = JSON.parse(dry.stdout) as { portConflicts: { port: number; family: number; holders: { containerId?: string; recorded: boolean; where: string }[] }[] };
      const c8080 = report.portConflicts.find((c) => c.port === 8080 && c.family === 4);
      expect(c8080?.holders.map((h) => `${h.containerId}:${h.recorded ? 'recorded' : 'orphaned'}:${h.where}`)).toEqual([
        'default-c1:orphaned:nft ip cni_hostport',
        'default-c2:orphaned:nft ip cni_hostport',
        'default-c3:recorded:nft ip cni_hostport',
      ]);
      const before4 = await ruleLines(lab, 'ip');
      const applied = await sweep(lab, dir, ['--apply', '--json']);
      expect(applied.exitCode, applied.stderr).toBe(0);
      const after4 = await ruleLines(lab, 'ip');
      const portmapShaped = (l: string): boolean => !l.includes('counter');
      expect(after4).toEqual(before4.filter((l) => !((l.includes('"default-c1"') || l.includes('"default-c2"')) && portmapShaped(l))));
      expect(after4.filter((l) => l.includes('"default-c3"'))).toHaveLength(2);
      expect((await ruleLines(lab, 'ip6')).filter((l) => l.includes('"default-'))).toEqual([]);
    }));

  it('with --network, nft hostport rules are never removed (their comments name no network)', () =>
    withLab('nft', async (lab) => {
      await loadNft(lab.host, rulesets());
      const dir = stateDir(lab);
      const before4 = await ruleLines(lab, 'ip');
      await sweep(lab, dir, ['--apply', '--network', 'n1']);
      expect(await ruleLines(lab, 'ip')).toEqual(before4);
    }));
});
