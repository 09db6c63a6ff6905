import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeNetns } from '../../support/netns.js';
import { describeProc } from '../../support/proc.js';
import { loadNft } from '../../support/xtables.js';
import { backendSuite, createNs, hostState, iptablesMasq, janitor, nftRuleset, quietSuccess, restore, restoreText, traces, without, type Attachment, type HostState, type NftMasq, type Ns } from './host.js';

/**
 * GC (CNI 1.1.0) with several networks and attachments, on iptables-nft and
 * the nftables backend's table: only this network's state whose attachment
 * is not valid goes.
 */

backendSuite();

const att = (network: string, containerId: string): Attachment => ({ network, containerId });
const A1 = att('n1', 'a1');
const A2 = att('n1', 'a2');
const A3 = att('n1', 'a3');
const B1 = att('n2', 'a1'); // same container ID as A1, other network
const B2 = att('n2', 'b2');

const NFT: NftMasq[] = [
  { network: 'n1', ifname: 'eth0', containerId: 'a1', ip: '10.61.0.2', subnet: '10.61.0.0/24' },
  { network: 'n1', ifname: 'eth0', containerId: 'a2', ip: '10.61.0.3', subnet: '10.61.0.0/24' },
  { network: 'n1', ifname: 'eth1', containerId: 'a2', ip: '10.63.0.3', subnet: '10.63.0.0/24' },
  { network: 'n1', ifname: 'eth0', containerId: 'a3', ip: '10.61.0.4', subnet: '10.61.0.0/24' },
  { network: 'n1', ifname: 'eth0', containerId: 'a3', ip: 'fd00:61::4', subnet: 'fd00:61::/64' },
  { network: 'n2', ifname: 'eth0', containerId: 'a1', ip: '10.62.0.2', subnet: '10.62.0.0/24' },
  { network: 'n2', ifname: 'eth0', containerId: 'b2', ip: '10.62.0.3', subnet: '10.62.0.0/24' },
];
const nftOf = (a: Attachment, ifname?: string) => NFT.filter((r) => r.network === a.network && r.containerId === a.containerId && (ifname === undefined || r.ifname === ifname));

async function buildHost(ns: Ns): Promise<HostState> {
  await restore(
    ns,
    'iptables-nft',
    restoreText(
      [
        iptablesMasq(A1, '10.61.0.2', '10.61.0.0/24'),
        iptablesMasq(A2, '10.61.0.3', '10.61.0.0/24'),
        iptablesMasq(A2, '10.63.0.3', '10.63.0.0/24'), // a2's second interface: same chain (iptables ignores ifname)
        iptablesMasq(A3, '10.61.0.4', '10.61.0.0/24'),
        iptablesMasq(B1, '10.62.0.2', '10.62.0.0/24'),
        iptablesMasq(B2, '10.62.0.3', '10.62.0.0/24'),
      ],
      ['-A POSTROUTING -s 192.168.77.0/24 -j MASQUERADE'],
    ),
  );
  await restore(ns, 'ip6tables-nft', restoreText([iptablesMasq(A3, 'fd00:61::4', 'fd00:61::/64'), iptablesMasq(B1, 'fd00:62::2', 'fd00:62::/64')]));
  await loadNft(ns, nftRuleset(NFT));
  return hostState(ns);
}

const gc = (ns: Ns, conf: Record<string, unknown>) => janitor(ns, { command: 'GC', conf: { cniVersion: '1.1.0', name: 'n1', type: 'masq-janitor', ...conf } });

let ns: Ns;
let before: HostState;
beforeEach(async () => {
  ns = await createNs('gc');
  before = await buildHost(ns);
});
afterEach(async () => {
  await removeNetns(ns);
});

describe('GC', () => {
  it('removes only this network’s state whose attachment is not valid; exit 0, nothing on stdout', async () => {
    const r = await gc(ns, {
      'cni.dev/valid-attachments': [
        { containerID: 'a1', ifname: 'eth0' },
        { containerID: 'a2', ifname: 'eth0' },
      ],
    });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    const after = await hostState(ns);
    // a3 goes everywhere; a2's eth1 nft rule goes (the nft backend keys on ifname) while its
    // iptables chain, shared by both interfaces, stays; n2 (also holding a container "a1") is untouched.
    expect(after).toEqual(without(before, { iptables: [A3], nft: [...nftOf(A3), ...nftOf(A2, 'eth1')] }));
    for (const a of [A1, B1, B2]) expect(traces(after, a), `${a.network}/${a.containerId}`).toEqual(traces(before, a));
    expect(traces(after, A2)['iptables-nft']).toBe(traces(before, A2)['iptables-nft']);
  });

  it('the legacy key cni.dev/attachments works the same', async () => {
    const r = await gc(ns, { 'cni.dev/attachments': [{ containerID: 'a3', ifname: 'eth0' }] });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect(await hostState(ns)).toEqual(without(before, { iptables: [A1, A2], nft: [...nftOf(A1), ...nftOf(A2)] }));
  });

  it('an empty list means nothing of this network is valid', async () => {
    const r = await gc(ns, { 'cni.dev/valid-attachments': [] });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    const after = await hostState(ns);
    expect(after).toEqual(without(before, { iptables: [A1, A2, A3], nft: [...nftOf(A1), ...nftOf(A2), ...nftOf(A3)] }));
    for (const a of [B1, B2]) expect(traces(after, a)).toEqual(traces(before, a));
  });

  it('without either attachments key, does nothing', async () => {
    const r = await gc(ns, {});
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect(await hostState(ns)).toEqual(before);
  });

  it('with "gc": false, does nothing even when nothing is valid', async () => {
    const r = await gc(ns, { gc: false, 'cni.dev/valid-attachments': [] });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect(await hostState(ns)).toEqual(before);
  });

  it('valid attachments of another network do not keep this network’s state', async () => {
    // A runtime that (wrongly) lists n2's containers for n1: "b2" is no container of n1, "a1" is one of both.
    const r = await gc(ns, { 'cni.dev/valid-attachments': [{ containerID: 'b2', ifname: 'eth0' }, { containerID: 'a1', ifname: 'eth0' }] });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect(await hostState(ns)).toEqual(without(before, { iptables: [A2, A3], nft: [...nftOf(A2), ...nftOf(A3)] }));
  });

  it('a repeated GC changes nothing more', async () => {
    const conf = { 'cni.dev/valid-attachments': [{ containerID: 'a2', ifname: 'eth1' }] };
    const first = await gc(ns, conf);
    expect(quietSuccess(first), describeProc(first)).toEqual({ exitCode: 0, stdout: '' });
    const once = await hostState(ns);
    expect(once).toEqual(without(before, { iptables: [A1, A3], nft: [...nftOf(A1), ...nftOf(A3), ...nftOf(A2, 'eth0')] }));
    const second = await gc(ns, conf);
    expect(quietSuccess(second), describeProc(second)).toEqual({ exitCode: 0, stdout: '' });
    expect(await hostState(ns)).toEqual(once);
  });
});

describe('GC of a network with a long name', () => {
  // CNI bounds neither network names nor their length; a Multus NetworkAttachmentDefinition name may be 253 characters.
  // With 80 characters, upstream's 128-character comment ends before ", id: ".
  const LONG = 'ns-' + 'x'.repeat(77);

  it('removes the stale nft rule of an invalid attachment (as upstream gcIPMasqNFTables does)', async () => {
    const rules: NftMasq[] = [
      { network: LONG, ifname: 'eth0', containerId: 'dead', ip: '10.64.0.2', subnet: '10.64.0.0/24' },
      { network: LONG, ifname: 'eth0', containerId: 'alive', ip: '10.64.0.3', subnet: '10.64.0.0/24' },
    ];
    await loadNft(ns, nftRuleset(rules));
    const start = await hostState(ns);
    const r = await janitor(ns, {
      command: 'GC',
      conf: { cniVersion: '1.1.0', name: LONG, type: 'masq-janitor', 'cni.dev/valid-attachments': [{ containerID: 'alive', ifname: 'eth0' }] },
    });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect((await hostState(ns)).nft).toEqual(without(start, { nft: [rules[0] as NftMasq] }).nft);
  });

  it('DEL of the same attachment does remove it (control: the rule is reachable by its instance prefix)', async () => {
    const rules: NftMasq[] = [{ network: LONG, ifname: 'eth0', containerId: 'dead', ip: '10.64.0.2', subnet: '10.64.0.0/24' }];
    await loadNft(ns, nftRuleset(rules));
    const start = await hostState(ns);
    const r = await janitor(ns, { command: 'DEL', containerId: 'dead', ifname: 'eth0', netns: '', conf: { cniVersion: '1.0.0', name: LONG, type: 'masq-janitor' } });
    expect(quietSuccess(r), describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
    expect((await hostState(ns)).nft).toEqual(without(start, { nft: rules }).nft);
  });
});
