import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nftComment, nftInstancePrefix, nftNetworkHash } from '../../../src/identity.js';
import { NFT_CHAIN, NFT_TABLE, nftCommentOwner, parseNftListing } from '../../../src/backends/nft/parse.js';

/*
 * Real `nft -j` output (nftables 1.0.6, Debian bookworm), captured inside a
 * throwaway network namespace after loading this ruleset with `nft -f`: the
 * objects upstream's nftables masquerade backend writes, one rule per IP,
 * plus a rule without comment and one with a forged comment.
 *
 *   add table inet cni_plugins_masquerade { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }
 *   add chain inet cni_plugins_masquerade masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }
 *   add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority 100 ; }
 *   flush chain inet cni_plugins_masquerade postrouting
 *   add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4  return
 *   add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8  return
 *   add rule inet cni_plugins_masquerade postrouting goto masq_checks
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade comment "7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1"
 *   add rule inet cni_plugins_masquerade masq_checks ip6 saddr == fd00:88::2 ip6 daddr != fd00:88::/64 masquerade comment "7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1"
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade comment "7d24d33e39064c8a-ce22e8fef5c0a4f4, net: bridge, if: eth1, id: c1"
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.88.0.3 ip daddr != 10.88.0.0/16 masquerade comment "7d24d33e39064c8a-5d162e79f7ab668f, net: bridge, if: eth0, id: default-0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.89.0.2 ip daddr != 10.89.0.0/24 masquerade comment "1d8721804f16f412-f4d01f2ef4b92245, net: podman, if: eth0, id: c1"
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr == 192.168.1.4 ip daddr != 192.168.1.0/24 masquerade comment "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one"
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr 10.200.0.1 counter
 *   add rule inet cni_plugins_masquerade masq_checks ip saddr 10.200.0.2 masquerade comment "0000000000000000-0000000000000000, net: bridge, if: eth0, id: forged"
 */

/** `nft -j list chain inet cni_plugins_masquerade masq_checks` */
const LIST_CHAIN = String.raw`{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks", "handle": 1}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 6, "comment": "7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.88.0.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.88.0.0", "len": 16}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 7, "comment": "7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "fd00:88::2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "fd00:88::", "len": 64}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 8, "comment": "7d24d33e39064c8a-ce22e8fef5c0a4f4, net: bridge, if: eth1, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.99.0.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.99.0.0", "len": 24}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 9, "comment": "7d24d33e39064c8a-5d162e79f7ab668f, net: bridge, if: eth0, id: default-0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.88.0.3"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.88.0.0", "len": 16}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 10, "comment": "1d8721804f16f412-f4d01f2ef4b92245, net: podman, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.89.0.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.89.0.0", "len": 24}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 11, "comment": "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.168.1.4"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "192.168.1.0", "len": 24}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 12, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.200.0.1"}}, {"counter": {"packets": 0, "bytes": 0}}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 13, "comment": "0000000000000000-0000000000000000, net: bridge, if: eth0, id: forged", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.200.0.2"}}, {"masquerade": null}]}}]}`;

/** `nft -j list table inet cni_plugins_masquerade` (same ruleset: adds the table, postrouting and its rules). */
const LIST_TABLE = String.raw`{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "cni_plugins_masquerade", "handle": 1}}, {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks", "handle": 1}}, {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "postrouting", "handle": 2, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 6, "comment": "7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.88.0.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.88.0.0", "len": 16}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 7, "comment": "7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "fd00:88::2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "fd00:88::", "len": 64}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 8, "comment": "7d24d33e39064c8a-ce22e8fef5c0a4f4, net: bridge, if: eth1, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.99.0.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.99.0.0", "len": 24}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 9, "comment": "7d24d33e39064c8a-5d162e79f7ab668f, net: bridge, if: eth0, id: default-0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.88.0.3"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.88.0.0", "len": 16}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 10, "comment": "1d8721804f16f412-f4d01f2ef4b92245, net: podman, if: eth0, id: c1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.89.0.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.89.0.0", "len": 24}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 11, "comment": "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.168.1.4"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "192.168.1.0", "len": 24}}}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 12, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.200.0.1"}}, {"counter": {"packets": 0, "bytes": 0}}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 13, "comment": "0000000000000000-0000000000000000, net: bridge, if: eth0, id: forged", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.200.0.2"}}, {"masquerade": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "postrouting", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}}, {"return": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "postrouting", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "ff00::", "len": 8}}}}, {"return": null}]}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "postrouting", "handle": 5, "expr": [{"goto": {"target": "masq_checks"}}]}}]}`;

const NERDCTL_ID = 'default-' + '0123456789abcdef'.repeat(4);
const VECTOR = '6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one';

/** Replace the hex digit at `i` by another one. */
function flipHex(s: string, i: number): string {
  const c = s[i] as string;
  return s.slice(0, i) + (c === '0' ? '1' : '0') + s.slice(i + 1);
}

describe('nftCommentOwner', () => {
  it('reads the upstream unit-test vector', () => {
    expect(nftCommentOwner(VECTOR)).toEqual({ network: 'unit-test', ifname: 'eth0', containerId: 'one', truncated: false, instance: '6fd94d501e58f0aa-287fc69eff0574a2' });
  });

  it('reads a comment upstream cut at 128 characters, proving only the network', () => {
    const comment = nftComment('bridge', 'eth0', NERDCTL_ID);
    expect(comment).toHaveLength(128);
    const owner = nftCommentOwner(comment);
    expect(owner).toMatchObject({ network: 'bridge', ifname: 'eth0', containerId: NERDCTL_ID.slice(0, 66), truncated: true });
    expect(NERDCTL_ID.startsWith(owner?.containerId ?? 'x')).toBe(true);
    // The instance hash is whole even when the comment was cut.
    expect(owner?.instance).toBe(nftInstancePrefix('bridge', 'eth0', NERDCTL_ID));
  });

  it.each([
    ['network hash of another network', VECTOR.replace('6fd94d501e58f0aa', nftNetworkHash('bridge'))],
    ['network hash with one digit changed', flipHex(VECTOR, 3)],
    ['instance hash with one digit changed', flipHex(VECTOR, 20)],
    ['instance hash of another container', VECTOR.replace('287fc69eff0574a2', nftInstancePrefix('unit-test', 'eth0', 'two').slice(17))],
    ['instance hash of another ifname', VECTOR.replace('287fc69eff0574a2', nftInstancePrefix('unit-test', 'eth1', 'one').slice(17))],
    ['the id field edited', VECTOR.replace('id: one', 'id: two')],
    ['the ifname field edited', VECTOR.replace('if: eth0', 'if: eth1')],
    ['the network field edited', VECTOR.replace('net: unit-test', 'net: unit-tesT')],
    ['upper-case hex', VECTOR.replace('6fd94d501e58f0aa', '6FD94D501E58F0AA')],
    ['all-zero hashes', VECTOR.replace(/^[0-9a-f]{16}-[0-9a-f]{16}/, '0000000000000000-0000000000000000')],
    ['a trailing space', VECTOR + ' '],
    ['a leading prefix', 'x' + VECTOR],
    ['no id field', VECTOR.replace(', id: one', '')],
    ['the hash only', '6fd94d501e58f0aa-287fc69eff0574a2'],
    ['an iptables comment', 'name: "unit-test" id: "one"'],
    ['an empty string', ''],
  ])('rejects %s', (_what, comment) => {
    expect(nftCommentOwner(comment)).toBeUndefined();
  });

  it('rejects a truncated comment whose network hash is forged', () => {
    const comment = nftComment('bridge', 'eth0', NERDCTL_ID);
    expect(nftCommentOwner(flipHex(comment, 0))).toBeUndefined();
    expect(nftCommentOwner(comment.replace('net: bridge', 'net: bridgf'))).toBeUndefined();
  });

  it('does not take a shortened comment that is not exactly 128 characters for a truncated one', () => {
    const comment = nftComment('bridge', 'eth0', NERDCTL_ID);
    expect(nftCommentOwner(comment.slice(0, 127))).toBeUndefined();
    expect(nftCommentOwner(comment.slice(0, 100))).toBeUndefined();
    // Short ids are never truncated, so a cut one is a forgery.
    expect(nftCommentOwner(VECTOR.slice(0, -1))).toBeUndefined();
  });

  it('rejects a network name CNI would not accept, even with its hash', () => {
    const net = 'bad net';
    const comment = `${nftNetworkHash(net)}-${nftInstancePrefix(net, 'eth0', 'c').slice(17)}, net: ${net}, if: eth0, id: c`;
    expect(nftCommentOwner(comment)).toBeUndefined();
  });
});

// ---- properties -----------------------------------------------------------

const cniName = (max: number) => fc.stringMatching(new RegExp(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,${max - 1}}$`));
const ifnameArb = fc.stringMatching(/^[a-z][a-z0-9._-]{0,14}$/);
const longIdArb = fc.oneof(cniName(20), fc.stringMatching(/^[0-9a-f]{64}$/), fc.stringMatching(/^default-[0-9a-f]{64}$/));

describe('nftCommentOwner properties', () => {
  it('recovers what upstream wrote: exactly when the comment is whole, a prefix of the id when it was cut', () => {
    fc.assert(
      fc.property(cniName(40), ifnameArb, longIdArb, (network, ifname, containerId) => {
        const comment = nftComment(network, ifname, containerId);
        const owner = nftCommentOwner(comment);
        expect(owner).toBeDefined();
        expect(owner?.network).toBe(network);
        expect(owner?.ifname).toBe(ifname);
        if (comment.length < 128 || owner?.truncated === false) {
          expect(owner).toEqual({ network, ifname, containerId, truncated: false, instance: nftInstancePrefix(network, ifname, containerId) });
        } else {
          expect(owner?.truncated).toBe(true);
          expect(owner?.instance).toBe(nftInstancePrefix(network, ifname, containerId));
          expect(containerId.startsWith(owner?.containerId ?? '\u0000')).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('any changed digit of the network hash makes the comment nobody’s', () => {
    fc.assert(
      fc.property(cniName(40), ifnameArb, longIdArb, fc.nat(15), (network, ifname, containerId, i) => {
        expect(nftCommentOwner(flipHex(nftComment(network, ifname, containerId), i))).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('any changed digit of the instance hash of a whole comment makes it nobody’s', () => {
    fc.assert(
      fc.property(cniName(20), ifnameArb, cniName(20), fc.nat(15), (network, ifname, containerId, i) => {
        const comment = nftComment(network, ifname, containerId);
        fc.pre(comment.length < 128);
        expect(nftCommentOwner(flipHex(comment, 17 + i))).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});

// ---- parseNftListing on real nft output ------------------------------------

const BRIDGE_C1_ETH0 = '7d24d33e39064c8a-f4d01f2ef4b92245, net: bridge, if: eth0, id: c1';

describe('parseNftListing (real nft -j output)', () => {
  it('reads every rule of masq_checks with its handle, comment, source address and proven owner', () => {
    const rules = parseNftListing(LIST_CHAIN);
    expect(rules.map((r) => r.handle)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    expect(rules.map((r) => r.saddr)).toEqual([['10.88.0.2'], ['fd00:88::2'], ['10.99.0.2'], ['10.88.0.3'], ['10.89.0.2'], ['192.168.1.4'], ['10.200.0.1'], ['10.200.0.2']]);
    expect(rules[0]).toEqual({
      handle: 6,
      comment: BRIDGE_C1_ETH0,
      saddr: ['10.88.0.2'],
      owner: { network: 'bridge', ifname: 'eth0', containerId: 'c1', truncated: false, instance: nftInstancePrefix('bridge', 'eth0', 'c1') },
    });
    expect(rules.map((r) => r.owner && `${r.owner.network}/${r.owner.ifname}/${r.owner.containerId}${r.owner.truncated ? '…' : ''}`)).toEqual([
      'bridge/eth0/c1',
      'bridge/eth0/c1',
      'bridge/eth1/c1',
      `bridge/eth0/${NERDCTL_ID.slice(0, 66)}…`,
      'podman/eth0/c1',
      'unit-test/eth0/one',
      undefined,
      undefined,
    ]);
    // The uncommented rule and the forged one are listed, but belong to nobody.
    expect(rules[6]?.comment).toBeUndefined();
    expect(rules[7]?.comment).toBe('0000000000000000-0000000000000000, net: bridge, if: eth0, id: forged');
  });

  it('the comments in the listing are exactly what identity.nftComment computes', () => {
    const rules = parseNftListing(LIST_CHAIN);
    expect(rules[0]?.comment).toBe(nftComment('bridge', 'eth0', 'c1'));
    expect(rules[3]?.comment).toBe(nftComment('bridge', 'eth0', NERDCTL_ID));
    expect(rules[5]?.comment).toBe(VECTOR);
  });

  it('from a whole-table listing keeps only masq_checks rules (not postrouting, not objects)', () => {
    const rules = parseNftListing(LIST_TABLE);
    expect(rules.map((r) => r.handle)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    expect(JSON.parse(LIST_TABLE).nftables.some((o: { rule?: { chain?: string } }) => o.rule?.chain === 'postrouting')).toBe(true);
  });

  it('ignores rules of other tables, families or chains, and items that are not rules', () => {
    const doc = JSON.parse(LIST_CHAIN) as { nftables: unknown[] };
    const rule = (over: Record<string, unknown>) => ({
      rule: { family: 'inet', table: NFT_TABLE, chain: NFT_CHAIN, handle: 99, comment: BRIDGE_C1_ETH0, expr: [], ...over },
    });
    const extra = [
      rule({ family: 'ip' }),
      rule({ table: 'nat' }),
      rule({ chain: 'postrouting' }),
      rule({ handle: -1 }),
      rule({ handle: 'x' }),
      { set: { family: 'inet', name: 's' } },
      null,
      42,
    ];
    const rules = parseNftListing(JSON.stringify({ nftables: [...doc.nftables, ...extra] }));
    expect(rules.map((r) => r.handle)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
  });

  it('an empty chain is no rules', () => {
    expect(parseNftListing('{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks", "handle": 1}}]}')).toEqual([]);
  });

  it('a rule without expressions has no source address', () => {
    const text = JSON.stringify({ nftables: [{ rule: { family: 'inet', table: NFT_TABLE, chain: NFT_CHAIN, handle: 5, comment: VECTOR } }] });
    expect(parseNftListing(text)).toEqual([{ handle: 5, comment: VECTOR, saddr: [], owner: { network: 'unit-test', ifname: 'eth0', containerId: 'one', truncated: false, instance: '6fd94d501e58f0aa-287fc69eff0574a2' } }]);
  });

  it('throws on text that is not an nft JSON listing', () => {
    expect(() => parseNftListing('')).toThrow();
    expect(() => parseNftListing('table inet cni_plugins_masquerade {')).toThrow();
    expect(() => parseNftListing('{"rules": []}')).toThrow();
    expect(() => parseNftListing(LIST_CHAIN.slice(0, 500))).toThrow();
  });
});
