import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dnatChainName, dnatComment, savedComment, snatChainName, type Attachment } from '../../../src/identity.js';
import { entryOf, HOSTPORT_CHAIN_PATTERN, hostPortsOf, planHostports, SHARED_HOSTPORT_CHAINS } from '../../../src/backends/iptables/hostport.js';
import { parseSave, type Rule, type Snapshot } from '../../../src/backends/iptables/parse.js';

const enters = (r: Rule, c: string): boolean => r.jump === c || r.goto === c;
import { PORTMAP_V4, PORTMAP_V6 } from './hostport-fixtures.js';

const C1: Attachment = { network: 'hpnet', containerId: 'default-c1' };
const DN1 = 'CNI-DN-c0428b25aba41ef1591ff';
const is = (a: Attachment) => (b: Attachment): boolean => a.network === b.network && a.containerId === b.containerId;
const everyone = (): boolean => true;

/** Go %q as iptables-save prints it inside --comment "...". */
const q = (s: string): string => `"${s.replaceAll('"', '\\"')}"`;

function entryLine(a: Attachment, ports = '8080', proto = 'tcp', comment = dnatComment(a), chain = dnatChainName(a)): string {
  return `-A CNI-HOSTPORT-DNAT -p ${proto} -m comment --comment ${q(savedComment(comment))} -m multiport --dports ${ports} -j ${chain}`;
}

/** A nat table holding the real fixture plus `extra` (declarations `:X` and rules `-A`) before COMMIT. */
function withExtra(base: string, extra: readonly string[]): Snapshot {
  const decl = extra.filter((l) => l.startsWith(':'));
  const rules = extra.filter((l) => l.startsWith('-A'));
  const lines = base.trimEnd().split('\n');
  const commit = lines.lastIndexOf('COMMIT');
  const text = [...lines.slice(0, 5), ...decl, ...lines.slice(5, commit), ...rules, ...lines.slice(commit)].join('\n');
  return parseSave(text);
}

function container(a: Attachment, ip: string, port = 8080): string[] {
  const ch = dnatChainName(a);
  return [`:${ch} - [0:0]`, entryLine(a, String(port)), `-A ${ch} -p tcp -m tcp --dport ${port} -j DNAT --to-destination ${ip}:80`];
}

const uncertain = (r: Rule): Rule => ({ ...r, certain: false }) as Rule;

describe('planHostports on real Debian portmap state', () => {
  it.each([
    ['v4', PORTMAP_V4],
    ['v6', PORTMAP_V6],
  ])('DEL of the attachment takes its two entry rules and its DN chain, nothing shared (%s)', (_f, text) => {
    const snap = parseSave(text);
    const plan = planHostports(snap, is(C1));
    expect(plan.chains).toEqual([DN1]);
    expect(plan.entries.map((r) => r.line)).toEqual(snap.rules.filter((r) => r.chain === 'CNI-HOSTPORT-DNAT').map((r) => r.line));
    expect(plan.entries).toHaveLength(2);
    expect(plan.owners).toEqual([C1]);
    for (const c of SHARED_HOSTPORT_CHAINS) expect(HOSTPORT_CHAIN_PATTERN.test(c), c).toBe(false);
  });

  it('the chain name in the fixture is the one identity computes', () => {
    expect(dnatChainName(C1)).toBe(DN1);
  });

  it('leaves everything of an attachment that is not doomed', () => {
    const other = { network: 'hpnet', containerId: 'default-c2' };
    const snap = withExtra(PORTMAP_V4, container(other, '10.77.0.3'));
    const plan = planHostports(snap, is(other));
    expect(plan.chains).toEqual([dnatChainName(other)]);
    expect(plan.entries.map((r) => r.line)).toEqual([entryLine(other)]);
    expect(planHostports(snap, () => false)).toEqual({ entries: [], chains: [], owners: [] });
  });

  it('another network on the same host port: only the doomed network goes', () => {
    const sameIdOtherNet = { network: 'othernet', containerId: 'default-c1' };
    const snap = withExtra(PORTMAP_V4, container(sameIdOtherNet, '10.78.0.2'));
    const plan = planHostports(snap, is(C1));
    expect(plan.chains).toEqual([DN1]);
    expect(plan.entries.every((r) => r.jump === DN1)).toBe(true);
  });

  it('a foreign rule entering the DN chain keeps the chain; the entry rules still go', () => {
    for (const foreign of [`-A PREROUTING -p tcp --dport 1 -j ${DN1}`, `-A OUTPUT -g ${DN1}`, `-A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 1 -j ${DN1}`]) {
      const plan = planHostports(withExtra(PORTMAP_V4, [foreign]), is(C1));
      expect(plan.chains, foreign).toEqual([]);
      expect(plan.entries, foreign).toHaveLength(2);
    }
  });

  it('a forged comment (owner does not hash to the chain) proves nothing', () => {
    const forged = { network: 'hpnet', containerId: 'forged' };
    const snap = withExtra(PORTMAP_V4, [entryLine(forged, '1', 'tcp', dnatComment(forged), DN1)]);
    const plan = planHostports(snap, is(forged));
    expect(plan).toEqual({ entries: [], chains: [], owners: [] });
    // and it keeps C1's chain: something not doomed enters it
    expect(planHostports(snap, is(C1)).chains).toEqual([]);
  });

  it('an entry-shaped rule outside CNI-HOSTPORT-DNAT is not an entry rule', () => {
    const line = entryLine(C1).replace('-A CNI-HOSTPORT-DNAT', '-A PREROUTING');
    const snap = withExtra(PORTMAP_V4, [line]);
    const plan = planHostports(snap, is(C1));
    expect(plan.entries.map((r) => r.chain)).toEqual(['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-DNAT']);
    expect(plan.chains).toEqual([]);
  });

  it('never returns a rule with certain=false, and keeps a chain such a rule may enter or that holds one', () => {
    const snap = parseSave(PORTMAP_V4);
    const entries = snap.rules.filter((r) => r.chain === 'CNI-HOSTPORT-DNAT');
    const first = entries[0] as Rule;
    const oneUncertain: Snapshot = { chains: snap.chains, rules: snap.rules.map((r) => (r === first ? uncertain(r) : r)) };
    const plan = planHostports(oneUncertain, is(C1));
    expect(plan.entries.map((r) => r.line)).toEqual([(entries[1] as Rule).line]);
    expect(plan.chains).toEqual([]);

    const inner = snap.rules.find((r) => r.chain === DN1) as Rule;
    const innerUncertain: Snapshot = { chains: snap.chains, rules: snap.rules.map((r) => (r === inner ? uncertain(r) : r)) };
    expect(planHostports(innerUncertain, is(C1)).chains).toEqual([]);
    expect(planHostports(innerUncertain, is(C1)).entries).toHaveLength(2);
  });

  it('old CNI-SN- state under CNI-HOSTPORT-SNAT goes with it', () => {
    const sn = snatChainName(C1);
    const snap = withExtra(PORTMAP_V4, [
      ':CNI-HOSTPORT-SNAT - [0:0]',
      `:${sn} - [0:0]`,
      '-A POSTROUTING -j CNI-HOSTPORT-SNAT',
      `-A CNI-HOSTPORT-SNAT -m comment --comment ${q('snat name: "hpnet" id: "default-c1"')} -j ${sn}`,
      `-A ${sn} -s 127.0.0.1/32 -d 10.77.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE`,
    ]);
    const plan = planHostports(snap, is(C1));
    expect(plan.chains).toEqual([DN1, sn].sort());
    expect(plan.entries.map((r) => r.chain).sort()).toEqual(['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SNAT']);
    expect(plan.chains).not.toContain('CNI-HOSTPORT-SNAT');
  });

  it('a DN chain with no entry rule left is proven only by a candidate', () => {
    const lone = { network: 'hpnet', containerId: 'default-lone' };
    const ch = dnatChainName(lone);
    const snap = withExtra(PORTMAP_V4, [`:${ch} - [0:0]`, `-A ${ch} -p tcp -m tcp --dport 1 -j DNAT --to-destination 10.77.0.9:1`]);
    expect(planHostports(snap, everyone).chains).toEqual([DN1]);
    expect(planHostports(snap, is(lone), [lone]).chains).toEqual([ch]);
  });

  it('a trimmed comment (iptables keeps 253 bytes + "..") proves only the candidate whose saved comment it is', () => {
    const long = { network: 'hpnet', containerId: 'x'.repeat(260) };
    const ch = dnatChainName(long);
    const line = entryLine(long);
    expect(line).toContain('x.." -m multiport');
    const snap = withExtra(PORTMAP_V4, [`:${ch} - [0:0]`, line]);
    expect(planHostports(snap, everyone).chains).toEqual([DN1]);
    const plan = planHostports(snap, is(long), [long]);
    expect(plan.chains).toEqual([ch]);
    expect(plan.entries.map((r) => r.line)).toEqual([line]);
    // A candidate with another long ID of the same 253-byte head but another hash proves nothing.
    const twin = { network: 'hpnet', containerId: 'x'.repeat(259) + 'y' };
    expect(planHostports(snap, is(twin), [twin])).toEqual({ entries: [], chains: [], owners: [] });
  });

  it('property: nothing returned is shared, uncertain, undoomed or entered by a survivor', () => {
    const ids = ['a', 'b', 'c', 'd'].map((id) => ({ network: 'n', containerId: id }));
    const ruleGen = fc.oneof(
      fc.record({ kind: fc.constant('entry' as const), owner: fc.nat(3), target: fc.nat(3), chain: fc.constantFrom('CNI-HOSTPORT-DNAT', 'PREROUTING') }),
      fc.record({ kind: fc.constant('jump' as const), from: fc.constantFrom('PREROUTING', 'OUTPUT', 'CNI-HOSTPORT-DNAT'), target: fc.nat(3), goto: fc.boolean() }),
      fc.record({ kind: fc.constant('inner' as const), owner: fc.nat(3) }),
    );
    fc.assert(
      fc.property(fc.array(ruleGen, { maxLength: 12 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.array(fc.boolean(), { maxLength: 12 }), (specs, doomedBits, uncertainBits) => {
        const chainOf = (i: number): string => dnatChainName(ids[i] as Attachment);
        const lines = [':CNI-HOSTPORT-DNAT - [0:0]', ...ids.map((a) => `:${dnatChainName(a)} - [0:0]`)];
        for (const s of specs) {
          if (s.kind === 'entry') lines.push(entryLine(ids[s.owner] as Attachment, '80', 'tcp', dnatComment(ids[s.owner] as Attachment), chainOf(s.target)).replace('-A CNI-HOSTPORT-DNAT', `-A ${s.chain}`));
          else if (s.kind === 'jump') lines.push(`-A ${s.from} -p tcp ${s.goto ? '-g' : '-j'} ${chainOf(s.target)}`);
          else lines.push(`-A ${chainOf(s.owner)} -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.${s.owner + 2}:80`);
        }
        const parsed = parseSave(['*nat', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...lines, 'COMMIT'].join('\n'));
        const snap: Snapshot = { chains: parsed.chains, rules: parsed.rules.map((r, i) => (uncertainBits[i] ? uncertain(r) : r)) };
        const doomed = (a: Attachment): boolean => doomedBits[ids.findIndex(is(a))] === true;
        const plan = planHostports(snap, doomed);
        const taken = new Set(plan.entries);
        for (const e of plan.entries) {
          expect(e.certain).toBe(true);
          const owner = entryOf(e)?.owner;
          expect(owner && doomed(owner)).toBe(true);
        }
        for (const c of plan.chains) {
          expect(c).toMatch(HOSTPORT_CHAIN_PATTERN);
          expect(SHARED_HOSTPORT_CHAINS).not.toContain(c);
          expect(doomed(ids[ids.map(dnatChainName).indexOf(c)] as Attachment)).toBe(true);
          for (const r of snap.rules) if (!taken.has(r)) expect(enters(r, c) && `${r.line} enters ${c}`).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('hostPortsOf', () => {
  it('reads the ports and destinations the real v4 chain serves, host IP included', () => {
    const [state, ...rest] = hostPortsOf(parseSave(PORTMAP_V4));
    expect(rest).toEqual([]);
    expect(state?.owner).toEqual(C1);
    expect(state?.chain).toBe(DN1);
    expect(state?.ports).toEqual([
      { proto: 'tcp', port: 8080, hostIp: undefined, destination: '10.77.0.2:80' },
      { proto: 'tcp', port: 8443, hostIp: undefined, destination: '10.77.0.2:443' },
      { proto: 'udp', port: 5353, hostIp: undefined, destination: '10.77.0.2:53' },
      { proto: 'tcp', port: 9090, hostIp: '127.0.0.1', destination: '10.77.0.2:90' },
    ]);
  });

  it('v6: the entry rule lists 9090 but the chain has no v6 mapping for it, so it is not served', () => {
    const [state] = hostPortsOf(parseSave(PORTMAP_V6));
    expect(state?.ports.map((p) => `${p.proto}/${p.port} -> ${p.destination}`)).toEqual(['tcp/8080 -> [fd00:77::2]:80', 'tcp/8443 -> [fd00:77::2]:443', 'udp/5353 -> [fd00:77::2]:53']);
  });

  it('a chain nothing enters serves nothing; a port its entry rules do not admit is not served', () => {
    const lone = { network: 'hpnet', containerId: 'lone' };
    const ch = dnatChainName(lone);
    const snap = withExtra(PORTMAP_V4, [`:${ch} - [0:0]`, `-A ${ch} -p tcp -m tcp --dport 1 -j DNAT --to-destination 10.77.0.9:1`]);
    expect(hostPortsOf(snap).map((s) => s.chain)).toEqual([DN1]);
    const c3 = { network: 'hpnet', containerId: 'c3' };
    const narrow = withExtra(PORTMAP_V4, [...container(c3, '10.77.0.4', 7000), `-A ${dnatChainName(c3)} -p tcp -m tcp --dport 7001 -j DNAT --to-destination 10.77.0.4:81`]);
    expect(hostPortsOf(narrow).find((s) => s.owner?.containerId === 'c3')?.ports.map((p) => p.port)).toEqual([7000]);
  });
});
