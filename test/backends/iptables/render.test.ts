import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRuleLine, parseSave, type Rule } from '../../../src/backends/iptables/parse.js';
import { planIptables, type IptablesPlan } from '../../../src/backends/iptables/plan.js';
import { chunkPlan, renderable, renderRecreate, renderRestore } from '../../../src/backends/iptables/render.js';
import { chainName, type Attachment } from '../../../src/identity.js';
import { applyRestore, bridgeRules, toSave, type NatModel } from '../../support/nat-model.js';

const rule = (line: string): Rule => parseRuleLine(line) as Rule;
const A: Attachment = { network: 'bridge', containerId: 'c1' };

function plan(parts: Partial<IptablesPlan>): IptablesPlan {
  return { jumps: [], chains: [], recreate: [], entries: [], owners: [], ...parts };
}

describe('renderRestore', () => {
  it('flushes, deletes jumps by their exact text, then deletes the chains, in one nat transaction', () => {
    const r = bridgeRules(A, '10.0.0.2', '10.0.0.0/24');
    const text = renderRestore(plan({ jumps: [rule(r.rules[0] as string)], chains: [r.chain] }));
    expect(text).toBe(['*nat', `:${r.chain} - [0:0]`, `-D ${(r.rules[0] as string).slice(3)}`, `-X ${r.chain}`, 'COMMIT', ''].join('\n'));
  });

  it('an empty plan is an empty transaction', () => {
    expect(renderRestore(plan({}))).toBe('*nat\nCOMMIT\n');
  });

  it.each(['KUBE-POSTROUTING', 'CNI-abc', 'CNI-aaaaaaaaaaaaaaaaaaaaaaaa\n-F', 'CNI-AAAAAAAAAAAAAAAAAAAAAAAA', 'POSTROUTING', ''])('throws on a chain name outside the patterns: %j', (c) => {
    expect(() => renderRestore(plan({ chains: [c] }))).toThrow(/refusing to render chain/);
    expect(() => renderRecreate(plan({ recreate: [c] }))).toThrow(/refusing to render chain/);
  });

  it('a caller’s own patterns widen what it may render, and nothing else', () => {
    expect(renderRestore(plan({ chains: ['CNI-DN-1'] }), [/^CNI-DN-\d+$/])).toContain('-X CNI-DN-1');
    expect(() => renderRestore(plan({ chains: ['CNI-DN-x'] }), [/^CNI-DN-\d+$/])).toThrow();
  });

  it('throws on a rule line with a newline, a NUL, or one that is not certain, or not -A', () => {
    const bad = [
      '-A POSTROUTING -m comment --comment "a\nb" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa',
      '-A POSTROUTING -m comment --comment "a\rb" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa',
      '-A POSTROUTING -m comment --comment "a\u0000b" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa',
      '-A OUTPUT -m recent --set --name -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa --mask 255.255.255.255 --rsource',
      '-A POSTROUTING stray -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa',
    ];
    for (const line of bad) {
      const r = { ...rule(line.replace(/[\n\r\u0000]/, ' ')), line };
      expect(renderable(line)).toBe(false);
      expect(() => renderRestore(plan({ jumps: [r] }))).toThrow(/refusing to render rule/);
    }
    const notA = { ...rule('-A POSTROUTING -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa'), line: '-I POSTROUTING -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa' };
    expect(() => renderRestore(plan({ jumps: [notA] }))).toThrow();
  });

  it('recreateInline (legacy, which never replays a batch): the -N follows the -X in the same transaction', () => {
    const c = chainName(A);
    const text = renderRestore(plan({ chains: [c], recreate: [c] }), undefined, { recreateInline: true });
    expect(text.split('\n')).toEqual(['*nat', `:${c} - [0:0]`, `-X ${c}`, `-N ${c}`, 'COMMIT', '']);
    expect(renderRestore(plan({ chains: [c], recreate: [c] }))).not.toContain('-N ');
    expect(() => renderRestore(plan({ chains: [c], recreate: ['OUTPUT'] }), undefined, { recreateInline: true })).toThrow(/refusing to render chain/);
  });

  it('renderRecreate: nothing to recreate is no transaction; otherwise one -N per chain', () => {
    expect(renderRecreate(plan({ chains: [chainName(A)] }))).toBeUndefined();
    expect(renderRecreate(plan({ chains: [chainName(A)], recreate: [chainName(A)] }))).toBe(`*nat\n-N ${chainName(A)}\nCOMMIT\n`);
  });
});

describe('chunkPlan', () => {
  const attachments = (n: number): Attachment[] => Array.from({ length: n }, (_, i) => ({ network: 'bridge', containerId: `c${i}` }));

  function bigModel(n: number, extraJumps: number[]): NatModel {
    const as = attachments(n);
    const parts = as.map((a, i) => bridgeRules(a, `10.${i >> 8}.${i & 255}.2`, '10.0.0.0/8'));
    const extra = extraJumps.map((k, j) => {
      const a = as[k % n] as Attachment;
      return (bridgeRules(a, `172.16.${j >> 8}.${j & 255}`, '10.0.0.0/8').rules[0]) as string;
    });
    return { chains: parts.map((p) => p.chain), rules: [...parts.flatMap((p) => p.rules), ...extra] };
  }

  it('a plan within the size is one chunk, itself', () => {
    const m = bigModel(3, []);
    const p = planIptables(parseSave(toSave(m)), { interfaceGone: () => true, containerGone: () => true }, { recreate: false, conservative: false });
    expect(chunkPlan(p, 100)).toEqual([p]);
  });

  it('chunks are complete: every chain travels with every jump into it, and each chunk applies on its own', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.array(fc.nat(29), { maxLength: 20 }), fc.integer({ min: 1, max: 7 }), fc.boolean(), (n, extra, size, recreate) => {
        const m = bigModel(n, extra);
        const p = planIptables(parseSave(toSave(m)), { interfaceGone: () => true, containerGone: () => true }, { recreate, conservative: false });
        const chunks = chunkPlan(p, size);
        // Nothing lost, nothing doubled.
        expect(chunks.flatMap((c) => c.chains).sort()).toEqual([...p.chains].sort());
        expect(chunks.flatMap((c) => c.jumps.map((j) => j.line)).sort()).toEqual(p.jumps.map((j) => j.line).sort());
        expect(chunks.flatMap((c) => c.recreate).sort()).toEqual([...p.recreate].sort());
        for (const c of chunks) {
          const mine = new Set(c.chains);
          // A chain's jumps are all in its chunk.
          for (const j of p.jumps) if (mine.has(j.jump as string)) expect(c.jumps).toContain(j);
          expect(c.chains.length).toBeLessThanOrEqual(size);
        }
        // Applied one after another, each chunk is a valid transaction and the end is the whole plan's.
        let cur = m;
        for (const c of chunks) cur = applyRestore(cur, renderRestore(c));
        expect(cur).toEqual(applyRestore(m, renderRestore(p)));
      }),
      { numRuns: 150 },
    );
  });

  it('chunks follow the jumps’ order in the table', () => {
    const m = bigModel(6, []);
    const p = planIptables(parseSave(toSave(m)), { interfaceGone: () => true, containerGone: () => true }, { recreate: false, conservative: false });
    const chunks = chunkPlan(p, 2);
    expect(chunks.flatMap((c) => c.jumps.map((j) => j.line))).toEqual(p.jumps.map((j) => j.line));
  });
});
