import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseNftListing } from '../../../src/backends/nft/parse.js';
import { removeNetns } from '../../support/netns.js';
import { describeProc } from '../../support/proc.js';
import { loadNft } from '../../support/xtables.js';
import { backendSuite, createNs, hostState, janitor, nftComment, nftRuleset, quietSuccess, without, type NftMasq, type Ns } from './host.js';

/**
 * DEL against the nftables masquerade backend (plugins >= v1.6), on rules
 * written exactly as upstream writes them: only the deleted instance's rules
 * go; the shared table, both chains and everybody else's rules stay.
 */

backendSuite();

const NERDCTL_ID = 'default-' + '5f3c2a1b0e9d8c7b'.repeat(4); // comment cut at 128 characters
const RULES: NftMasq[] = [
  { network: 'bridge', ifname: 'eth0', containerId: 'c1', ip: '10.88.0.2', subnet: '10.88.0.0/16' },
  { network: 'bridge', ifname: 'eth0', containerId: 'c1', ip: 'fd00:88::2', subnet: 'fd00:88::/64' },
  { network: 'bridge', ifname: 'eth1', containerId: 'c1', ip: '10.99.0.2', subnet: '10.99.0.0/24' },
  { network: 'bridge', ifname: 'eth0', containerId: 'c2', ip: '10.88.0.3', subnet: '10.88.0.0/16' },
  { network: 'bridge', ifname: 'eth0', containerId: NERDCTL_ID, ip: '10.88.0.4', subnet: '10.88.0.0/16' },
  { network: 'podman', ifname: 'eth0', containerId: 'c1', ip: '10.89.0.2', subnet: '10.89.0.0/24' },
  { network: 'podman', ifname: 'eth0', containerId: 'c1', ip: 'fd00:89::2', subnet: 'fd00:89::/64' },
  { network: 'unit-test', ifname: 'eth0', containerId: 'one', ip: '192.168.1.4', subnet: '192.168.1.0/24' },
];
const FOREIGN = ['ip saddr 10.200.0.1 counter', 'ip saddr 10.200.0.2 masquerade comment "hand-made, not CNI"'];

const del = (ns: Ns, network: string, ifname: string, containerId: string, netns = '') =>
  janitor(ns, { command: 'DEL', containerId, ifname, netns, conf: { cniVersion: '1.0.0', name: network, type: 'masq-janitor' } });

let ns: Ns;
beforeEach(async () => {
  ns = await createNs('nftdel');
});
afterEach(async () => {
  await removeNetns(ns);
});

describe('DEL with the nftables masquerade backend', () => {
  it('the table is the one upstream writes, and the janitor parses its live JSON listing', async () => {
    await loadNft(ns, nftRuleset(RULES, FOREIGN));
    const state = await hostState(ns);
    expect(state.nft).toContain('comment "Masquerading for plugins from github.com/containernetworking/plugins"');
    expect(state.nft).toContain('type nat hook postrouting priority srcnat; policy accept;');
    expect(state.nft).toContain('ip daddr 224.0.0.0/4 return');
    expect(state.nft).toContain('ip6 daddr ff00::/8 return');
    expect(state.nft).toContain('goto masq_checks');
    expect(state.nft).toContain(`ip saddr 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade comment "${nftComment('bridge', 'eth0', 'c1')}"`);
    expect(state.nft).toContain('ip saddr 192.168.1.4 ip daddr != 192.168.1.0/24 masquerade comment "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one"');

    const listed = parseNftListing(await ns.mustExec('nft', ['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']));
    expect(listed.map((r) => r.saddr)).toEqual([...RULES.map((r) => [r.ip]), ['10.200.0.1'], ['10.200.0.2']]);
    expect(listed.map((r) => r.owner && `${r.owner.network}/${r.owner.ifname}/${r.owner.containerId}`)).toEqual([
      ...RULES.map((r) => `${r.network}/${r.ifname}/${r.containerId === NERDCTL_ID ? NERDCTL_ID.slice(0, 66) : r.containerId}`),
      undefined,
      undefined,
    ]);
    expect(listed[4]?.owner?.truncated).toBe(true);
  });

  it('removes exactly the deleted instance’s rules, for several networks, ifnames and containers side by side', async () => {
    await loadNft(ns, nftRuleset(RULES, FOREIGN));
    const before = await hostState(ns);
    let expected = before;

    // One instance at a time; after each DEL the table is the previous one minus exactly that instance's rules.
    const order: [string, string, string][] = [
      ['bridge', 'eth0', 'c1'], // v4 + v6 rule; c1's eth1 rule and podman's c1 stay
      ['bridge', 'eth0', NERDCTL_ID], // truncated comment
      ['podman', 'eth0', 'c1'],
      ['bridge', 'eth1', 'c1'],
    ];
    for (const [network, ifname, id] of order) {
      const r = await del(ns, network, ifname, id);
      expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
      expected = without(expected, { nft: [{ network, ifname, containerId: id }] });
      expect((await hostState(ns)).nft, `after DEL ${network}/${ifname}/${id}`).toEqual(expected.nft);
    }
    // What is left: c2, unit-test, the foreign rules, and the shared objects.
    const left = (await hostState(ns)).nft;
    expect(left.filter((l) => l.includes('masquerade comment "') && l.includes(', net: '))).toHaveLength(2);
    expect(left).toContain('ip saddr 10.200.0.1 counter');
    expect(left).toContain('ip saddr 10.200.0.2 masquerade comment "hand-made, not CNI"');
    expect(left).toContain('chain masq_checks {');
    expect(left).toContain('chain postrouting {');
    expect(left).toContain('goto masq_checks');
  });

  it('DEL of an instance with no rules, and a repeated DEL, change nothing', async () => {
    await loadNft(ns, nftRuleset(RULES, FOREIGN));
    const before = await hostState(ns);
    for (const [network, ifname, id] of [
      ['bridge', 'eth2', 'c1'],
      ['bridge', 'eth0', 'c3'],
      ['other', 'eth0', 'c1'],
      ['bridge', 'eth0', NERDCTL_ID.slice(0, 66)], // the visible id of a truncated comment is not the container
    ] as const) {
      const r = await del(ns, network, ifname, id);
      expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    }
    expect((await hostState(ns)).nft).toEqual(before.nft);

    await del(ns, 'unit-test', 'eth0', 'one');
    const once = await hostState(ns);
    expect(once.nft).toEqual(without(before, { nft: [{ network: 'unit-test', ifname: 'eth0', containerId: 'one' }] }).nft);
    const again = await del(ns, 'unit-test', 'eth0', 'one');
    expect(quietSuccess(again), describeProc(again)).toEqual({ exitCode: 0, stdout: '' });
    expect((await hostState(ns)).nft).toEqual(once.nft);
  });

  it('with a live netns path that is gone (container stopped), the rules still go', async () => {
    await loadNft(ns, nftRuleset(RULES));
    const before = await hostState(ns);
    const r = await del(ns, 'bridge', 'eth0', 'c2', '/var/run/netns/mjbe-never-existed');
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect((await hostState(ns)).nft).toEqual(without(before, { nft: [{ network: 'bridge', ifname: 'eth0', containerId: 'c2' }] }).nft);
  });

  it('succeeds with no nft table at all, and does not create one', async () => {
    const r = await del(ns, 'bridge', 'eth0', 'c1');
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect((await hostState(ns)).nft).toEqual([]);
    expect((await ns.mustExec('nft', ['list', 'tables'])).split('\n')).not.toContain('table inet cni_plugins_masquerade');
  });

  it('succeeds with the table but without masq_checks', async () => {
    await loadNft(ns, 'add table inet cni_plugins_masquerade\n');
    const r = await del(ns, 'bridge', 'eth0', 'c1');
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect((await hostState(ns)).nft).toEqual(['table inet cni_plugins_masquerade {', '}'].sort());
  });
});
