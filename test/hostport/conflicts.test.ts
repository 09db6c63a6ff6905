import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hostPortsOf } from '../../src/backends/iptables/hostport.js';
import { nftHostPortsOf, parseNftHostportListing } from '../../src/backends/nft/hostport.js';
import { findPortConflicts, iptablesHolders, nftHolders, renderPortConflicts, type PortHolder } from '../../src/hostport/conflicts.js';
import { dnatChainName, dnatComment, type Attachment } from '../../src/identity.js';
import { parseSave } from '../../src/backends/iptables/parse.js';
import { PORTMAP_V4 } from '../backends/iptables/hostport-fixtures.js';
import { HOSTPORT_IP } from '../backends/nft/hostport-fixtures.js';

const holder = (containerId: string, port: number, dest: string, extra: Partial<PortHolder> & { hostIp?: string } = {}): PortHolder => ({
  where: 'iptables-nft v4',
  family: 4,
  network: 'n',
  containerId,
  label: containerId,
  recorded: true,
  ports: [{ proto: 'tcp', port, hostIp: extra.hostIp, destination: dest }],
  ...extra,
});

describe('findPortConflicts', () => {
  it('a leaked mapping and a live one on the same host port: one conflict, recorded and orphaned marked', () => {
    const out = findPortConflicts([holder('old', 8080, '10.0.0.2:80', { recorded: false }), holder('new', 8080, '10.0.0.3:80')]);
    expect(out).toEqual([
      {
        family: 4,
        proto: 'tcp',
        port: 8080,
        holders: [
          { where: 'iptables-nft v4', network: 'n', containerId: 'old', label: 'old', recorded: false, hostIp: undefined, destination: '10.0.0.2:80' },
          { where: 'iptables-nft v4', network: 'n', containerId: 'new', label: 'new', recorded: true, hostIp: undefined, destination: '10.0.0.3:80' },
        ],
      },
    ]);
    expect(renderPortConflicts(out)).toMatch(/8080\/tcp \(v4\)\s+\*\s+iptables-nft v4\s+n\s+old\s+10\.0\.0\.2:80\s+orphaned/);
  });

  it('no conflict: other port, other protocol, other family, distinct host IPs, or the same container at the same IP in two tables', () => {
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1'), holder('b', 2, '10.0.0.3:1')])).toEqual([]);
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1'), { ...holder('b', 1, '10.0.0.3:1'), ports: [{ proto: 'udp', port: 1, hostIp: undefined, destination: '10.0.0.3:1' }] }])).toEqual([]);
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1'), holder('b', 1, '[fd00::3]:1', { family: 6 })])).toEqual([]);
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1', { hostIp: '192.0.2.1' }), holder('b', 1, '10.0.0.3:1', { hostIp: '192.0.2.2' })])).toEqual([]);
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1'), holder('a', 1, '10.0.0.2:1', { where: 'nft ip cni_hostport', network: undefined })])).toEqual([]);
  });

  it('conflict: one binds every address (or 0.0.0.0), or both bind the same; one container on two networks counts twice', () => {
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1', { hostIp: '127.0.0.1' }), holder('b', 1, '10.0.0.3:1')])).toHaveLength(1);
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1', { hostIp: '0.0.0.0' }), holder('b', 1, '10.0.0.3:1', { hostIp: '192.0.2.9' })])).toHaveLength(1);
    expect(findPortConflicts([holder('a', 1, '[fd00::2]:1', { family: 6, hostIp: 'fd00:0::1' }), holder('b', 1, '[fd00::3]:1', { family: 6, hostIp: 'fd00::1' })])).toHaveLength(1);
    expect(findPortConflicts([holder('a', 1, '10.0.0.2:1'), holder('a', 1, '10.1.0.2:1', { network: 'm' })])).toHaveLength(1);
  });

  it('from real tables: a leaked iptables DN chain for port 8080 and the nft mappings of 8080', () => {
    const leaked: Attachment = { network: 'hpnet', containerId: 'default-c1' };
    const live: Attachment = { network: 'hpnet', containerId: 'default-c2' };
    const ch = dnatChainName(live);
    const text = PORTMAP_V4.replace(
      'COMMIT',
      [
        `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "${dnatComment(live).replaceAll('"', '\\"')}" -m multiport --dports 8080 -j ${ch}`,
        `-A ${ch} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.77.0.3:80`,
        'COMMIT',
      ].join('\n'),
    ).replace(':CNI-HOSTPORT-DNAT', `:${ch} - [0:0]\n:CNI-HOSTPORT-DNAT`);
    const recorded = (a: Attachment): boolean => a.containerId === live.containerId;
    const ipt = iptablesHolders(hostPortsOf(parseSave(text)), 'iptables-nft v4', 4, recorded);
    const out = findPortConflicts(ipt);
    expect(out.map((c) => `${c.port}/${c.proto}: ${c.holders.map((h) => `${h.containerId}=${h.recorded ? 'recorded' : 'orphaned'}`).join(' ')}`)).toEqual([
      '8080/tcp: default-c1=orphaned default-c2=recorded',
    ]);
    const nft = nftHolders(nftHostPortsOf(parseNftHostportListing(HOSTPORT_IP)), (id) => id === 'default-c3');
    const both = findPortConflicts(nft);
    // c1 (all addresses), c2 (192.0.2.10) and c3 (all addresses) all serve tcp/8080.
    expect(both.map((c) => [c.port, c.holders.map((h) => h.containerId)])).toEqual([[8080, ['default-c1', 'default-c2', 'default-c3']]]);
  });

  it('property: every reported holder meets another holder with a different key on that port', () => {
    const h = fc.record({
      id: fc.constantFrom('a', 'b', 'c'),
      ip: fc.constantFrom('10.0.0.2', '10.0.0.3'),
      port: fc.constantFrom(1, 2),
      hostIp: fc.constantFrom(undefined, '127.0.0.1', '192.0.2.1', '0.0.0.0'),
    });
    fc.assert(
      fc.property(fc.array(h, { maxLength: 8 }), (specs) => {
        const holders = specs.map((s) => holder(s.id, s.port, `${s.ip}:80`, { hostIp: s.hostIp }));
        const out = findPortConflicts(holders);
        for (const c of out) {
          expect(c.holders.length).toBeGreaterThanOrEqual(2);
          expect(new Set(c.holders.map((x) => `${x.containerId}/${x.destination}`)).size).toBeGreaterThanOrEqual(2);
        }
        // Symmetric: two different containers on one port with no host IP always conflict.
        const plain = specs.filter((s) => s.hostIp === undefined);
        for (const p of [1, 2]) {
          const keys = new Set(plain.filter((s) => s.port === p).map((s) => `${s.id}/${s.ip}`));
          if (keys.size >= 2) expect(out.some((c) => c.port === p)).toBe(true);
        }
      }),
    );
  });
});
