import { describe, expect, it } from 'vitest';
import type { InterfaceRef } from '../../src/backends/selection.js';
import { parseSave } from '../../src/backends/iptables/parse.js';
import { planIptables } from '../../src/backends/iptables/plan.js';
import { renderRestore } from '../../src/backends/iptables/render.js';
import { chainName, chainNames, iptablesComment, nftInstancePrefix, type Attachment } from '../../src/identity.js';
import type { RecordedInterface, Records } from '../../src/records/recorded.js';
import { delSelection, gcSelection, sweepSelection, type Me } from '../../src/records/selections.js';
import { applyRestore, bridgeRules, quote, toSave, type NatModel } from '../support/nat-model.js';

const ME: Me = { network: 'bridge', containerId: 'c1', ifname: 'eth0' };
const jump = (source: string, a: Attachment = ME): InterfaceRef => ({ network: a.network, containerId: a.containerId, source });
const nftRef = (ifname: string, a: Attachment = ME, extra: Partial<InterfaceRef> = {}): InterfaceRef => ({
  network: a.network,
  containerId: a.containerId,
  ifname,
  instance: nftInstancePrefix(a.network, ifname, a.containerId),
  ...extra,
});

/** Records as a map `network/containerId` -> interfaces, with doubtful pairs and networks. */
function fakeRecords(entries: Record<string, RecordedInterface[]>, doubt: { pairs?: string[]; networks?: string[] } = {}): Records {
  const split = (k: string): [string, string] => [k.slice(0, k.indexOf('/')), k.slice(k.indexOf('/') + 1)];
  const doubtful = (n: string, c: string): boolean => (doubt.networks ?? []).includes(n) || (doubt.pairs ?? []).includes(`${n}/${c}`);
  return {
    interfaces: (n, c) => entries[`${n}/${c}`] ?? [],
    has: (n, c) => `${n}/${c}` in entries || doubtful(n, c),
    doubtful,
    hasPrefix: (n, p) => (doubt.networks ?? []).includes(n) || [...Object.keys(entries), ...(doubt.pairs ?? [])].some((k) => split(k)[0] === n && split(k)[1].startsWith(p)),
    networks: new Set(Object.keys(entries).map((k) => split(k)[0])),
    *pairs(n) {
      for (const [k, list] of Object.entries(entries)) if (split(k)[0] === n) for (const i of list) yield [split(k)[1], i.ifname] as const;
    },
    problems: [],
    counts: { cache: Object.keys(entries).length, reservations: 0 },
  };
}

describe('delSelection', () => {
  it('with prevResult: exactly the jumps whose source is one of its IPs, IPv6 spelled any way', () => {
    const s = delSelection(ME, { prevIps: ['10.0.0.2', 'fd00:0::5'], others: [], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(true);
    expect(s.interfaceGone(jump('fd00::5/128'))).toBe(true);
    expect(s.interfaceGone(jump('fd00:0:0::5/128'))).toBe(true);
    expect(s.interfaceGone(jump('10.0.0.3/32'))).toBe(false);
    expect(s.interfaceGone(jump('fd00::6/128'))).toBe(false);
    // A jump with no readable source is not provably this interface's.
    expect(s.interfaceGone({ network: 'bridge', containerId: 'c1' })).toBe(false);
  });

  it('prevResult spelled fd00::5 matches a jump printed as fd00:0::5 too', () => {
    const s = delSelection(ME, { prevIps: ['fd00::5'], others: [], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('fd00:0::5/128'))).toBe(true);
  });

  it('an old subnet-form jump covering its IP is its jump', () => {
    const s = delSelection(ME, { prevIps: ['10.4.0.9'], others: [], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('10.4.0.0/24'))).toBe(true);
    expect(s.interfaceGone(jump('10.5.0.0/24'))).toBe(false);
  });

  it('never another container or network', () => {
    const s = delSelection(ME, { prevIps: undefined, others: [], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('10.0.0.2/32', { network: 'bridge', containerId: 'c2' }))).toBe(false);
    expect(s.interfaceGone(jump('10.0.0.2/32', { network: 'podman', containerId: 'c1' }))).toBe(false);
    expect(s.containerGone({ network: 'bridge', containerId: 'c2' })).toBe(false);
    expect(s.containerGone({ network: 'podman', containerId: 'c1' })).toBe(false);
    expect(s.containerGone({ network: 'bridge', containerId: 'c1' })).toBe(true);
  });

  it('no prevResult, no other interface recorded: every jump of the container is ours', () => {
    const s = delSelection(ME, { prevIps: undefined, others: [], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(true);
    expect(s.interfaceGone({ network: 'bridge', containerId: 'c1' })).toBe(true);
  });

  it('no prevResult, other interfaces recorded with their IPs: their jumps are kept, the rest goes', () => {
    const s = delSelection(ME, { prevIps: undefined, others: [{ ifname: 'net1', ips: ['10.0.0.3', 'fd00::3'] }], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(true);
    expect(s.interfaceGone(jump('10.0.0.3/32'))).toBe(false);
    expect(s.interfaceGone(jump('fd00:0::3/128'))).toBe(false);
    expect(s.interfaceGone(jump('10.0.0.0/24'))).toBe(false);
    expect(s.interfaceGone({ network: 'bridge', containerId: 'c1' })).toBe(false);
    expect(s.containerGone(ME)).toBe(false);
  });

  it('no prevResult, another interface with unknown IPs: no jump can be told apart, all stay', () => {
    const s = delSelection(ME, { prevIps: undefined, others: [{ ifname: 'net1', ips: undefined }], bridgeTearsDown: false });
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(false);
    expect(s.containerGone(ME)).toBe(false);
  });

  it('nft: exactly its instance; a truncated ref by its whole instance hash', () => {
    const s = delSelection(ME, { prevIps: ['10.0.0.2'], others: [], bridgeTearsDown: false });
    expect(s.interfaceGone(nftRef('eth0'))).toBe(true);
    expect(s.interfaceGone(nftRef('net1'))).toBe(false);
    expect(s.interfaceGone(nftRef('eth0', { network: 'bridge', containerId: 'c2' }))).toBe(false);
    // A comment cut short: its id is only a prefix, the instance hash decides.
    expect(s.interfaceGone(nftRef('eth0', ME, { containerId: 'c', ifname: '', truncated: true }))).toBe(true);
    expect(s.interfaceGone({ network: 'bridge', containerId: 'c', ifname: '', truncated: true, instance: nftInstancePrefix('bridge', 'eth0', 'c2') })).toBe(false);
    // Same ifname, instance hash of someone else: not ours.
    expect(s.interfaceGone({ ...nftRef('eth0'), instance: nftInstancePrefix('bridge', 'eth0', 'c9') })).toBe(false);
  });

  it('claimsEmptyChain: its own chain names only, and only while no other interface is recorded', () => {
    const alone = delSelection(ME, { prevIps: undefined, others: [], bridgeTearsDown: false });
    for (const c of chainNames(ME)) expect(alone.claimsEmptyChain?.(c)).toBe(true);
    expect(alone.claimsEmptyChain?.(chainName({ network: 'bridge', containerId: 'c2' }))).toBe(false);
    const shared = delSelection(ME, { prevIps: undefined, others: [{ ifname: 'net1', ips: ['10.0.0.3'] }], bridgeTearsDown: false });
    expect(shared.claimsEmptyChain?.(chainName(ME))).toBe(false);
    // A live netns: a concurrent DEL's bridge may still tear down in that chain.
    expect(delSelection(ME, { prevIps: undefined, others: [], bridgeTearsDown: false, netnsAlive: true }).claimsEmptyChain?.(chainName(ME))).toBe(false);
  });

  it('recreateChains follows bridgeTearsDown', () => {
    expect(delSelection(ME, { prevIps: undefined, others: [], bridgeTearsDown: true }).recreateChains).toBe(true);
    expect(delSelection(ME, { prevIps: undefined, others: [], bridgeTearsDown: false }).recreateChains).toBe(false);
  });
});

describe('two interfaces of one container on one network (issue 9 failure 5, unit level)', () => {
  const eth0 = bridgeRules(ME, '10.0.0.2', '10.0.0.0/24');
  const net1Jump = `-A POSTROUTING -s 10.0.0.3/32 -m comment --comment ${quote(iptablesComment(ME))} -j ${chainName(ME)}`;
  const m: NatModel = { chains: [eth0.chain], rules: [eth0.rules[0] as string, net1Jump, ...eth0.rules.slice(1)] };
  const snapshot = parseSave(toSave(m));

  for (const [label, prevIps] of [['with prevResult', ['10.0.0.2']], ['without prevResult (net1 from the cache)', undefined]] as const) {
    for (const recreate of [false, true]) {
      it(`DEL of eth0 ${label} keeps net1’s jump and the chain (recreate ${String(recreate)})`, () => {
        const s = delSelection(ME, { prevIps, others: [{ ifname: 'net1', ips: ['10.0.0.3'] }], bridgeTearsDown: recreate });
        const plan = planIptables(snapshot, s, { recreate, conservative: false });
        expect(plan.jumps.map((j) => j.line)).toEqual([eth0.rules[0]]);
        expect(plan.chains).toEqual([]);
        const after = applyRestore(m, renderRestore(plan));
        expect(after.rules).toEqual([net1Jump, ...eth0.rules.slice(1)]);
        expect(after.chains).toEqual([eth0.chain]);
      });
    }
  }

  it('DEL of the last interface then takes the chain with its jump', () => {
    const s = delSelection({ ...ME, ifname: 'net1' }, { prevIps: ['10.0.0.3'], others: [], bridgeTearsDown: false });
    const afterEth0: NatModel = { chains: [eth0.chain], rules: [net1Jump, ...eth0.rules.slice(1)] };
    const plan = planIptables(parseSave(toSave(afterEth0)), s, { recreate: false, conservative: false });
    expect(applyRestore(afterEth0, renderRestore(plan))).toEqual({ chains: [], rules: [] });
  });
});

describe('gcSelection', () => {
  const valid = [{ containerId: 'c1', ifname: 'eth0' }];

  it('iptables: a container not in the valid list is gone entirely; one in it keeps its jumps without cache evidence', () => {
    const s = gcSelection('bridge', valid, undefined);
    expect(s.interfaceGone(jump('10.0.0.9/32', { network: 'bridge', containerId: 'c2' }))).toBe(true);
    expect(s.containerGone({ network: 'bridge', containerId: 'c2' })).toBe(true);
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(false);
    expect(s.containerGone(ME)).toBe(false);
    // Other networks are not GC's to judge.
    expect(s.interfaceGone(jump('10.0.0.9/32', { network: 'podman', containerId: 'c2' }))).toBe(false);
    expect(s.containerGone({ network: 'podman', containerId: 'c2' })).toBe(false);
  });

  it('nft: per (containerId, ifname) pair of the valid list', () => {
    const s = gcSelection('bridge', valid, undefined);
    expect(s.interfaceGone(nftRef('eth0'))).toBe(false);
    expect(s.interfaceGone(nftRef('net1'))).toBe(true);
    expect(s.interfaceGone(nftRef('eth0', { network: 'bridge', containerId: 'c2' }))).toBe(true);
  });

  it('nft: a truncated ref is judged by its instance hash', () => {
    const s = gcSelection('bridge', valid, undefined);
    expect(s.interfaceGone(nftRef('eth0', ME, { containerId: 'c', ifname: '', truncated: true }))).toBe(false);
    expect(s.interfaceGone(nftRef('net1', ME, { containerId: 'c', ifname: '', truncated: true }))).toBe(true);
  });

  it('the cache refinement: a valid container’s jump goes only if its IP is an invalid interface’s and no valid one’s', () => {
    const rec = fakeRecords({ 'bridge/c1': [{ ifname: 'eth0', ips: ['10.0.0.2'] }, { ifname: 'net1', ips: ['10.0.0.3'] }] });
    const s = gcSelection('bridge', valid, rec);
    expect(s.interfaceGone(jump('10.0.0.3/32'))).toBe(true);
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(false);
    expect(s.interfaceGone(jump('10.0.0.7/32'))).toBe(false);
    // A subnet-form jump covering both: the valid one claims it.
    expect(s.interfaceGone(jump('10.0.0.0/24'))).toBe(false);
    expect(s.containerGone(ME)).toBe(false);
  });

  it('the cache refinement stands back when the records are doubtful or a valid interface has unknown IPs', () => {
    const doubtful = fakeRecords({ 'bridge/c1': [{ ifname: 'net1', ips: ['10.0.0.3'] }] }, { pairs: ['bridge/c1'] });
    expect(gcSelection('bridge', valid, doubtful).interfaceGone(jump('10.0.0.3/32'))).toBe(false);
    const unknown = fakeRecords({ 'bridge/c1': [{ ifname: 'eth0', ips: undefined }, { ifname: 'net1', ips: ['10.0.0.3'] }] });
    expect(gcSelection('bridge', valid, unknown).interfaceGone(jump('10.0.0.3/32'))).toBe(false);
  });
});

describe('sweepSelection', () => {
  const inScope = (n: string): boolean => n !== 'elsewhere';

  it('unrecorded containers are gone, recorded ones stay, out-of-scope networks are never touched', () => {
    const rec = fakeRecords({ 'bridge/c1': [{ ifname: 'eth0', ips: ['10.0.0.2'] }] });
    const s = sweepSelection(rec, inScope);
    expect(s.interfaceGone(jump('10.0.0.9/32', { network: 'bridge', containerId: 'c2' }))).toBe(true);
    expect(s.containerGone({ network: 'bridge', containerId: 'c2' })).toBe(true);
    expect(s.interfaceGone(jump('10.0.0.2/32'))).toBe(false);
    expect(s.containerGone(ME)).toBe(false);
    expect(s.interfaceGone(jump('10.0.0.9/32', { network: 'elsewhere', containerId: 'c2' }))).toBe(false);
    expect(s.containerGone({ network: 'elsewhere', containerId: 'c2' })).toBe(false);
  });

  it('per interface: a recorded container’s stale jump goes when every record names its IPs', () => {
    const rec = fakeRecords({ 'bridge/c1': [{ ifname: 'eth0', ips: ['10.0.0.2'] }] });
    const s = sweepSelection(rec, inScope);
    expect(s.interfaceGone(jump('10.0.0.7/32'))).toBe(true);
    expect(s.interfaceGone(jump('10.0.0.0/24'))).toBe(false);
    expect(s.interfaceGone(nftRef('eth0'))).toBe(false);
    expect(s.interfaceGone(nftRef('net1'))).toBe(true);
  });

  it('a record without IPs keeps every jump of its container; one without ifname every nft rule', () => {
    const rec = fakeRecords({ 'bridge/c1': [{ ifname: undefined, ips: undefined }] });
    const s = sweepSelection(rec, inScope);
    expect(s.interfaceGone(jump('10.0.0.7/32'))).toBe(false);
    expect(s.interfaceGone(nftRef('net1'))).toBe(false);
  });

  it('doubtful: kept whole', () => {
    const rec = fakeRecords({ 'bridge/c1': [{ ifname: 'eth0', ips: ['10.0.0.2'] }] }, { pairs: ['bridge/c1', 'bridge/c3'] });
    const s = sweepSelection(rec, inScope);
    expect(s.interfaceGone(jump('10.0.0.7/32'))).toBe(false);
    expect(s.interfaceGone(nftRef('net1'))).toBe(false);
    expect(s.interfaceGone(jump('10.0.0.8/32', { network: 'bridge', containerId: 'c3' }))).toBe(false);
    expect(s.containerGone({ network: 'bridge', containerId: 'c3' })).toBe(false);
  });

  it('a truncated nft ref stays while any recorded or doubtful id has its prefix (hasPrefix)', () => {
    const rec = fakeRecords({ 'bridge/default-0123': [{ ifname: 'eth0', ips: ['10.0.0.2'] }] });
    const s = sweepSelection(rec, inScope);
    const cut = (containerId: string): InterfaceRef => ({ network: 'bridge', containerId, ifname: '', truncated: true, instance: '0'.repeat(16) + '-' + '0'.repeat(16) });
    expect(s.interfaceGone(cut('default-01'))).toBe(false);
    expect(s.interfaceGone(cut('default-9'))).toBe(true);
    expect(s.interfaceGone({ ...cut('default-01'), network: 'elsewhere' })).toBe(false);
  });
});
