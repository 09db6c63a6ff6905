import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chainName,
  chainNames,
  dnatChainName,
  dnatComment,
  HOSTPORT_CHAIN_NAME_PATTERN,
  iptablesComment,
  nftComment,
  nftInstancePrefix,
  parseIptablesComment,
  parsePortmapComment,
  snatChainName,
  savedComment,
  snatComment,
} from '../src/identity.js';

describe('identity', () => {
  it.each([
    ['bridge', 'default-237eaf51aa0c1411433db10b2c8dac0f826f87ac6f48c62084ee84c3d9c20384', 'CNI-4f6dd6c08c7e1a901788c768'],
    ['bridge', 'default-81cc6b08527975ef8bf151b1460ead6a3d767310a7513d306a4bbe19f61fe6a8', 'CNI-5e9207ffbe238a4b386cd5bd'],
    ['podman', '86cc7521c68b20a7c9f97dd4cd176c41e13008f986736be8056aca8cbb28dab8', 'CNI-f891eda7ae68318dc3584dd8'],
    ['hynet', 'testler', 'CNI-63fd59f190a7b6095f99898e'],
    ['bridge', 'default-c1', 'CNI-cced65d2836da8857f37a24a'],
  ])('chain of %s + %s is %s (upstream vectors)', (network, containerId, chain) => {
    expect(chainName({ network, containerId })).toBe(chain);
    expect(chain).toHaveLength(28);
  });

  it('also knows the 29-character chain of releases before v0.7', () => {
    const names = chainNames({ network: 'hynet', containerId: 'testler' });
    expect(names[0]).toBe('CNI-63fd59f190a7b6095f99898e');
    expect(names[1]).toMatch(/^CNI-63fd59f190a7b6095f99898e[0-9a-f]$/);
  });

  it('writes the comment like Go %q and reads it back', () => {
    const a = { network: 'bridge', containerId: 'default-c1' };
    expect(iptablesComment(a)).toBe('name: "bridge" id: "default-c1"');
    expect(parseIptablesComment(iptablesComment(a))).toEqual(a);
    expect(parseIptablesComment('name: "a b" id: "c"')).toBeUndefined();
    expect(parseIptablesComment('dnat name: "bridge" id: "x"')).toBeUndefined();
  });

  it('matches the nft backend vector from the upstream unit test', () => {
    expect(nftComment('unit-test', 'eth0', 'one')).toBe('6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one');
    expect(nftInstancePrefix('unit-test', 'eth0', 'one')).toBe('6fd94d501e58f0aa-287fc69eff0574a2');
  });

  it('truncates the nft comment to knftables.CommentLengthMax', () => {
    expect(nftComment('n', 'eth0', 'x'.repeat(200))).toHaveLength(128);
  });
});

describe('portmap (hostport) identity', () => {
  // Upstream portmap_test.go: genDnatChain("testNetName", containerID) and the old genSnatChain.
  const UPSTREAM_ID = 'icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6vai3vuf0ahfaeng8yohb9ceu0daez5hashee8ooYai5wa3y';
  const upstream = { network: 'testNetName', containerId: UPSTREAM_ID };

  it('names the DN chain like MustFormatChainNameWithPrefix(name, id, "DN-") (upstream vector)', () => {
    expect(dnatChainName(upstream)).toBe('CNI-DN-bfd599665540dd91d5d28');
    expect(dnatChainName(upstream)).toHaveLength(28);
    expect(HOSTPORT_CHAIN_NAME_PATTERN.test(dnatChainName(upstream))).toBe(true);
  });

  it('names the old SN chain with the same hash (upstream vector)', () => {
    expect(snatChainName(upstream)).toBe('CNI-SN-bfd599665540dd91d5d28');
    expect(HOSTPORT_CHAIN_NAME_PATTERN.test(snatChainName(upstream))).toBe(true);
  });

  it('the DN hash is the masquerade chain hash cut shorter (both hash network + ID)', () => {
    const a = { network: 'bridge', containerId: 'default-c1' };
    expect(dnatChainName(a).slice('CNI-DN-'.length)).toBe(chainName(a).slice('CNI-'.length, 'CNI-'.length + 21));
  });

  it('writes the entry-rule comment as upstream does and reads it back', () => {
    expect(dnatComment(upstream)).toBe(`dnat name: "testNetName" id: "${UPSTREAM_ID}"`);
    expect(parsePortmapComment(dnatComment(upstream))).toEqual({ kind: 'dnat', owner: upstream, trimmed: false });
    expect(snatComment(upstream)).toBe(`snat name: "testNetName" id: "${UPSTREAM_ID}"`);
    expect(parsePortmapComment(snatComment(upstream))).toEqual({ kind: 'snat', owner: upstream, trimmed: false });
  });

  it('trims comments over 255 bytes to 253 + "..." (trimComment), and never claims an owner from one', () => {
    const a = { network: 'n', containerId: 'x'.repeat(300) };
    const c = dnatComment(a);
    expect(c).toHaveLength(256);
    expect(c.endsWith('...')).toBe(true);
    expect(c.slice(0, 253)).toBe(`dnat name: "n" id: "${'x'.repeat(300)}`.slice(0, 253));
    expect(parsePortmapComment(c)).toEqual({ kind: 'dnat', owner: undefined, trimmed: true });
    // iptables keeps at most 255 bytes: the saved form ends in "..".
    expect(savedComment(c)).toHaveLength(255);
    expect(savedComment(c).endsWith('x..')).toBe(true);
    expect(parsePortmapComment(savedComment(c))).toEqual({ kind: 'dnat', owner: undefined, trimmed: true });
    // A cut that lands in the separator or the network name is still recognised.
    expect(parsePortmapComment(dnatComment({ network: 'n'.repeat(251), containerId: 'c' }))?.trimmed).toBe(true);
    expect(parsePortmapComment(savedComment(dnatComment({ network: 'n'.repeat(238), containerId: 'c' })))?.trimmed).toBe(true);
    expect(savedComment(dnatComment(upstream))).toBe(dnatComment(upstream));
    // Exactly 255 bytes stays whole.
    const edge = { network: 'n', containerId: 'y'.repeat(255 - 'dnat name: "n" id: ""'.length) };
    expect(dnatComment(edge)).toHaveLength(255);
    expect(parsePortmapComment(dnatComment(edge))?.owner).toEqual(edge);
  });

  it('refuses what upstream never writes', () => {
    for (const c of [
      'name: "bridge" id: "c1"',
      'dnat name: "a b" id: "c"',
      'dnat name: "bridge" id: "c1" ',
      'dnat  name: "bridge" id: "c1"',
      'dnat name: "bridge" id: ""',
      'dnat name: "bridge"',
      'xnat name: "bridge" id: "c1"',
      `dnat name: "n" id: "${'x'.repeat(300)}`,
      'dnat name: "n" id: "short...',
      `dnat name: "n" id: "${'x'.repeat(232)}"`.slice(0, 253) + '..',
      `dnat name: "n" id: "${'x'.repeat(240)}`.slice(0, 253) + '.',
    ]) {
      expect(parsePortmapComment(c), c).toBeUndefined();
    }
  });

  it('property: any valid identity round-trips through the comment, and the chain name is always valid', () => {
    const name = fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}$/);
    fc.assert(
      fc.property(name, name, (network, containerId) => {
        const a = { network, containerId };
        expect(parsePortmapComment(dnatComment(a))?.owner).toEqual(a);
        expect(dnatChainName(a)).toMatch(HOSTPORT_CHAIN_NAME_PATTERN);
      }),
    );
  });
});
