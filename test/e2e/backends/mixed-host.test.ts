import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeNetns } from '../../support/netns.js';
import { describeProc } from '../../support/proc.js';
import { loadNft } from '../../support/xtables.js';
import { backendSuite, createNs, hostState, iptablesMasq, janitor, masqChain, nftRuleset, quietSuccess, restore, restoreText, sweep, tempDir, traces, without, type Attachment, type HostState, type NftMasq, type Ns } from './host.js';

/**
 * A host that changed its mind: state for the same and other containers in
 * iptables-nft (Debian's default `iptables`), iptables-legacy (loaded with
 * iptables-legacy-restore, e.g. from an older node image or a legacy-only
 * tool) and the native nftables backend's table. DEL, GC and sweep each
 * clean every place the state lives, and nothing else.
 */

backendSuite();

const NET = 'mixnet';
const OTHER = 'othernet';
const X: Attachment = { network: NET, containerId: 'x1' }; // everywhere, dual-stack
const Y: Attachment = { network: NET, containerId: 'y1' }; // iptables-nft + nft
const Z: Attachment = { network: NET, containerId: 'z1' }; // legacy + nft
const OX: Attachment = { network: OTHER, containerId: 'x1' }; // same container, other network: everywhere

const FOREIGN_V4 = ['-A POSTROUTING -s 192.168.77.0/24 -j MASQUERADE', '-A POSTROUTING -o docker0 -j RETURN'];
// nerdctl-style IDs: their nft comments are cut at 128 characters, so only a prefix of the ID is visible.
const LONG_LIVE = 'default-' + '1a2b3c4d5e6f7a8b'.repeat(4);
const LONG_DEAD = 'default-' + '1a2b3c4d5e6f7a8b'.repeat(3) + '0000000000000000';
const NFT_RULES: NftMasq[] = [
  { network: NET, ifname: 'eth0', containerId: 'x1', ip: '10.40.0.2', subnet: '10.40.0.0/24' },
  { network: NET, ifname: 'eth0', containerId: 'x1', ip: 'fd00:40::2', subnet: 'fd00:40::/64' },
  { network: NET, ifname: 'eth1', containerId: 'x1', ip: '10.41.0.2', subnet: '10.41.0.0/24' },
  { network: NET, ifname: 'eth0', containerId: 'y1', ip: '10.40.0.3', subnet: '10.40.0.0/24' },
  { network: NET, ifname: 'eth0', containerId: 'z1', ip: '10.40.0.4', subnet: '10.40.0.0/24' },
  { network: OTHER, ifname: 'eth0', containerId: 'x1', ip: '10.50.0.2', subnet: '10.50.0.0/24' },
  { network: NET, ifname: 'eth0', containerId: LONG_LIVE, ip: '10.40.0.5', subnet: '10.40.0.0/24' },
  { network: NET, ifname: 'eth0', containerId: LONG_DEAD, ip: '10.40.0.6', subnet: '10.40.0.0/24' },
];
const LL: Attachment = { network: NET, containerId: LONG_LIVE };
const LD: Attachment = { network: NET, containerId: LONG_DEAD };
const nftOf = (a: Attachment, ifname?: string) =>
  NFT_RULES.filter((r) => r.network === a.network && r.containerId === a.containerId && (ifname === undefined || r.ifname === ifname));

async function buildHost(ns: Ns): Promise<HostState> {
  await restore(
    ns,
    'iptables-nft',
    restoreText(
      [iptablesMasq(X, '10.40.0.2', '10.40.0.0/24'), iptablesMasq(Y, '10.40.0.3', '10.40.0.0/24'), iptablesMasq(OX, '10.50.0.2', '10.50.0.0/24')],
      FOREIGN_V4,
    ),
  );
  await restore(ns, 'ip6tables-nft', restoreText([iptablesMasq(X, 'fd00:40::2', 'fd00:40::/64'), iptablesMasq(OX, 'fd00:50::2', 'fd00:50::/64')]));
  await restore(
    ns,
    'iptables-legacy',
    restoreText([iptablesMasq(X, '10.40.0.2', '10.40.0.0/24'), iptablesMasq(Z, '10.40.0.4', '10.40.0.0/24'), iptablesMasq(OX, '10.50.0.2', '10.50.0.0/24')], [
      '-A POSTROUTING -s 192.168.88.0/24 -j MASQUERADE',
    ]),
  );
  await restore(ns, 'ip6tables-legacy', restoreText([iptablesMasq(X, 'fd00:40::2', 'fd00:40::/64')]));
  await loadNft(ns, nftRuleset(NFT_RULES, ['ip saddr 10.200.0.1 counter']));
  const state = await hostState(ns);
  // The host really holds all of it, in every place.
  expect(traces(state, X)).toEqual({ 'iptables-nft': 4, 'ip6tables-nft': 4, 'iptables-legacy': 4, 'ip6tables-legacy': 4, nft: 3 });
  expect(traces(state, Y)).toEqual({ 'iptables-nft': 4, 'ip6tables-nft': 0, 'iptables-legacy': 0, 'ip6tables-legacy': 0, nft: 1 });
  expect(traces(state, Z)).toEqual({ 'iptables-nft': 0, 'ip6tables-nft': 0, 'iptables-legacy': 4, 'ip6tables-legacy': 0, nft: 1 });
  expect(traces(state, OX)).toEqual({ 'iptables-nft': 4, 'ip6tables-nft': 4, 'iptables-legacy': 4, 'ip6tables-legacy': 0, nft: 1 });
  expect([traces(state, LL, 'eth0').nft, traces(state, LD, 'eth0').nft]).toEqual([1, 1]);
  return state;
}

let ns: Ns;
let dirs: string[] = [];
beforeEach(async () => {
  ns = await createNs('mixed');
});
afterEach(async () => {
  await removeNetns(ns);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe('mixed host: iptables-nft, iptables-legacy and nft together', () => {
  it('Debian’s default iptables is the nft variant (what bridge used)', async () => {
    expect(await ns.mustExec('iptables', ['--version'])).toMatch(/nf_tables/);
  });

  it('DEL with CNI_NETNS="" removes the container’s state from every variant and the nft table, nothing else', async () => {
    const before = await buildHost(ns);
    const r = await janitor(ns, { command: 'DEL', containerId: 'x1', ifname: 'eth0', netns: '', conf: { cniVersion: '1.0.0', name: NET, type: 'masq-janitor' } });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    const after = await hostState(ns);
    // The nft backend keys on ifname: x1's eth1 rule is another attachment's and stays.
    expect(after).toEqual(without(before, { iptables: [X], nft: nftOf(X, 'eth0') }));
    expect(traces(after, X)).toEqual({ 'iptables-nft': 0, 'ip6tables-nft': 0, 'iptables-legacy': 0, 'ip6tables-legacy': 0, nft: 1 });
    expect(traces(after, OX)).toEqual(traces(before, OX));
  });

  it('DEL of a container whose state is only in legacy removes it there', async () => {
    const before = await buildHost(ns);
    const r = await janitor(ns, { command: 'DEL', containerId: 'z1', ifname: 'eth0', netns: '', conf: { cniVersion: '1.0.0', name: NET, type: 'masq-janitor' } });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect(await hostState(ns)).toEqual(without(before, { iptables: [Z], nft: nftOf(Z) }));
  });

  it('GC removes the network’s invalid state from every variant and the nft table', async () => {
    const before = await buildHost(ns);
    const r = await janitor(ns, {
      command: 'GC',
      conf: { cniVersion: '1.1.0', name: NET, type: 'masq-janitor', 'cni.dev/valid-attachments': [
          { containerID: 'y1', ifname: 'eth0' },
          { containerID: LONG_LIVE, ifname: 'eth0' },
        ],
      },
    });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    const after = await hostState(ns);
    expect(after).toEqual(without(before, { iptables: [X, Z], nft: [...nftOf(X), ...nftOf(Z), ...nftOf(LD)] }));
    expect(traces(after, LL, 'eth0').nft).toBe(1);
    expect(traces(after, Y)).toEqual(traces(before, Y));
  });

  it('sweep lists and removes each unrecorded attachment wherever it lives', async () => {
    const before = await buildHost(ns);
    // Recorded: y1 by libcni's cache, othernet/x1 by a host-local reservation. Not recorded: mixnet/x1, mixnet/z1.
    const dir = tempDir('mixed-state');
    dirs.push(dir);
    mkdirSync(join(dir, 'results'));
    const cacheEntry = (id: string) => JSON.stringify({ kind: 'cniCacheV1', containerId: id, networkName: NET, ifName: 'eth0', config: '', result: {} });
    writeFileSync(join(dir, 'results', `${NET}-y1-eth0`), cacheEntry('y1'));
    writeFileSync(join(dir, 'results', `${NET}-${LONG_LIVE}-eth0`), cacheEntry(LONG_LIVE));
    mkdirSync(join(dir, 'networks', OTHER), { recursive: true });
    writeFileSync(join(dir, 'networks', OTHER, '10.50.0.2'), 'x1\r\neth0');
    writeFileSync(join(dir, 'networks', OTHER, 'lock'), '');

    const dry = await sweep(ns, ['--json', '--state-dir', dir]);
    expect(dry.exitCode, describeProc(dry)).toBe(1);
    const report = JSON.parse(dry.stdout) as { orphans: { network: string; containerId: string; where: string; object: string }[]; errors: string[]; looked: { tables: string[] } };
    expect(report.errors).toEqual([]);
    expect(report.looked.tables.sort()).toEqual(['ip6tables-legacy nat', 'ip6tables-nft nat', 'iptables-legacy nat', 'iptables-nft nat', 'nft inet cni_plugins_masquerade']);
    const rows = report.orphans.map((o) => `${o.where} ${o.network}/${o.containerId} ${o.object.replace(/handle \d+/, 'handle')}`).sort();
    expect(rows).toEqual(
      [
        `iptables-nft v4 ${NET}/x1 ${masqChain(NET, 'x1')}`,
        `ip6tables-nft v6 ${NET}/x1 ${masqChain(NET, 'x1')}`,
        `iptables-legacy v4 ${NET}/x1 ${masqChain(NET, 'x1')}`,
        `ip6tables-legacy v6 ${NET}/x1 ${masqChain(NET, 'x1')}`,
        `iptables-legacy v4 ${NET}/z1 ${masqChain(NET, 'z1')}`,
        `nft inet ${NET}/x1 masq_checks handle`,
        `nft inet ${NET}/x1 masq_checks handle`,
        `nft inet ${NET}/x1 masq_checks handle`,
        `nft inet ${NET}/z1 masq_checks handle`,
        `nft inet ${NET}/${LONG_DEAD.slice(0, 128 - 62 - NET.length + 6)}… masq_checks handle`,
      ].sort(),
    );
    expect(await hostState(ns), 'a dry run changes nothing').toEqual(before);

    const applied = await sweep(ns, ['--apply', '--json', '--state-dir', dir]);
    expect(applied.exitCode, describeProc(applied)).toBe(0);
    const done = JSON.parse(applied.stdout) as { removed: { chains: number; nftRules: number }; errors: string[] };
    expect(done.errors).toEqual([]);
    expect(done.removed).toMatchObject({ chains: 5, nftRules: 5 });
    const after = await hostState(ns);
    expect(after).toEqual(without(before, { iptables: [X, Z], nft: [...nftOf(X), ...nftOf(Z), ...nftOf(LD)] }));
    expect(traces(after, LL, 'eth0').nft).toBe(1);

    const again = await sweep(ns, ['--json', '--state-dir', dir]);
    expect(again.exitCode, describeProc(again)).toBe(0);
    expect((JSON.parse(again.stdout) as { orphans: unknown[] }).orphans).toEqual([]);
  });
});
