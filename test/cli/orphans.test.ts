import { describe, expect, it } from 'vitest';
import { chainName, iptablesComment, nftComment, type Attachment } from '../../src/identity.js';
import { parseSave, type Snapshot } from '../../src/backends/iptables/parse.js';
import { planIptables, type IptablesPlan } from '../../src/backends/iptables/plan.js';
import { parseNftListing, type NftRule } from '../../src/backends/nft/parse.js';
import { planNft, type NftPlan } from '../../src/backends/nft/plan.js';
import type { InterfaceRef } from '../../src/backends/selection.js';
import { describeIptables, describeNft, renderTable, type OrphanRow } from '../../src/cli/orphans.js';
import { bridgeRules, quote, toSave, type NatModel } from '../support/nat-model.js';

/** Whole containers doomed by a predicate, through the one planner per backend. */
const planSelection = (snapshot: Snapshot, doomed: (a: Attachment) => boolean): IptablesPlan =>
  planIptables(snapshot, { interfaceGone: (r) => doomed(r), containerGone: doomed }, { recreate: false, conservative: false });
const planNftSelection = (rules: readonly NftRule[], doomed: (r: InterfaceRef) => boolean): NftPlan => planNft(rules, { interfaceGone: doomed, containerGone: () => false });

const A: Attachment = { network: 'bridge', containerId: 'default-a' };
const B: Attachment = { network: 'bridge', containerId: 'default-b' };
const P: Attachment = { network: 'podman', containerId: 'default-a' };
const WHY = 'not in /var/lib/cni/results nor /var/lib/cni/networks';
const key = (a: Attachment): string => `${a.network}/${a.containerId}`;

describe('describeIptables', () => {
  const a = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
  const b = bridgeRules(B, '10.4.0.3', '10.4.0.0/24');
  const p = bridgeRules(P, '10.5.0.2', '10.5.0.0/24');
  // A has a second IP (a second jump into its chain).
  const a2 = `-A POSTROUTING -s 10.4.0.9/32 -m comment --comment ${quote(iptablesComment(A))} -j ${chainName(A)}`;
  const model: NatModel = { chains: [a.chain, b.chain, p.chain], rules: [...a.rules, a2, ...b.rules, ...p.rules] };
  const snapshot = parseSave(toSave(model));

  it('one row per doomed attachment: its chain, how many rules go, its source IPs', () => {
    const doomed = new Set([key(A), key(P)]);
    const rows = describeIptables('iptables-nft v4', snapshot, planSelection(snapshot, (x) => doomed.has(key(x))), WHY);
    const byKey = new Map(rows.map((r) => [`${r.network}/${r.containerId}`, r]));
    expect(rows).toHaveLength(2);
    expect(byKey.get(key(A))).toEqual({
      network: 'bridge',
      containerId: 'default-a',
      where: 'iptables-nft v4',
      object: chainName(A),
      rules: 4, // 2 in the chain + 2 jumps
      ips: ['10.4.0.2/32', '10.4.0.9/32'],
      why: WHY,
    });
    expect(byKey.get(key(P))).toMatchObject({ object: chainName(P), rules: 3, ips: ['10.5.0.2/32'] });
  });

  it('an attachment with nothing left but a jump into an empty chain still gets its row', () => {
    const m: NatModel = { chains: [a.chain], rules: [a.rules[0] as string] };
    const snap = parseSave(toSave(m));
    const rows = describeIptables('iptables-legacy v4', snap, planSelection(snap, () => true), WHY);
    expect(rows).toEqual([{ network: 'bridge', containerId: 'default-a', where: 'iptables-legacy v4', object: chainName(A), rules: 1, ips: ['10.4.0.2/32'], why: WHY }]);
  });

  it('a chain with rules but no jump left is reported without IPs', () => {
    const m: NatModel = { chains: [a.chain], rules: a.rules.slice(1) };
    const snap = parseSave(toSave(m));
    const rows = describeIptables('ip6tables-nft v6', snap, planSelection(snap, () => true), WHY);
    expect(rows).toEqual([{ network: 'bridge', containerId: 'default-a', where: 'ip6tables-nft v6', object: chainName(A), rules: 2, ips: [], why: WHY }]);
  });

  it('one interface of a live container (its jump goes, the chain stays) is a "(jump only)" row', () => {
    const live = (r: InterfaceRef): boolean => key(r) === key(A) && r.source === '10.4.0.9/32';
    const plan = planIptables(snapshot, { interfaceGone: live, containerGone: () => false }, { recreate: false, conservative: false });
    const rows = describeIptables('iptables-nft v4', snapshot, plan, WHY);
    expect(rows).toEqual([{ network: 'bridge', containerId: 'default-a', where: 'iptables-nft v4', object: '(jump only)', rules: 1, ips: ['10.4.0.9/32'], why: WHY }]);
  });

  it('nothing doomed, no rows', () => {
    expect(describeIptables('iptables v4', snapshot, planSelection(snapshot, () => false), WHY)).toEqual([]);
  });
});

describe('describeNft', () => {
  const longId = 'default-' + 'ab'.repeat(32);
  const rules = parseNftListing(
    JSON.stringify({
      nftables: [
        { rule: { family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks', handle: 4, comment: nftComment('bridge', 'eth0', 'c1'), expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '10.88.0.2' } }, { masquerade: null }] } },
        { rule: { family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks', handle: 5, comment: nftComment('bridge', 'eth0', longId), expr: [{ match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: 'fd00::5' } }, { masquerade: null }] } },
        { rule: { family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks', handle: 6, expr: [{ masquerade: null }] } },
      ],
    }),
  );

  it('one row per rule, with a mark on ids the comment cut short', () => {
    const rows = describeNft(planNftSelection(rules, () => true), WHY);
    expect(rows).toEqual([
      { network: 'bridge', containerId: 'c1', where: 'nft inet', object: 'masq_checks handle 4', rules: 1, ips: ['10.88.0.2'], why: WHY },
      { network: 'bridge', containerId: `${longId.slice(0, 66)}…`, where: 'nft inet', object: 'masq_checks handle 5', rules: 1, ips: ['fd00::5'], why: WHY },
    ]);
  });

  it('a rule planned without a proven owner is shown with question marks', () => {
    const rows = describeNft({ rules: [rules[2] as (typeof rules)[number]] }, WHY);
    expect(rows).toEqual([{ network: '?', containerId: '?', where: 'nft inet', object: 'masq_checks handle 6', rules: 1, ips: [], why: WHY }]);
  });
});

describe('renderTable', () => {
  const rows: OrphanRow[] = [
    { network: 'bridge', containerId: 'c1', where: 'nft inet', object: 'masq_checks handle 4', rules: 1, ips: ['10.88.0.2'], why: 'gone' },
    { network: 'k8s-pod-network', containerId: 'c22', where: 'iptables-nft v4', object: 'CNI-0123456789abcdef01234567', rules: 3, ips: [], why: 'gone' },
  ];

  it('aligns columns under a header, shows "-" for no IPs, and does not pad the last column', () => {
    const lines = renderTable(rows).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('');
    expect(lines[0]).toBe('NETWORK          CONTAINER ID  WHERE            OBJECT                        RULES  IPS        WHY');
    expect(lines[1]).toBe('bridge           c1            nft inet         masq_checks handle 4          1      10.88.0.2  gone');
    expect(lines[2]).toBe('k8s-pod-network  c22           iptables-nft v4  CNI-0123456789abcdef01234567  3      -          gone');
    // Every column starts at the same offset on every line.
    for (const col of ['CONTAINER ID', 'WHERE', 'OBJECT', 'RULES', 'IPS', 'WHY']) {
      const at = (lines[0] as string).indexOf(col);
      expect((lines[1] as string)[at - 1]).toBe(' ');
      expect((lines[1] as string)[at]).not.toBe(' ');
    }
  });

  it('no rows is a header only', () => {
    expect(renderTable([])).toBe('NETWORK  CONTAINER ID  WHERE  OBJECT  RULES  IPS  WHY\n');
  });
});
