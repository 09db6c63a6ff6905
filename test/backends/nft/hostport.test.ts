import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NFT_HOSTPORT_RULE_CHAINS,
  nftHostPortsOf,
  parseNftHostportListing,
  planNftHostports,
  planNftHostportSelection,
  type NftHostportRule,
} from '../../../src/backends/nft/hostport.js';
import { HOSTPORT_IP, HOSTPORT_IP6 } from './hostport-fixtures.js';

const rules4 = parseNftHostportListing(HOSTPORT_IP);
const rules6 = parseNftHostportListing(HOSTPORT_IP6);
const all = [...rules4, ...rules6];
const show = (rs: readonly NftHostportRule[]): string[] => rs.map((r) => `${r.family} ${r.chain} ${r.kind} ${r.comment ?? '-'} ${r.containerIp ?? '-'}`);

describe('parseNftHostportListing (real nft -j output of upstream portmap rules)', () => {
  it('reads every rule of the table and classifies portmap shapes', () => {
    const mine = rules4.filter((r) => r.comment === 'default-c1');
    expect(show(mine)).toEqual([
      'ip hostports dnat default-c1 10.88.0.2',
      'ip hostports dnat default-c1 10.99.0.2',
      'ip hostports other default-c1 -',
      'ip hostip_hostports dnat default-c1 10.88.0.2',
      'ip masquerading masquerade default-c1 10.88.0.2',
      'ip masquerading masquerade default-c1 10.88.0.2',
      'ip masquerading masquerade default-c1 10.99.0.2',
      'ip masquerading masquerade default-c1 10.99.0.2',
    ]);
    const hostIp = rules4.find((r) => r.chain === 'hostip_hostports');
    expect(hostIp?.port).toEqual({ proto: 'tcp', port: 9090, hostIp: '127.0.0.1', destination: '10.88.0.2:90' });
    expect(rules4.filter((r) => ['prerouting', 'output', 'hostports_all'].includes(r.chain)).every((r) => r.kind === 'other')).toBe(true);
  });

  it('reads ip6 DNAT targets and host IPs', () => {
    expect(rules6.filter((r) => r.kind === 'dnat').map((r) => r.port)).toEqual([
      { proto: 'tcp', port: 8080, hostIp: undefined, destination: '[fd00:88::2]:80' },
      { proto: 'tcp', port: 9090, hostIp: '::1', destination: '[fd00:88::2]:90' },
    ]);
  });

  it('ignores other tables and families, and refuses a listing that is not nft JSON', () => {
    const inet = HOSTPORT_IP.replaceAll('"family": "ip"', '"family": "inet"');
    expect(parseNftHostportListing(inet)).toEqual([]);
    const other = HOSTPORT_IP.replaceAll('"table": "cni_hostport"', '"table": "nat"');
    expect(parseNftHostportListing(other)).toEqual([]);
    expect(() => parseNftHostportListing('{"rules": []}')).toThrow();
  });
});

describe('planNftHostports (DEL)', () => {
  it('with prevResult IPs: only this attachment\'s rules; the same container on another network keeps its own', () => {
    const plan = planNftHostports(all, 'default-c1', ['10.88.0.2', 'fd00:88:0:0::2']);
    expect(show(plan.rules)).toEqual([
      'ip hostports dnat default-c1 10.88.0.2',
      'ip hostip_hostports dnat default-c1 10.88.0.2',
      'ip masquerading masquerade default-c1 10.88.0.2',
      'ip masquerading masquerade default-c1 10.88.0.2',
      'ip6 hostports dnat default-c1 fd00:88::2',
      'ip6 hostip_hostports dnat default-c1 fd00:88::2',
      'ip6 masquerading masquerade default-c1 fd00:88::2',
    ]);
    expect(plan.rules.some((r) => r.containerIp === '10.99.0.2')).toBe(false);
  });

  it('without prevResult: every portmap rule with the container ID, as portmap\'s own DEL does', () => {
    const plan = planNftHostports(all, 'default-c1', undefined);
    expect(plan.rules).toHaveLength(10);
    expect(plan.rules.every((r) => r.comment === 'default-c1' && r.kind !== 'other')).toBe(true);
  });

  it('never the skeleton, a rule of another shape, a rule without comment, or another container', () => {
    for (const ips of [undefined, ['10.88.0.2', '10.88.0.3', '10.88.0.4', '10.200.0.1']]) {
      const plan = planNftHostports(all, 'default-c1', ips);
      for (const r of plan.rules) {
        expect(NFT_HOSTPORT_RULE_CHAINS).toContain(r.chain);
        expect(r.kind).not.toBe('other');
        expect(r.comment).toBe('default-c1');
      }
    }
    expect(planNftHostports(all, 'default-c9', undefined).rules).toEqual([]);
    // c3 shares host port 8080 with c1: deleting c1 never takes c3's mapping.
    expect(planNftHostports(all, 'default-c1', undefined).rules.some((r) => r.containerIp === '10.88.0.4')).toBe(false);
  });

  it('an empty IP list removes nothing (prevResult with no IPs names no mapping)', () => {
    expect(planNftHostports(all, 'default-c1', []).rules).toEqual([]);
  });
});

describe('planNftHostportSelection (GC, sweep)', () => {
  it('takes the doomed IDs\' portmap rules, in both families', () => {
    const plan = planNftHostportSelection(all, (id) => id === 'default-c3');
    expect(show(plan.rules)).toEqual(['ip hostports dnat default-c3 10.88.0.4', 'ip masquerading masquerade default-c3 10.88.0.4']);
    expect(planNftHostportSelection(all, () => false).rules).toEqual([]);
  });

  it('property: whatever is doomed, only commented portmap-shaped rules in per-container chains are selected', () => {
    const ids = ['default-c1', 'default-c2', 'default-c3', 'x'];
    fc.assert(
      fc.property(fc.subarray(ids), (doomedIds) => {
        const plan = planNftHostportSelection(all, (id) => doomedIds.includes(id));
        for (const r of plan.rules) {
          expect(doomedIds).toContain(r.comment);
          expect(r.kind).not.toBe('other');
          expect(NFT_HOSTPORT_RULE_CHAINS).toContain(r.chain);
        }
        const expected = all.filter((r) => r.kind !== 'other' && r.comment !== undefined && doomedIds.includes(r.comment)).length;
        expect(plan.rules).toHaveLength(expected);
      }),
    );
  });
});

describe('nftHostPortsOf', () => {
  it('one holder per (family, container ID, container IP), foreign DNAT included without an ID', () => {
    const states = nftHostPortsOf(all);
    expect(states.map((s) => `${s.family} ${s.containerId ?? '?'} ${s.containerIp} ${s.ports.map((p) => `${p.proto}/${p.port}${p.hostIp ? '@' + p.hostIp : ''}`).join(',')}`)).toEqual([
      'ip default-c1 10.88.0.2 tcp/8080,tcp/9090@127.0.0.1',
      'ip default-c1 10.99.0.2 udp/5353',
      'ip default-c2 10.88.0.3 tcp/8080@192.0.2.10',
      'ip default-c3 10.88.0.4 tcp/8080',
      'ip ? 10.200.0.1 tcp/7001',
      'ip6 default-c1 fd00:88::2 tcp/8080,tcp/9090@::1',
    ]);
  });
});
