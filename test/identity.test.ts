import { describe, expect, it } from 'vitest';
import { chainName, chainNames, iptablesComment, nftComment, nftInstancePrefix, parseIptablesComment } from '../src/identity.js';

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
