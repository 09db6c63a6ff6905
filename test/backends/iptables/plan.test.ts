import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseCidr } from '../../../src/address.js';
import { parseListing, parseSave, type Snapshot } from '../../../src/backends/iptables/parse.js';
import { assumedSnapshot, doomedBy, EMPTY_PLAN, isEmptyPlan, jumpOwner, planIptables, sourceOf, type IptablesPlan } from '../../../src/backends/iptables/plan.js';
import { renderRecreate, renderRestore } from '../../../src/backends/iptables/render.js';
import type { ChainMode, InterfaceRef, Selection } from '../../../src/backends/selection.js';
import { NOTHING } from '../../../src/backends/selection.js';
import { chainName, chainNames, iptablesComment, parseIptablesComment, type Attachment } from '../../../src/identity.js';
import { delSelection } from '../../../src/records/selections.js';
import { applyRestore, bridgeRules, quote, references, RestoreError, toSave, type NatModel } from '../../support/nat-model.js';

const A: Attachment = { network: 'bridge', containerId: 'default-c1' };
const B: Attachment = { network: 'bridge', containerId: 'default-c2' };
const KEEP: ChainMode = { recreate: false, conservative: false };
const RECREATE: ChainMode = { recreate: true, conservative: false };
const CONSERVATIVE: ChainMode = { recreate: false, conservative: true };
const MODES = [KEEP, RECREATE, CONSERVATIVE, { recreate: true, conservative: true }] as const;

const key = (a: Attachment): string => `${a.network}/${a.containerId}`;

/** Whole containers gone: every interface, and what they share. */
function gone(...as: Attachment[]): Selection {
  const set = new Set(as.map(key));
  return { interfaceGone: (r) => set.has(key(r)), containerGone: (a) => set.has(key(a)) };
}

/** Only these sources of a container gone; the container itself lives on. */
function sourcesGone(a: Attachment, ...ips: string[]): Selection {
  return {
    interfaceGone: (r) => key(r) === key(a) && r.source !== undefined && ips.some((ip) => `${parseCidr(ip)?.ip}/${parseCidr(ip)?.prefix}` === r.source),
    containerGone: () => false,
  };
}

function modelOf(...parts: { chain: string; rules: string[] }[]): NatModel {
  return { chains: parts.map((p) => p.chain), rules: parts.flatMap((p) => p.rules) };
}

const snap = (m: NatModel): Snapshot => parseSave(toSave(m));

/** The plan's transaction, then (if it succeeded) the second one that creates bridge's empty chains again. */
function applyPlan(m: NatModel, plan: IptablesPlan, patterns?: readonly RegExp[]): NatModel {
  const after = applyRestore(m, renderRestore(plan, patterns));
  const again = renderRecreate(plan, patterns);
  return again === undefined ? after : applyRestore(after, again);
}
const jumpLine = (a: Attachment, ip: string, chain = chainName(a)): string => `-A POSTROUTING -s ${ip}/32 -m comment --comment ${quote(iptablesComment(a))} -j ${chain}`;

describe('planIptables: one attachment gone', () => {
  it('removes the jump, the rules and the chain in one nat transaction', () => {
    const m = modelOf(bridgeRules(A, '10.4.0.2', '10.4.0.0/24'), bridgeRules(B, '10.4.0.3', '10.4.0.0/24'));
    const plan = planIptables(snap(m), gone(A), KEEP);
    const text = renderRestore(plan);
    expect(text).toBe(['*nat', `:${chainName(A)} - [0:0]`, `-D ${jumpLine(A, '10.4.0.2').slice(3)}`, `-X ${chainName(A)}`, 'COMMIT', ''].join('\n'));
    expect(applyRestore(m, text)).toEqual(modelOf(bridgeRules(B, '10.4.0.3', '10.4.0.0/24')));
    expect(plan.owners).toEqual([A]);
  });

  it('finds stale jumps of earlier runs and the legacy subnet jump', () => {
    const cur = bridgeRules(A, '10.4.0.9', '10.4.0.0/24');
    const stale = jumpLine(A, '10.4.0.5');
    const subnet = `-A POSTROUTING -s 10.4.0.0/24 -m comment --comment ${quote(iptablesComment(A))} -j ${chainName(A)}`;
    const m: NatModel = { chains: [cur.chain], rules: [stale, subnet, ...cur.rules] };
    const plan = planIptables(snap(m), gone(A), KEEP);
    expect(plan.jumps).toHaveLength(3);
    expect(applyRestore(m, renderRestore(plan))).toEqual({ chains: [], rules: [] });
  });

  it('with mode.recreate every deleted chain is created again, empty, in the same transaction', () => {
    const m = modelOf(bridgeRules(A, '10.4.0.2', '10.4.0.0/24'), bridgeRules(B, '10.4.0.3', '10.4.0.0/24'));
    const plan = planIptables(snap(m), gone(A, B), RECREATE);
    expect(plan.recreate).toEqual(plan.chains);
    const text = renderRestore(plan);
    const again = renderRecreate(plan) ?? '';
    for (const c of plan.chains) {
      expect(text).toContain(`\n-X ${c}\n`);
      // Never -N beside -X in one batch: iptables-nft's replay loses it.
      expect(text).not.toContain(`-N ${c}`);
      expect(again).toContain(`\n-N ${c}\n`);
    }
    expect(applyPlan(m, plan)).toEqual({ chains: plan.chains, rules: [] });
    expect(planIptables(snap(m), gone(A, B), KEEP).recreate).toEqual([]);
    expect(renderRecreate(planIptables(snap(m), gone(A, B), KEEP))).toBeUndefined();
  });

  it('never declares a chain it has not seen, which would create it (and its nat table)', () => {
    for (const mode of MODES) expect(isEmptyPlan(planIptables(parseListing('-P POSTROUTING ACCEPT\n'), gone(A), mode))).toBe(true);
  });

  it('nothing doomed, nothing planned', () => {
    const m = modelOf(bridgeRules(A, '10.4.0.2', '10.4.0.0/24'));
    expect(planIptables(snap(m), NOTHING, KEEP)).toEqual(EMPTY_PLAN);
  });

  it('an empty chain with our name and nothing entering it goes only if the selection claims it', () => {
    const m: NatModel = { chains: [chainName(A)], rules: [] };
    expect(planIptables(snap(m), gone(A), KEEP).chains).toEqual([]);
    const claims: Selection = { ...gone(A), claimsEmptyChain: (c) => c === chainName(A) };
    expect(planIptables(snap(m), claims, KEEP).chains).toEqual([chainName(A)]);
    // Not when something enters it.
    const entered: NatModel = { chains: [chainName(A), 'USER'], rules: [`-A USER -j ${chainName(A)}`] };
    expect(planIptables(snap(entered), claims, KEEP).chains).toEqual([]);
  });
});

describe('reference safety: a chain a non-doomed rule enters is never in chains (issue 9 failure 2)', () => {
  const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
  const C = chainName(A);
  it.each([
    ['OUTPUT -j', `-A OUTPUT -j ${C}`],
    ['OUTPUT --jump', `-A OUTPUT -d 10.0.0.0/8 --jump ${C}`],
    ['user chain -g', `-A USER-MASQ -s 10.9.0.7/32 -g ${C}`],
    ['user chain --goto', `-A USER-MASQ --goto ${C}`],
    ['POSTROUTING without our comment', `-A POSTROUTING -s 10.9.9.9/32 -j ${C}`],
    ['POSTROUTING with another attachment’s comment', jumpLine(B, '10.9.9.9', C)],
    ['PREROUTING', `-A PREROUTING -m addrtype --dst-type LOCAL -j ${C}`],
  ])('%s', (_, entering) => {
    const m: NatModel = { chains: [ours.chain, 'USER-MASQ'], rules: [...ours.rules, entering] };
    for (const mode of MODES) {
      const plan = planIptables(snap(m), gone(A), mode);
      expect(plan.chains).toEqual([]);
      // The jump that is ours still goes; the chain's rules and the foreign rule stay.
      expect(plan.jumps.map((j) => j.line)).toEqual([ours.rules[0]]);
      expect(applyRestore(m, renderRestore(plan)).rules).toEqual([...ours.rules.slice(1), entering]);
    }
  });

  it('DEL from a POSTROUTING-only listing never empties the chain: it is always -X’d, so an unseen entering rule makes the kernel refuse', () => {
    const user = `-A USER-MASQ -g ${C}`;
    const m: NatModel = { chains: [ours.chain, 'USER-MASQ'], rules: [...ours.rules, user] };
    const listing = parseListing(['-P POSTROUTING ACCEPT', `-N ${C}`, ours.rules[0]].join('\n'));
    for (const mode of [KEEP, RECREATE]) {
      const plan = planIptables(listing, delSelection({ ...A, ifname: 'eth0' }, { prevIps: ['10.4.0.2'], others: [], bridgeTearsDown: mode.recreate }), mode);
      expect(plan.chains).toEqual([C]);
      // The chain is never flushed without -X: the transaction fails whole instead of emptying it.
      expect(() => applyRestore(m, renderRestore(plan))).toThrow(RestoreError);
    }
  });
});

describe('ownership (collision and foreign comments)', () => {
  afterEach(() => {
    vi.doUnmock('../../../src/identity.js');
    vi.resetModules();
  });

  it('two attachments hashing to one chain name: the chain stays while either is alive', async () => {
    const COL = 'CNI-' + 'c'.repeat(24);
    vi.resetModules();
    vi.doMock('../../../src/identity.js', async (importOriginal) => {
      const real = await importOriginal<typeof import('../../../src/identity.js')>();
      const collide = (a: Attachment): boolean => a.containerId === A.containerId || a.containerId === B.containerId;
      return { ...real, chainName: (a: Attachment) => (collide(a) ? COL : real.chainName(a)), chainNames: (a: Attachment) => (collide(a) ? [COL] : real.chainNames(a)) };
    });
    const { planIptables: plan } = await import('../../../src/backends/iptables/plan.js');
    const ca = quote(iptablesComment(A));
    const cb = quote(iptablesComment(B));
    const m: NatModel = {
      chains: [COL],
      rules: [
        `-A POSTROUTING -s 10.4.0.2/32 -m comment --comment ${ca} -j ${COL}`,
        `-A POSTROUTING -s 10.4.0.3/32 -m comment --comment ${cb} -j ${COL}`,
        `-A ${COL} -d 10.4.0.0/24 -m comment --comment ${ca} -j ACCEPT`,
        `-A ${COL} -d 10.4.0.0/24 -m comment --comment ${cb} -j ACCEPT`,
        `-A ${COL} ! -d 224.0.0.0/4 -m comment --comment ${ca} -j MASQUERADE`,
      ],
    };
    for (const mode of MODES) {
      const onlyA = plan(snap(m), gone(A), mode);
      expect(onlyA.chains).toEqual([]);
      expect(onlyA.jumps.map((j) => j.source)).toEqual(['10.4.0.2/32']);
      expect(plan(snap(m), gone(B), mode).chains).toEqual([]);
      // Both gone: the chain goes with both jumps.
      const both = plan(snap(m), gone(A, B), mode);
      expect(both.chains).toEqual([COL]);
      expect(both.jumps).toHaveLength(2);
      expect(applyPlan(m, both, [/^CNI-c{24}$/])).toEqual({ chains: mode.recreate ? [COL] : [], rules: [] });
      // B's jump already gone (a DEL of B's only interface in flight), its rules still in the shared chain: B's claim alone keeps it.
      const noJumpB: NatModel = { chains: m.chains, rules: m.rules.filter((r) => !r.includes('10.4.0.3/32')) };
      expect(plan(snap(noJumpB), gone(A), mode).chains).toEqual([]);
      expect(plan(snap(noJumpB), gone(A, B), mode).chains).toEqual([COL]);
    }
  });

  it('a chain whose rules carry a foreign comment (or none) stays; the jump still goes', () => {
    const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
    for (const extra of [`-A ${ours.chain} -m comment --comment ${quote('name: "other" id: "x"')} -j RETURN`, `-A ${ours.chain} -j RETURN`, `-A ${ours.chain} -m comment --comment ${quote(iptablesComment(B))} -j RETURN`]) {
      const m: NatModel = { chains: [ours.chain], rules: [...ours.rules, extra] };
      for (const mode of MODES) {
        const plan = planIptables(snap(m), gone(A, B), mode);
        expect(plan.chains).toEqual([]);
        expect(plan.jumps.map((j) => j.line)).toEqual([ours.rules[0]]);
      }
    }
  });

  it('a jump is ours only if certain, commented with an attachment, into that attachment’s chain', () => {
    const r = snap({ chains: [], rules: [jumpLine(A, '10.4.0.2'), jumpLine(A, '10.4.0.3', chainName(B)), `-A POSTROUTING -s 10.4.0.4/32 -j ${chainName(A)}`, `-A POSTROUTING -s 10.4.0.5/32 -m comment --comment ${quote(iptablesComment(A))} -m frob --flag -j ${chainName(A)}`] }).rules;
    expect(r.map((x) => jumpOwner(x))).toEqual([A, undefined, undefined, undefined]);
    expect(sourceOf(r[0] as (typeof r)[number])).toBe('10.4.0.2/32');
  });
});

describe('conservative mode counts uncertain lines', () => {
  const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
  const C = chainName(A);
  const recent = `-A OUTPUT -m recent --set --name -j ${C} --mask 255.255.255.255 --rsource`;
  const m: NatModel = { chains: [ours.chain], rules: [...ours.rules, recent] };

  it('first attempt: an uncertain line does not block the chain (the kernel answers); the model refuses like the kernel would', () => {
    const plan = planIptables(snap(m), gone(A), KEEP);
    expect(plan.chains).toEqual([C]);
    expect(() => applyRestore(m, renderRestore(plan))).toThrow(/referenced/);
  });

  it('conservative retry: the chain it mentions stays, the certain jump still goes', () => {
    const plan = planIptables(snap(m), gone(A), CONSERVATIVE);
    expect(plan.chains).toEqual([]);
    expect(plan.jumps.map((j) => j.line)).toEqual([ours.rules[0]]);
    expect(applyRestore(m, renderRestore(plan)).rules).toEqual([...ours.rules.slice(1), recent]);
  });

  it('an uncertain line is never doomed, whatever its comment', () => {
    const odd = `-A POSTROUTING -s 10.4.0.7/32 -m comment --comment ${quote(iptablesComment(A))} -m frob --flag -j ${C}`;
    for (const mode of MODES) {
      const plan = planIptables(snap({ chains: [ours.chain], rules: [...ours.rules, odd] }), gone(A), mode);
      expect(plan.jumps.map((j) => j.line)).not.toContain(odd);
    }
  });
});

describe('within only shrinks', () => {
  const a = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
  const b = bridgeRules(B, '10.4.0.3', '10.4.0.0/24');

  it('a retry never dooms what the first plan did not, even when the selection now dooms more', () => {
    const m = modelOf(a, b);
    const p1 = planIptables(snap(m), gone(A), KEEP);
    const p2 = planIptables(snap(m), gone(A, B), KEEP, doomedBy(p1));
    expect(p2).toEqual(p1);
  });

  it('a retry may doom less: a new jump into the chain keeps it', () => {
    const m = modelOf(a);
    const p1 = planIptables(snap(m), gone(A), KEEP);
    const moved: NatModel = { chains: m.chains, rules: [...m.rules, `-A OUTPUT -j ${a.chain}`] };
    const p2 = planIptables(snap(moved), gone(A), KEEP, doomedBy(p1));
    expect(p2.chains).toEqual([]);
    expect(p2.jumps.map((j) => j.line)).toEqual([a.rules[0]]);
  });

  it('a retry whose records now show the container alive dooms nothing', () => {
    const m = modelOf(a);
    const p1 = planIptables(snap(m), gone(A), KEEP);
    expect(isEmptyPlan(planIptables(snap(m), NOTHING, KEEP, doomedBy(p1)))).toBe(true);
  });
});

describe('per interface', () => {
  const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
  const second = jumpLine(A, '10.4.0.3');
  const m: NatModel = { chains: [ours.chain], rules: [ours.rules[0] as string, second, ...ours.rules.slice(1)] };

  it('two jumps into one chain, only one doomed: that jump goes, the chain stays', () => {
    for (const mode of MODES) {
      const plan = planIptables(snap(m), sourcesGone(A, '10.4.0.2'), mode);
      expect(plan.jumps.map((j) => j.line)).toEqual([ours.rules[0]]);
      expect(plan.chains).toEqual([]);
    }
  });

  it('both jumps doomed but the container is not gone: the chain still stays', () => {
    const plan = planIptables(snap(m), sourcesGone(A, '10.4.0.2', '10.4.0.3'), KEEP);
    expect(plan.jumps).toHaveLength(2);
    expect(plan.chains).toEqual([]);
  });
});

describe('assumedSnapshot (DEL without reading)', () => {
  it('is bridge’s jump per address and its chain; planned and applied to the real shape it removes everything', () => {
    const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
    const assumed = assumedSnapshot(A, ['10.4.0.2'], 4);
    expect(assumed).toBeDefined();
    const plan = planIptables(assumed as Snapshot, gone(A), KEEP);
    expect(plan.chains).toEqual([chainName(A)]);
    expect(applyRestore(modelOf(ours), renderRestore(plan))).toEqual({ chains: [], rules: [] });
  });

  it('IPv6 in any spelling gives the line iptables prints', () => {
    const ours = bridgeRules(A, 'fd00::5', 'fd00::/64', 6);
    const plan = planIptables(assumedSnapshot(A, ['fd00:0::5'], 6) as Snapshot, gone(A), KEEP);
    expect(applyRestore(modelOf(ours), renderRestore(plan))).toEqual({ chains: [], rules: [] });
  });

  it('if the table is otherwise (another jump into the chain), the transaction fails whole', () => {
    const ours = bridgeRules(A, '10.4.0.2', '10.4.0.0/24');
    const m: NatModel = { chains: [ours.chain], rules: [...ours.rules, `-A OUTPUT -j ${ours.chain}`] };
    const plan = planIptables(assumedSnapshot(A, ['10.4.0.2'], 4) as Snapshot, gone(A), KEEP);
    expect(() => applyRestore(m, renderRestore(plan))).toThrow(RestoreError);
  });

  it('refuses what it cannot assume: no IPs, a wrong family, an unreadable IP', () => {
    expect(assumedSnapshot(A, [], 4)).toBeUndefined();
    expect(assumedSnapshot(A, ['fd00::5'], 4)).toBeUndefined();
    expect(assumedSnapshot(A, ['10.0.0.2'], 6)).toBeUndefined();
    expect(assumedSnapshot(A, ['10.0.0.300'], 4)).toBeUndefined();
  });
});

// ---- properties -----------------------------------------------------------

const nameArb = fc.constantFrom('bridge', 'podman', 'containerd-net', 'net-a', 'br');
const idArb = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/);
const attachmentArb = fc.record({ network: nameArb, containerId: idArb });

interface Generated {
  readonly model: NatModel;
  readonly attachments: readonly Attachment[];
  /** Per attachment, the sources of its jumps (host form). */
  readonly sources: readonly (readonly string[])[];
  readonly foreign: readonly string[];
  readonly uncertain: boolean;
}

const FIXED_FOREIGN = [
  '-A POSTROUTING -s 192.168.77.0/24 -j MASQUERADE',
  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  '-A DOCKER -i docker0 -j RETURN',
  `-A POSTROUTING -m comment --comment ${quote('see -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa')} -j RETURN`,
];
const FOREIGN_CHAINS = ['KUBE-POSTROUTING', 'DOCKER', 'USER-MASQ'];

/** Foreign rules aimed at an attachment's chain, by index. */
const aimedArb = fc.record({
  k: fc.nat(11),
  kind: fc.constantFrom('output-j', 'user-g', 'forged', 'other-comment', 'inside-foreign', 'recent'),
});

const tableArb = (withUncertain: boolean): fc.Arbitrary<Generated> =>
  fc
    .record({
      attachments: fc.uniqueArray(attachmentArb, { minLength: 1, maxLength: 10, selector: (a) => key(a) }),
      extraJumps: fc.array(fc.nat(11), { maxLength: 6 }),
      emptied: fc.array(fc.nat(11), { maxLength: 3 }),
      fixed: fc.subarray(FIXED_FOREIGN),
      aimed: fc.array(aimedArb, { maxLength: 4 }),
      seed: fc.nat(),
    })
    .map(({ attachments, extraJumps, emptied, fixed, aimed, seed }) => {
      const chains: string[] = [...FOREIGN_CHAINS];
      const ours: string[] = [];
      const sources: string[][] = attachments.map(() => []);
      attachments.forEach((a, i) => {
        const ip = `10.${i}.0.2`;
        const r = bridgeRules(a, ip, `10.${i}.0.0/24`);
        chains.push(r.chain);
        if (!emptied.includes(i)) {
          ours.push(...r.rules);
          (sources[i] as string[]).push(`${ip}/32`);
        }
      });
      extraJumps.forEach((k, j) => {
        const i = k % attachments.length;
        const a = attachments[i] as Attachment;
        ours.push(jumpLine(a, `172.16.${j}.1`));
        (sources[i] as string[]).push(`172.16.${j}.1/32`);
      });
      const foreign = [...fixed];
      let uncertain = false;
      for (const { k, kind } of aimed) {
        const a = attachments[k % attachments.length] as Attachment;
        const c = chainName(a);
        if (kind === 'output-j') foreign.push(`-A OUTPUT -j ${c}`);
        else if (kind === 'user-g') foreign.push(`-A USER-MASQ -s 10.200.${k}.1/32 -g ${c}`);
        else if (kind === 'forged') foreign.push(`-A POSTROUTING -s 10.200.0.${k}/32 -j ${c}`);
        else if (kind === 'other-comment') foreign.push(`-A POSTROUTING -s 10.201.0.${k}/32 -m comment --comment ${quote('name: "other" id: "x"')} -j ${c}`);
        else if (kind === 'inside-foreign') foreign.push(`-A ${c} -m comment --comment ${quote('added by hand')} -j RETURN`);
        else if (withUncertain) {
          foreign.push(`-A OUTPUT -m recent --set --name -j ${c} --mask 255.255.255.255 --rsource`);
          uncertain = true;
        }
      }
      const all = [...ours, ...foreign];
      const rules = all.map((r, i) => ({ r, k: (i * 7919 + seed) % 104729 })).sort((x, y) => x.k - y.k).map((x) => x.r);
      return { model: { chains, rules: [...new Set(rules)] }, attachments, sources, foreign, uncertain };
    });

/** A random selection: each (attachment, source) doomed or not; a container is gone when all its sources are. */
interface RandomSelection {
  readonly selection: Selection;
  readonly doomedSources: ReadonlySet<string>;
  readonly goneContainers: ReadonlySet<string>;
}

function selectionOf(g: Generated, flags: readonly boolean[], claimEmpty: boolean): RandomSelection {
  const doomedSources = new Set<string>();
  const goneContainers = new Set<string>();
  let f = 0;
  g.attachments.forEach((a, i) => {
    let all = true;
    for (const s of g.sources[i] ?? []) {
      if (flags[f++ % flags.length]) doomedSources.add(`${key(a)}|${s}`);
      else all = false;
    }
    if (all && flags[(f + i) % flags.length]) goneContainers.add(key(a));
  });
  const selection: Selection = {
    interfaceGone: (r: InterfaceRef) => goneContainers.has(key(r)) || doomedSources.has(`${key(r)}|${r.source ?? ''}`),
    containerGone: (a) => goneContainers.has(key(a)),
    ...(claimEmpty ? { claimsEmptyChain: (c: string) => g.attachments.some((a) => goneContainers.has(key(a)) && chainNames(a).includes(c)) } : {}),
  };
  return { selection, doomedSources, goneContainers };
}

const flagsArb = fc.array(fc.boolean(), { minLength: 1, maxLength: 30 });
const modeArb = fc.record({ recreate: fc.boolean(), conservative: fc.boolean() });

describe('planner properties', () => {
  it('(a) no rule that is not ours is ever deleted, and (b) the transaction never makes the model refuse when the snapshot is whole', () => {
    fc.assert(
      fc.property(tableArb(true), flagsArb, modeArb, fc.boolean(), (g, flags, mode0, claim) => {
        // An uncertain line needs the conservative reading to be safe from a whole snapshot (the first attempt lets the kernel refuse).
        const mode = g.uncertain ? { ...mode0, conservative: true } : mode0;
        const { selection } = selectionOf(g, flags, claim);
        const plan = planIptables(snap(g.model), selection, mode);
        const after = applyPlan(g.model, plan); // throws on -X of a referenced chain
        for (const r of g.foreign) expect(after.rules).toContain(r);
        for (const r of g.model.rules) {
          if (after.rules.includes(r)) continue;
          // Every removed rule carries the comment of an attachment the selection dooms.
          const m = /--comment ("(?:[^"\\]|\\.)*")/.exec(r);
          const owner = m ? parseIptablesComment(JSON.parse(m[1] as string) as string) : undefined;
          expect(owner, r).toBeDefined();
        }
        // No surviving rule enters a chain that was emptied and deleted.
        for (const c of plan.chains) expect(after.rules.some((r) => references(r, c))).toBe(false);
        for (const c of plan.chains) expect(after.chains.includes(c)).toBe(mode.recreate);
      }),
      { numRuns: 300 },
    );
  });

  it('(c) a plan within doomedBy(p1) is a subset of p1, for any second snapshot and selection', () => {
    fc.assert(
      fc.property(tableArb(true), flagsArb, flagsArb, modeArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), tableArb(true), (g, f1, f2, mode, keep, other) => {
        const p1 = planIptables(snap(g.model), selectionOf(g, f1, true).selection, mode);
        // The second look: some rules gone, others (and another table's rules) added.
        const second: NatModel = {
          chains: [...new Set([...g.model.chains, ...other.model.chains])],
          rules: [...new Set([...g.model.rules.filter((_, i) => keep[i % keep.length]), ...other.model.rules])],
        };
        const everything: Selection = { interfaceGone: () => true, containerGone: () => true, claimsEmptyChain: () => true };
        for (const sel of [selectionOf(g, f2, true).selection, everything]) {
          const p2 = planIptables(snap(second), sel, { ...mode, conservative: true }, doomedBy(p1));
          const j1 = new Set(p1.jumps.map((j) => j.line));
          for (const j of p2.jumps) expect(j1.has(j.line)).toBe(true);
          for (const c of p2.chains) expect(p1.chains).toContain(c);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('(d) doomed jumps and chains belong only to attachments the selection dooms', () => {
    fc.assert(
      fc.property(tableArb(true), flagsArb, modeArb, fc.boolean(), (g, flags, mode, claim) => {
        const { selection, goneContainers } = selectionOf(g, flags, claim);
        const s = snap(g.model);
        const plan = planIptables(s, selection, mode);
        for (const j of plan.jumps) {
          const owner = jumpOwner(j);
          expect(owner).toBeDefined();
          const src = sourceOf(j);
          expect(selection.interfaceGone({ ...(owner as Attachment), ...(src === undefined ? {} : { source: src }) })).toBe(true);
        }
        for (const c of plan.chains) {
          const claimant = g.attachments.find((a) => chainNames(a).includes(c));
          expect(claimant).toBeDefined();
          expect(goneContainers.has(key(claimant as Attachment))).toBe(true);
        }
        for (const o of plan.owners) expect(plan.jumps.some((j) => key(jumpOwner(j) as Attachment) === key(o)) || chainNames(o).some((c) => plan.chains.includes(c))).toBe(true);
        // Every chain in chains is deleted, and re-created exactly in recreate mode.
        const text = renderRestore(plan);
        const again = renderRecreate(plan) ?? '';
        for (const c of plan.chains) {
          expect(text).toContain(`\n-X ${c}\n`);
          expect(again.includes(`\n-N ${c}\n`)).toBe(mode.recreate);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('whole containers gone: exactly their bridge rules go, and every foreign rule stays', () => {
    fc.assert(
      fc.property(tableArb(false), fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }), (g, flags) => {
        const doomed = g.attachments.filter((_, i) => flags[i]);
        const plan: IptablesPlan = planIptables(snap(g.model), gone(...doomed), KEEP);
        const after = applyRestore(g.model, renderRestore(plan));
        const doomedKeys = new Set(doomed.map(key));
        for (const r of g.model.rules) {
          const m = /--comment ("(?:[^"\\]|\\.)*")/.exec(r);
          const owner = m ? parseIptablesComment(JSON.parse(m[1] as string) as string) : undefined;
          const isJump = owner !== undefined && r.startsWith('-A POSTROUTING ') && chainNames(owner).some((c) => r.endsWith(` -j ${c}`));
          // A doomed attachment's own jump always goes; a live one's never.
          if (isJump) expect(after.rules.includes(r)).toBe(!doomedKeys.has(key(owner)));
          if (g.foreign.includes(r)) expect(after.rules).toContain(r);
        }
      }),
      { numRuns: 300 },
    );
  });
});
