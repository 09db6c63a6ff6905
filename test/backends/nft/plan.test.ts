import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chainNames, iptablesComment, NFT_COMMENT_MAX, nftComment, nftInstancePrefix, nftNetworkHash, type Attachment } from '../../../src/identity.js';
import { parseSave, type Snapshot } from '../../../src/backends/iptables/parse.js';
import { planIptables, type IptablesPlan } from '../../../src/backends/iptables/plan.js';
import { renderRestore } from '../../../src/backends/iptables/render.js';
import { NFT_CHAIN, NFT_TABLE, parseNftListing, type NftOwner, type NftRule } from '../../../src/backends/nft/parse.js';
import { cutOwner, planNft, type NftPlan } from '../../../src/backends/nft/plan.js';
import { chunkByInstance, renderNft } from '../../../src/backends/nft/render.js';
import type { InterfaceRef } from '../../../src/backends/selection.js';
import { delSelection, gcSelection, type ValidAttachment } from '../../../src/records/selections.js';
import { applyRestore, bridgeRules, quote, toSave, type NatModel } from '../../support/nat-model.js';

/*
 * The verbs' questions, asked through the one planner: DEL is delSelection,
 * GC is gcSelection, sweep is any predicate over what a comment proves.
 */
const planNftAttachment = (rules: readonly NftRule[], network: string, ifname: string, containerId: string): NftPlan =>
  planNft(rules, delSelection({ network, ifname, containerId }, { prevIps: undefined, others: [], bridgeTearsDown: false }), [network]);
const planNftGc = (rules: readonly NftRule[], network: string, valid: readonly ValidAttachment[]): NftPlan => planNft(rules, gcSelection(network, valid, undefined), [network]);
const planNftSelection = (rules: readonly NftRule[], doomed: (o: InterfaceRef) => boolean): NftPlan => planNft(rules, { interfaceGone: doomed, containerGone: () => false });
const planSelection = (snapshot: Snapshot, doomed: (a: Attachment) => boolean): IptablesPlan =>
  planIptables(snapshot, { interfaceGone: (r) => doomed(r), containerGone: doomed }, { recreate: false, conservative: false });

/**
 * One masq_checks rule as `nft -j list chain` prints it (shape copied from
 * real nftables 1.0.6 output; see parse.test.ts), so every NftRule here
 * went through the real parser.
 */
interface Spec {
  readonly handle: number;
  readonly comment: string | undefined;
  readonly ip: string;
}

function listing(specs: readonly Spec[]): string {
  const items = specs.map((s) => {
    const proto = s.ip.includes(':') ? 'ip6' : 'ip';
    return {
      rule: {
        family: 'inet',
        table: NFT_TABLE,
        chain: NFT_CHAIN,
        handle: s.handle,
        ...(s.comment === undefined ? {} : { comment: s.comment }),
        expr: [
          { match: { op: '==', left: { payload: { protocol: proto, field: 'saddr' } }, right: s.ip } },
          { match: { op: '!=', left: { payload: { protocol: proto, field: 'daddr' } }, right: { prefix: { addr: proto === 'ip' ? '10.0.0.0' : 'fd00::', len: proto === 'ip' ? 8 : 64 } } } },
          { masquerade: null },
        ],
      },
    };
  });
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      { chain: { family: 'inet', table: NFT_TABLE, name: NFT_CHAIN, handle: 1 } },
      ...items,
    ],
  });
}

const NERDCTL_ID = 'default-' + '0123456789abcdef'.repeat(4);
const NERDCTL_ID2 = 'default-' + '0123456789abcdef'.repeat(3) + 'fedcba9876543210';

/** bridge/eth0/c1 (v4+v6), bridge/eth1/c1, bridge/eth0/c2, two nerdctl ids sharing a 66-char prefix, podman/eth0/c1, an uncommented rule, a forged one. */
const TABLE: NftRule[] = parseNftListing(
  listing([
    { handle: 6, comment: nftComment('bridge', 'eth0', 'c1'), ip: '10.88.0.2' },
    { handle: 7, comment: nftComment('bridge', 'eth0', 'c1'), ip: 'fd00:88::2' },
    { handle: 8, comment: nftComment('bridge', 'eth1', 'c1'), ip: '10.99.0.2' },
    { handle: 9, comment: nftComment('bridge', 'eth0', 'c2'), ip: '10.88.0.3' },
    { handle: 10, comment: nftComment('bridge', 'eth0', NERDCTL_ID), ip: '10.88.0.4' },
    { handle: 11, comment: nftComment('bridge', 'eth0', NERDCTL_ID2), ip: '10.88.0.5' },
    { handle: 12, comment: nftComment('podman', 'eth0', 'c1'), ip: '10.89.0.2' },
    { handle: 13, comment: undefined, ip: '10.200.0.1' },
    { handle: 14, comment: '0000000000000000-0000000000000000, net: bridge, if: eth0, id: c3', ip: '10.200.0.2' },
    // Right network hash, wrong instance hash: upstream's GC prefix would match it; it belongs to no provable container.
    { handle: 15, comment: `${nftNetworkHash('bridge')}-0000000000000000, net: bridge, if: eth0, id: c3`, ip: '10.200.0.3' },
  ]),
);

const handles = (rules: readonly NftRule[]): number[] => rules.map((r) => r.handle);

describe('planNftAttachment (DEL)', () => {
  it.each([
    ['bridge', 'eth0', 'c1', [6, 7]],
    ['bridge', 'eth1', 'c1', [8]],
    ['bridge', 'eth0', 'c2', [9]],
    ['bridge', 'eth0', NERDCTL_ID, [10]],
    ['bridge', 'eth0', NERDCTL_ID2, [11]],
    ['podman', 'eth0', 'c1', [12]],
    ['podman', 'eth1', 'c1', []],
    ['bridge', 'eth0', 'c3', []],
    ['other', 'eth0', 'c1', []],
  ] as const)('%s/%s/%s removes handles %j', (net, ifname, id, expected) => {
    expect(handles(planNftAttachment(TABLE, net, ifname, id).rules)).toEqual(expected);
  });

  it('keys on the whole instance hash, so an id that extends another one is a different instance', () => {
    const rules = parseNftListing(listing([{ handle: 2, comment: nftComment('bridge', 'eth0', 'c10'), ip: '10.0.0.2' }]));
    expect(planNftAttachment(rules, 'bridge', 'eth0', 'c1').rules).toEqual([]);
  });

  it('works on comments alone: a rule whose comment is cut inside the network name is still found by its prefix', () => {
    const net = 'n'.repeat(100);
    const comment = nftComment(net, 'eth0', 'c1');
    expect(comment).toHaveLength(128);
    expect(comment).not.toContain('if:');
    const rules = parseNftListing(listing([{ handle: 3, comment, ip: '10.0.0.2' }]));
    expect(handles(planNftAttachment(rules, net, 'eth0', 'c1').rules)).toEqual([3]);
  });
});

describe('planNftGc', () => {
  it('removes every rule of the network when nothing is valid, and nothing of other networks', () => {
    expect(handles(planNftGc(TABLE, 'bridge', []).rules)).toEqual([6, 7, 8, 9, 10, 11]);
    expect(handles(planNftGc(TABLE, 'podman', []).rules)).toEqual([12]);
    expect(handles(planNftGc(TABLE, 'nonexistent', []).rules)).toEqual([]);
  });

  it('keeps exactly the valid (containerID, ifname) pairs, as upstream compares whole comments', () => {
    expect(handles(planNftGc(TABLE, 'bridge', [{ containerId: 'c1', ifname: 'eth0' }]).rules)).toEqual([8, 9, 10, 11]);
    // c1 is valid only on eth1: its eth0 rules are stale (the nft backend keys on ifname).
    expect(handles(planNftGc(TABLE, 'bridge', [{ containerId: 'c1', ifname: 'eth1' }]).rules)).toEqual([6, 7, 9, 10, 11]);
    expect(handles(planNftGc(TABLE, 'bridge', [{ containerId: 'c2', ifname: 'eth0' }, { containerId: NERDCTL_ID, ifname: 'eth0' }]).rules)).toEqual([6, 7, 8, 11]);
  });

  it('a truncated comment is kept by its valid attachment and only by it', () => {
    expect(handles(planNftGc(TABLE, 'bridge', [{ containerId: NERDCTL_ID2, ifname: 'eth0' }]).rules)).toEqual([6, 7, 8, 9, 10]);
    // Same first 66 characters as NERDCTL_ID, but not the same container.
    expect(handles(planNftGc(TABLE, 'bridge', [{ containerId: NERDCTL_ID.slice(0, 66), ifname: 'eth0' }]).rules)).toEqual([6, 7, 8, 9, 10, 11]);
  });

  it('valid attachments of another network keep nothing here', () => {
    expect(handles(planNftGc(TABLE, 'podman', [{ containerId: 'c1', ifname: 'eth0' }]).rules)).toEqual([]);
    expect(handles(planNftGc(TABLE, 'bridge', [{ containerId: 'c1', ifname: 'eth0' }]).rules)).not.toContain(12);
  });

  it('never plans uncommented or forged rules', () => {
    for (const net of ['bridge', 'podman']) {
      const planned = handles(planNftGc(TABLE, net, []).rules);
      for (const h of [13, 14, 15]) expect(planned).not.toContain(h);
    }
  });

  it('a rule with this network’s hash and name but an unverifiable instance hash goes by neither GC, DEL nor sweep', () => {
    expect(handles(planNftGc(TABLE, 'bridge', []).rules)).not.toContain(15);
    // Its instance hash is nobody's, so DEL of the name its text shows does not match it.
    expect(handles(planNftAttachment(TABLE, 'bridge', 'eth0', 'c3').rules)).toEqual([]);
    expect(handles(planNftSelection(TABLE, () => true).rules)).not.toContain(15);
  });

  it('a cut comment with this network’s hash but another visible name is not this network’s', () => {
    const net = 'ns-' + 'x'.repeat(100);
    const real = nftComment(net, 'eth0', 'c1');
    const forged = real.slice(0, 60) + 'y' + real.slice(61);
    expect(forged).toHaveLength(128);
    const rules = parseNftListing(
      listing([
        { handle: 2, comment: real, ip: '10.0.0.2' },
        { handle: 3, comment: forged, ip: '10.0.0.3' },
        { handle: 4, comment: real.slice(0, 127), ip: '10.0.0.4' }, // not upstream's cut either
      ]),
    );
    expect(handles(planNftGc(rules, net, []).rules)).toEqual([2]);
    expect(handles(planNftGc(rules, net.slice(0, 60), []).rules)).toEqual([]);
  });

  it('removes the stale rules of a network with a long name, whose comments upstream cut inside the name', () => {
    // CNI does not bound network names; a Multus NetworkAttachmentDefinition name may be up to 253 characters.
    const net = 'ns-' + 'x'.repeat(77); // 80 characters: the 128-char comment ends inside "if: ..."
    const rules = parseNftListing(
      listing([
        { handle: 2, comment: nftComment(net, 'eth0', 'dead'), ip: '10.0.0.2' },
        { handle: 3, comment: nftComment(net, 'eth0', 'alive'), ip: '10.0.0.3' },
      ]),
    );
    expect(rules[0]?.comment?.startsWith(nftNetworkHash(net) + '-')).toBe(true);
    // Upstream's gcIPMasqNFTables: rules with the network-hash prefix whose comment is not a valid attachment's.
    expect(handles(planNftGc(rules, net, [{ containerId: 'alive', ifname: 'eth0' }]).rules)).toEqual([2]);
  });
});

describe('planNftSelection (sweep)', () => {
  it('selects by proven owner only', () => {
    const dead = new Set(['c1']);
    const plan = planNftSelection(TABLE, (o) => o.network === 'bridge' && dead.has(o.containerId));
    expect(handles(plan.rules)).toEqual([6, 7, 8]);
  });

  it('gives the predicate the truncated id and says it is truncated', () => {
    const seen: InterfaceRef[] = [];
    planNftSelection(TABLE, (o) => (seen.push(o), false));
    expect(seen.filter((o) => o.truncated).map((o) => o.containerId)).toEqual([NERDCTL_ID.slice(0, 66), NERDCTL_ID2.slice(0, 66)]);
    expect(seen).toHaveLength(7);
  });

  it('a predicate that dooms everything still leaves unowned rules', () => {
    expect(handles(planNftSelection(TABLE, () => true).rules)).toEqual([6, 7, 8, 9, 10, 11, 12]);
  });
});

describe('renderNft', () => {
  it('deletes by handle in one transaction', () => {
    expect(renderNft({ rules: TABLE.slice(0, 2) })).toBe('delete rule inet cni_plugins_masquerade masq_checks handle 6\ndelete rule inet cni_plugins_masquerade masq_checks handle 7\n');
    expect(renderNft({ rules: [] })).toBe('');
  });
});

// ---- properties: GC never removes what is valid ---------------------------

const NETWORKS = ['bridge', 'podman', 'net-a', 'k8s-pod-network', 'nerdctl_default'] as const;
const IFNAMES = ['eth0', 'eth1', 'net1'] as const;
const idArb = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,10}$/), fc.stringMatching(/^default-[0-9a-f]{64}$/), fc.stringMatching(/^[0-9a-f]{64}$/));

interface Instance {
  readonly network: string;
  readonly ifname: string;
  readonly containerId: string;
}

const instanceArb: fc.Arbitrary<Instance> = fc.record({ network: fc.constantFrom(...NETWORKS), ifname: fc.constantFrom(...IFNAMES), containerId: idArb });

interface NftTable {
  readonly rules: NftRule[];
  /** handle -> the instance whose rule it is (undefined: foreign or forged). */
  readonly ownerOf: Map<number, Instance | undefined>;
  readonly instances: Instance[];
}

const nftTableArb: fc.Arbitrary<NftTable> = fc
  .record({
    instances: fc.uniqueArray(instanceArb, { minLength: 1, maxLength: 14, selector: (i) => `${i.network}/${i.ifname}/${i.containerId}` }),
    dualStack: fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }),
    foreign: fc.array(fc.constantFrom('none', 'zeros', 'net-hash-only'), { maxLength: 4 }),
    foreignNet: fc.constantFrom(...NETWORKS),
    seed: fc.nat(),
  })
  .map(({ instances, dualStack, foreign, foreignNet, seed }) => {
    const specs: (Spec & { owner: Instance | undefined })[] = [];
    instances.forEach((inst, i) => {
      const comment = nftComment(inst.network, inst.ifname, inst.containerId);
      specs.push({ handle: 0, comment, ip: `10.${i}.0.2`, owner: inst });
      if (dualStack[i]) specs.push({ handle: 0, comment, ip: `fd00:${i}::2`, owner: inst });
    });
    foreign.forEach((kind, i) => {
      const comment =
        kind === 'none'
          ? undefined
          : kind === 'zeros'
            ? `0000000000000000-0000000000000000, net: ${foreignNet}, if: eth0, id: x${i}`
            : `${nftNetworkHash(foreignNet)}-0000000000000000, net: ${foreignNet}, if: eth0, id: x${i}`;
      specs.push({ handle: 0, comment, ip: `10.250.${i}.1`, owner: undefined });
    });
    // Listing order is the kernel's; shuffle it deterministically, then number handles.
    const ordered = specs.map((s, i) => ({ s, k: (i * 7919 + seed) % 104729 })).sort((a, b) => a.k - b.k).map((x, i) => ({ ...x.s, handle: 100 + i }));
    return { rules: parseNftListing(listing(ordered)), ownerOf: new Map(ordered.map((s) => [s.handle, s.owner])), instances };
  });

describe('planNftGc properties', () => {
  it('never removes a valid attachment’s rule nor another network’s, and removes every other rule of the network', () => {
    fc.assert(
      fc.property(nftTableArb, fc.constantFrom(...NETWORKS), fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }), fc.array(instanceArb, { maxLength: 3 }), (t, network, keepFlags, extraValid) => {
        // Valid: some attachments of the table (of any network: a runtime lists only this network's, but must not hurt), plus unrelated ones.
        const valid = [...t.instances.filter((_, i) => keepFlags[i]), ...extraValid].map((i) => ({ containerId: i.containerId, ifname: i.ifname, network: i.network }));
        const validHere = new Set(valid.filter((v) => v.network === network).map((v) => `${v.ifname}/${v.containerId}`));
        const plan = planNftGc(t.rules, network, valid.filter((v) => v.network === network));
        const planned = new Set(handles(plan.rules));
        for (const r of t.rules) {
          const owner = t.ownerOf.get(r.handle);
          if (owner === undefined) {
            // Foreign or forged rules (even with this network's hash and name): never ours to remove.
            expect(planned.has(r.handle)).toBe(false);
            continue;
          }
          const shouldGo = owner.network === network && !validHere.has(`${owner.ifname}/${owner.containerId}`);
          expect(planned.has(r.handle), `${r.comment} (GC of ${network}, valid ${[...validHere].join(' ')})`).toBe(shouldGo);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('DEL of one instance removes exactly that instance’s rules', () => {
    fc.assert(
      fc.property(nftTableArb, fc.nat(), (t, pick) => {
        const target = t.instances[pick % t.instances.length] as Instance;
        const planned = handles(planNftAttachment(t.rules, target.network, target.ifname, target.containerId).rules);
        const expected = t.rules.filter((r) => t.ownerOf.get(r.handle) === target).map((r) => r.handle);
        expect(planned).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('a sweep predicate sees every owned rule with its network and ifname, and a prefix of its id', () => {
    fc.assert(
      fc.property(nftTableArb, (t) => {
        const seen = new Map<string, InterfaceRef>();
        planNftSelection(t.rules, (o) => (seen.set(`${o.network}/${o.ifname}/${o.containerId}`, o), false));
        for (const r of t.rules) {
          const owner = t.ownerOf.get(r.handle);
          if (owner === undefined) continue;
          const o = r.owner;
          expect(o?.network).toBe(owner.network);
          expect(o?.ifname).toBe(owner.ifname);
          expect(owner.containerId.startsWith(o?.containerId ?? '\u0000')).toBe(true);
          expect(o?.truncated).toBe(o?.containerId !== owner.containerId);
        }
        expect(handles(planNftSelection(t.rules, () => true).rules)).toEqual(t.rules.filter((r) => t.ownerOf.get(r.handle) !== undefined).map((r) => r.handle));
      }),
      { numRuns: 200 },
    );
  });
});

// ---- iptables: planSelection with the GC predicate -------------------------

const FOREIGN_RULES = [
  '-A POSTROUTING -s 192.168.77.0/24 -j MASQUERADE',
  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
];
const FOREIGN_CHAINS = ['KUBE-POSTROUTING'];

interface IptTable {
  readonly model: NatModel;
  readonly attachments: Attachment[];
}

const iptTableArb: fc.Arbitrary<IptTable> = fc
  .record({
    attachments: fc.uniqueArray(fc.record({ network: fc.constantFrom(...NETWORKS), containerId: idArb }), {
      minLength: 1,
      maxLength: 12,
      selector: (a) => `${a.network}/${a.containerId}`,
    }),
    extraJumps: fc.array(fc.nat(11), { maxLength: 5 }),
    emptied: fc.array(fc.nat(11), { maxLength: 3 }),
    foreign: fc.subarray(FOREIGN_RULES),
    seed: fc.nat(),
  })
  .map(({ attachments, extraJumps, emptied, foreign, seed }) => {
    const chains = [...FOREIGN_CHAINS];
    const rules = [...foreign];
    attachments.forEach((a, i) => {
      const r = bridgeRules(a, `10.${i}.0.2`, `10.${i}.0.0/24`);
      chains.push(r.chain);
      // An emptied chain keeps only its jump (what a crashed teardown can leave).
      rules.push(...(emptied.includes(i) ? r.rules.slice(0, 1) : r.rules));
    });
    extraJumps.forEach((k, j) => {
      const a = attachments[k % attachments.length] as Attachment;
      rules.push(`-A POSTROUTING -s 172.16.${j}.1/32 -m comment --comment ${quote(iptablesComment(a))} -j ${chainNames(a)[0]}`);
    });
    const shuffled = rules.map((r, i) => ({ r, k: (i * 7919 + seed) % 104729 })).sort((x, y) => x.k - y.k).map((x) => x.r);
    return { model: { chains, rules: shuffled }, attachments };
  });

function identityRules(m: NatModel, a: Attachment): string[] {
  const names = chainNames(a);
  const c = quote(iptablesComment(a));
  return m.rules.filter((r) => names.some((n) => r.startsWith(`-A ${n} `) || (r.endsWith(` -j ${n}`) && r.includes(`--comment ${c}`))));
}

describe('planSelection with a GC predicate', () => {
  it('removes every invalid attachment of the network, keeps every valid one, and never touches other networks', () => {
    fc.assert(
      fc.property(iptTableArb, fc.constantFrom(...NETWORKS), fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }), fc.array(idArb, { maxLength: 3 }), (t, network, keepFlags, extraIds) => {
        // What gc.ts builds: the valid container IDs (iptables state ignores ifname).
        const validIds = new Set([...t.attachments.filter((a, i) => a.network === network && keepFlags[i]).map((a) => a.containerId), ...extraIds]);
        const doomed = (a: Attachment): boolean => a.network === network && !validIds.has(a.containerId);
        const plan = planSelection(parseSave(toSave(t.model)), doomed);
        const after = applyRestore(t.model, renderRestore(plan));
        const gone = new Set(t.attachments.filter(doomed).flatMap((a) => identityRules(t.model, a)));
        expect(after.rules).toEqual(t.model.rules.filter((r) => !gone.has(r)));
        for (const a of t.attachments) {
          const chain = chainNames(a)[0] as string;
          expect(after.chains.includes(chain), `${a.network}/${a.containerId}`).toBe(!doomed(a));
        }
        for (const c of FOREIGN_CHAINS) expect(after.chains).toContain(c);
        for (const o of plan.owners) expect(doomed(o)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('an empty valid list removes the whole network and only it', () => {
    fc.assert(
      fc.property(iptTableArb, fc.constantFrom(...NETWORKS), (t, network) => {
        const plan = planSelection(parseSave(toSave(t.model)), (a) => a.network === network);
        const after = applyRestore(t.model, renderRestore(plan));
        for (const a of t.attachments) expect(identityRules(after, a).length > 0).toBe(a.network !== network);
      }),
      { numRuns: 200 },
    );
  });
});

describe('planNftGc with long network names (comments cut anywhere)', () => {
  const longNet = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{50,130}$/);

  it('wherever upstream’s 128-character cut falls, GC removes exactly the invalid rules of its network', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(longNet, { minLength: 1, maxLength: 3 }),
        fc.array(fc.record({ net: fc.nat(2), ifname: fc.constantFrom(...IFNAMES), containerId: idArb, valid: fc.boolean() }), { minLength: 1, maxLength: 10 }),
        fc.nat(2),
        (names, specs, pick) => {
          // A network whose name is a prefix of another's shares what the cut leaves visible: only the hash tells them apart.
          const networks = [...names, (names[0] as string).slice(0, 40)];
          const network = networks[pick % networks.length] as string;
          const entries = specs.map((s, i) => ({ ...s, network: networks[s.net % networks.length] as string, handle: 10 + i }));
          const rules = parseNftListing(listing(entries.map((e) => ({ handle: e.handle, comment: nftComment(e.network, e.ifname, e.containerId), ip: `10.0.${e.handle}.2` }))));
          const valid = entries.filter((e) => e.valid && e.network === network).map((e) => ({ containerId: e.containerId, ifname: e.ifname }));
          const validKeys = new Set(valid.map((v) => nftComment(network, v.ifname, v.containerId)));
          const planned = new Set(handles(planNftGc(rules, network, valid).rules));
          for (const e of entries) {
            const shouldGo = e.network === network && !validKeys.has(nftComment(e.network, e.ifname, e.containerId));
            expect(planned.has(e.handle), `${e.network}/${e.ifname}/${e.containerId} in GC of ${network}`).toBe(shouldGo);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

// ---- the shell's decisions, now in the planner and renderer ------------------

describe('planNft within and networks', () => {
  it('within only shrinks: a retry never dooms a handle the first plan did not', () => {
    const p1 = planNftGc(TABLE, 'bridge', [{ containerId: 'c1', ifname: 'eth0' }]);
    const within = new Set(handles(p1.rules));
    const p2 = planNft(TABLE, gcSelection('bridge', [], undefined), ['bridge'], within);
    expect(handles(p2.rules)).toEqual(handles(p1.rules));
    expect(handles(planNft(TABLE, gcSelection('bridge', [], undefined), ['bridge'], new Set()).rules)).toEqual([]);
  });

  it('a comment cut inside the network name is attributed only through a network the caller names', () => {
    const net = 'n'.repeat(100);
    const rules = parseNftListing(listing([{ handle: 3, comment: nftComment(net, 'eth0', 'c1'), ip: '10.0.0.2' }]));
    expect(rules[0]?.owner).toBeUndefined();
    const everything = { interfaceGone: () => true, containerGone: () => true };
    expect(planNft(rules, everything).rules).toEqual([]);
    expect(handles(planNft(rules, everything, [net]).rules)).toEqual([3]);
    expect(planNft(rules, everything, ['n'.repeat(99)]).rules).toEqual([]);
  });
});

describe('cutOwner', () => {
  const net = 'ns-' + 'x'.repeat(110);
  const comment = nftComment(net, 'eth0', 'c1');
  const rule = (c: string | undefined): NftRule => ({ handle: 1, comment: c, saddr: [], owner: undefined });

  it('attributes a 128-character comment cut inside the name to the network that agrees with it', () => {
    expect(comment).toHaveLength(NFT_COMMENT_MAX);
    const o = cutOwner(rule(comment), net);
    expect(o).toEqual({ network: net, ifname: '', containerId: '', truncated: true, instance: nftInstancePrefix(net, 'eth0', 'c1') });
  });

  it('refuses another network (hash or visible name), a shorter comment, or none', () => {
    expect(cutOwner(rule(comment), 'bridge')).toBeUndefined();
    expect(cutOwner(rule(comment), net.slice(0, 50))).toBeUndefined();
    expect(cutOwner(rule(comment.slice(0, 127)), net)).toBeUndefined();
    expect(cutOwner(rule(comment.replace('xxxxx', 'xxyxx')), net)).toBeUndefined();
    expect(cutOwner(rule(undefined), net)).toBeUndefined();
  });

  it('a whole comment of the network whose cut falls after "if: " is also this network’s', () => {
    const mid = 'ns-' + 'x'.repeat(77);
    const c = nftComment(mid, 'eth0', 'default-' + '0'.repeat(64));
    expect(c).toHaveLength(NFT_COMMENT_MAX);
    expect(cutOwner(rule(c), mid)?.network).toBe(mid);
  });
});

describe('chunkByInstance (batch grouping)', () => {
  it('an instance’s v4 and v6 rules never split across chunks, whatever the size', () => {
    fc.assert(
      fc.property(nftTableArb, fc.integer({ min: 1, max: 6 }), (t, size) => {
        const owned = t.rules.filter((r) => r.owner !== undefined);
        const chunks = chunkByInstance(owned, size);
        expect(chunks.flat().map((r) => r.handle).sort()).toEqual(owned.map((r) => r.handle).sort());
        const chunkOf = new Map<string, number>();
        chunks.forEach((c, i) => {
          for (const r of c) {
            const inst = r.owner?.instance as string;
            if (chunkOf.has(inst)) expect(chunkOf.get(inst)).toBe(i);
            else chunkOf.set(inst, i);
          }
          // A chunk grows past `size` only to hold one instance whole.
          const instances = new Set(c.map((r) => r.owner?.instance));
          if (c.length > size) expect(instances.size).toBe(1);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('handles 6 and 7 (bridge/eth0/c1 v4 and v6) stay together even at size 1', () => {
    const chunks = chunkByInstance(TABLE.slice(0, 3), 1);
    expect(chunks.map(handles)).toEqual([[6, 7], [8]]);
  });

  it('renders each chunk as deletes by handle, and refuses a handle that is not a safe integer', () => {
    for (const c of chunkByInstance(TABLE, 2)) expect(renderNft({ rules: c }).split('\n').filter(Boolean).every((l) => /^delete rule inet cni_plugins_masquerade masq_checks handle \d+$/.test(l))).toBe(true);
    expect(() => renderNft({ rules: [{ handle: -1, comment: undefined, saddr: [], owner: undefined }] })).toThrow();
    expect(() => renderNft({ rules: [{ handle: 1.5, comment: undefined, saddr: [], owner: undefined }] })).toThrow();
  });
});
