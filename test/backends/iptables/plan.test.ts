import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chainName, chainNames, iptablesComment, type Attachment } from '../../src/identity.js';
import { parseListing, parseSave } from '../../src/plan/iptables-save.js';
import { isEmptyPlan, planAttachmentTeardown, planSelection } from '../../src/plan/iptables-plan.js';
import { renderRestore } from '../../src/plan/restore-text.js';
import { applyRestore, bridgeRules, quote, toSave, type NatModel } from '../support/nat-model.js';

const A: Attachment = { network: 'bridge', containerId: 'default-c1' };
const B: Attachment = { network: 'bridge', containerId: 'default-c2' };

function modelOf(...parts: { chain: string; rules: string[] }[]): NatModel {
  return { chains: parts.map((p) => p.chain), rules: parts.flatMap((p) => p.rules) };
}

const FOREIGN_RULES = [
  '-A POSTROUTING -s 192.168.77.0/24 -j MASQUERADE',
  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  '-A DOCKER -i docker0 -j RETURN',
  `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ${quote('dnat name: "bridge" id: "default-c1"')} -m multiport --dports 80 -j CNI-DN-4095fe68ef51b84d4d4bd`,
];
const FOREIGN_CHAINS = ['KUBE-POSTROUTING', 'DOCKER', 'CNI-HOSTPORT-DNAT', 'CNI-DN-4095fe68ef51b84d4d4bd'];

describe('planAttachmentTeardown', () => {
  it('removes the jump, the rules and the chain in one nat transaction', () => {
    const m = modelOf(bridgeRules(A, '10.4.0.2', '10.4.0.0/24'), bridgeRules(B, '10.4.0.3', '10.4.0.0/24'));
    const plan = planAttachmentTeardown(parseSave(toSave(m)), A, 'remove-chain');
    const text = renderRestore(plan);
    expect(text).toBe(
      [
        '*nat',
        `:${chainName(A)} - [0:0]`,
        `-D POSTROUTING -s 10.4.0.2/32 -m comment --comment ${quote(iptablesComment(A))} -j ${chainName(A)}`,
        `-X ${chainName(A)}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(applyRestore(m, text)).toEqual(modelOf(bridgeRules(B, '10.4.0.3', '10.4.0.0/24')));
  });

  it('finds stale jumps of earlier runs and the legacy subnet jump', () => {
    const cur = bridgeRules(A, '10.4.0.9', '10.4.0.0/24');
    const stale = `-A POSTROUTING -s 10.4.0.5/32 -m comment --comment ${quote(iptablesComment(A))} -j ${chainName(A)}`;
    const subnet = `-A POSTROUTING -s 10.4.0.0/24 -m comment --comment ${quote(iptablesComment(A))} -j ${chainName(A)}`;
    const m: NatModel = { chains: [cur.chain], rules: [stale, subnet, ...cur.rules] };
    const plan = planAttachmentTeardown(parseSave(toSave(m)), A, 'remove-chain');
    expect(plan.jumps).toHaveLength(3);
    expect(applyRestore(m, renderRestore(plan))).toEqual({ chains: [], rules: [] });
  });

  it('keeps the emptied chain for bridge when bridge will tear down', () => {
    const m = modelOf(bridgeRules(A, '10.4.0.2', '10.4.0.0/24'));
    const plan = planAttachmentTeardown(parseSave(toSave(m)), A, 'keep-empty-chain');
    expect(plan.remove).toEqual([]);
    expect(applyRestore(m, renderRestore(plan))).toEqual({ chains: [chainName(A)], rules: [] });
  });

  it('never declares a chain it has not seen, which would create it (and its nat table)', () => {
    for (const policy of ['keep-empty-chain', 'remove-chain'] as const) {
      expect(isEmptyPlan(planAttachmentTeardown(parseListing('-P POSTROUTING ACCEPT\n'), A, policy))).toBe(true);
    }
  });

  it('leaves whole a chain that a rule of another chain enters by goto', () => {
    const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
    const user = `-A USER-MASQ -s 10.9.0.7/32 -g ${chainName(A)}`;
    const m: NatModel = { chains: [ours.chain, 'USER-MASQ'], rules: [...ours.rules, user] };
    const plan = planAttachmentTeardown(parseSave(toSave(m)), A, 'remove-chain');
    expect(plan.flush).toEqual([]);
    expect(applyRestore(m, renderRestore(plan)).rules).toEqual([...ours.rules.slice(1), user]);
  });

  it('takes only its jumps from a chain something else jumps to (shared by a hash collision, or not ours)', () => {
    const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
    const forged = `-A POSTROUTING -s 10.9.9.9/32 -j ${chainName(A)}`;
    const m: NatModel = { chains: [ours.chain], rules: [...ours.rules, forged] };
    const plan = planAttachmentTeardown(parseSave(toSave(m)), A, 'remove-chain');
    expect(plan.remove).toEqual([]);
    expect(plan.flush).toEqual([]);
    expect(applyRestore(m, renderRestore(plan)).rules).toEqual([...ours.rules.slice(1), forged]);
  });
});

// ---- properties -----------------------------------------------------------

const nameArb = fc.constantFrom('bridge', 'podman', 'containerd-net', 'net-a', 'br');
const idArb = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/);
const attachmentArb = fc.record({ network: nameArb, containerId: idArb });

interface Generated {
  model: NatModel;
  attachments: Attachment[];
}

/** Random tables: many attachments (some with stale or subnet jumps, some emptied), and foreign rules. */
const tableArb: fc.Arbitrary<Generated> = fc
  .record({
    attachments: fc.uniqueArray(attachmentArb, { minLength: 1, maxLength: 12, selector: (a) => `${a.network}/${a.containerId}` }),
    extraJumps: fc.array(fc.nat(11), { maxLength: 6 }),
    emptied: fc.array(fc.nat(11), { maxLength: 3 }),
    foreign: fc.subarray(FOREIGN_RULES),
    forgedFor: fc.array(fc.nat(11), { maxLength: 2 }),
    shuffleSeed: fc.nat(),
  })
  .map(({ attachments, extraJumps, emptied, foreign, forgedFor, shuffleSeed }) => {
    const chains: string[] = [...FOREIGN_CHAINS];
    const rules: string[] = [...foreign];
    attachments.forEach((a, i) => {
      const ip = `10.${i}.0.${(i % 200) + 2}`;
      const r = bridgeRules(a, ip, `10.${i}.0.0/24`);
      chains.push(r.chain);
      if (!emptied.includes(i)) rules.push(...r.rules);
    });
    extraJumps.forEach((k, j) => {
      const a = attachments[k % attachments.length] as Attachment;
      rules.push(`-A POSTROUTING -s 172.16.${j}.1/32 -m comment --comment ${quote(iptablesComment(a))} -j ${chainName(a)}`);
    });
    forgedFor.forEach((k) => {
      const a = attachments[k % attachments.length] as Attachment;
      // Our chain's name, somebody else's comment: not ours to delete.
      rules.push(`-A POSTROUTING -s 10.200.0.1/32 -m comment --comment ${quote('name: "other" id: "x"')} -j ${chainName(a)}`);
    });
    // Deterministic shuffle of rule order: listing order must not matter.
    const shuffled = rules.map((r, i) => ({ r, k: (i * 7919 + shuffleSeed) % 104729 })).sort((x, y) => x.k - y.k).map((x) => x.r);
    return { model: { chains, rules: shuffled }, attachments };
  });

/**
 * The rules a plan for attachment a may remove: its commented jumps, and its
 * chain's rules unless something that is not its jump also enters the chain.
 */
function identityRules(m: NatModel, a: Attachment): string[] {
  const names = chainNames(a);
  const c = quote(iptablesComment(a));
  const own = (r: string, n: string): boolean => r.endsWith(` -j ${n}`) && r.includes(`--comment ${c}`);
  const shared = (n: string): boolean => m.rules.some((r) => r.endsWith(` -j ${n}`) && !own(r, n));
  return m.rules.filter((r) => names.some((n) => own(r, n) || (r.startsWith(`-A ${n} `) && !shared(n))));
}

describe('planner properties', () => {
  it('the DEL plan for (net, id) removes exactly the rules with that identity, and is valid restore input', () => {
    fc.assert(
      fc.property(tableArb, fc.nat(), fc.constantFrom('remove-chain', 'keep-empty-chain') as fc.Arbitrary<'remove-chain' | 'keep-empty-chain'>, (g, pick, policy) => {
        const target = g.attachments[pick % g.attachments.length] as Attachment;
        const plan = planAttachmentTeardown(parseSave(toSave(g.model)), target, policy);
        const after = applyRestore(g.model, renderRestore(plan)); // throws on any line outside the grammar or an impossible step
        const expected = g.model.rules.filter((r) => !identityRules(g.model, target).includes(r));
        expect(after.rules).toEqual(expected);
        // Foreign chains and other attachments' chains all survive.
        for (const c of g.model.chains) if (c !== chainName(target)) expect(after.chains).toContain(c);
      }),
      { numRuns: 300 },
    );
  });

  it('the DEL plan from a POSTROUTING-only listing does the same to the full table', () => {
    fc.assert(
      fc.property(tableArb, fc.nat(), (g, pick) => {
        const target = g.attachments[pick % g.attachments.length] as Attachment;
        // What DEL reads: the POSTROUTING listing, plus `-S <chain>` telling whether its own chain exists.
        const own = g.model.chains.includes(chainName(target)) ? [`-N ${chainName(target)}`] : [];
        const postrouting = ['-P POSTROUTING ACCEPT', ...own, ...g.model.rules.filter((r) => r.startsWith('-A POSTROUTING '))].join('\n');
        const plan = planAttachmentTeardown(parseListing(postrouting), target, 'remove-chain');
        const after = applyRestore(g.model, renderRestore(plan));
        expect(after.rules).toEqual(g.model.rules.filter((r) => !identityRules(g.model, target).includes(r)));
      }),
      { numRuns: 300 },
    );
  });

  it('a selection plan never touches an attachment it did not select, nor a foreign rule', () => {
    fc.assert(
      fc.property(tableArb, fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }), (g, doomedFlags) => {
        const doomed = g.attachments.filter((_, i) => doomedFlags[i]);
        const key = (a: Attachment) => `${a.network}/${a.containerId}`;
        const doomedKeys = new Set(doomed.map(key));
        const plan = planSelection(parseSave(toSave(g.model)), (a) => doomedKeys.has(key(a)));
        const after = applyRestore(g.model, renderRestore(plan));
        const gone = new Set(doomed.flatMap((a) => identityRules(g.model, a)));
        expect(after.rules).toEqual(g.model.rules.filter((r) => !gone.has(r)));
        for (const o of plan.owners) expect(doomedKeys.has(key(o))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
