import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dnatChainName, dnatComment, type Attachment } from '../../src/identity.js';
import { addBridge, callPlugin, fakeWorld, type FakeWorld } from '../support/fake-world.js';
import type { FakeHost } from '../support/fake-host.js';

/**
 * DEL's hostport decisions through the real plugin shell and the stateful
 * fake (which refuses -X of a referenced chain, as the kernel does).
 */

const NET = 'mynet';
const A: Attachment = { network: NET, containerId: 'default-a' };
const B: Attachment = { network: NET, containerId: 'default-b' };
const V4 = 'iptables';
const prev = (ips: string[]) => ({ prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: ips.map((ip) => ({ address: `${ip}/24`, interface: 0 })) } });
const q = (s: string): string => `"${s.replaceAll('"', '\\"')}"`;

/** What portmap v1.1.1 adds for one container publishing 8080 -> 80. */
function addPortmap(host: FakeHost, a: Attachment, ip: string, port = 8080): string {
  const ch = dnatChainName(a);
  if (!host.table(V4).chains.has('CNI-HOSTPORT-DNAT')) {
    host.addChain(V4, 'CNI-HOSTPORT-DNAT');
    host.addChain(V4, 'CNI-HOSTPORT-SETMARK');
    host.addRule(V4, { line: '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', target: 'CNI-HOSTPORT-DNAT' });
    host.addRule(V4, { line: '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', target: 'CNI-HOSTPORT-DNAT' });
  }
  host.addChain(V4, ch);
  host.addRule(V4, { line: `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment ${q(dnatComment(a))} -m multiport --dports ${port} -j ${ch}`, target: ch });
  host.addRule(V4, { line: `-A ${ch} -s 127.0.0.1/32 -p tcp -m tcp --dport ${port} -j CNI-HOSTPORT-SETMARK`, target: 'CNI-HOSTPORT-SETMARK' });
  host.addRule(V4, { line: `-A ${ch} -p tcp -m tcp --dport ${port} -j DNAT --to-destination ${ip}:80` });
  return ch;
}

let w: FakeWorld;
beforeEach(() => {
  w = fakeWorld();
});
afterEach(() => w.dispose());
const ok = (r: { exitCode: number; stdout: string }) => expect(r, r.stdout).toMatchObject({ exitCode: 0, stdout: '' });
const rulesOf = (a: Attachment): string[] => w.host.table(V4).rules.map((r) => r.line).filter((l) => l.includes(dnatChainName(a)));

describe('DEL: hostport state', () => {
  it.each([
    ['with prevResult', prev(['10.9.0.2'])],
    ['without prevResult', {}],
  ])('%s: the attachment\'s DN chain and entry rule go with its masquerade state, in one transaction; shared chains and B stay', async (_w, conf) => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    const chA = addPortmap(w.host, A, '10.9.0.2');
    addPortmap(w.host, B, '10.9.0.3');
    const bBefore = rulesOf(B);
    ok(await callPlugin(w, 'DEL', A, { conf }));
    expect(w.host.table(V4).chains.has(chA)).toBe(false);
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
    expect(rulesOf(A)).toEqual([]);
    expect(rulesOf(B)).toEqual(bBefore);
    for (const shared of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK']) expect(w.host.table(V4).chains.has(shared)).toBe(true);
    // With prevResult the fast path is tried first and refused (the entry rule still enters the DN chain); the
    // transaction planned from the read then removes both kinds of state at once.
    const restores = w.host.calls.filter((c) => c.file === 'iptables-restore').map((c) => c.input ?? '');
    expect(restores.length).toBe(_w === 'without prevResult' ? 1 : 2);
    expect(restores.at(-1)).toContain(`-X ${chA}`);
    expect(restores.at(-1)).toContain(`-X ${s.chain}`);
  });

  it('hostport state without any masquerade state (bridge already cleaned up) still goes', async () => {
    const chA = addPortmap(w.host, A, '10.9.0.2');
    ok(await callPlugin(w, 'DEL', A, { conf: prev(['10.9.0.2']) }));
    expect(w.host.table(V4).chains.has(chA)).toBe(false);
    expect(rulesOf(A)).toEqual([]);
  });

  it('"hostports": false leaves portmap\'s state alone', async () => {
    addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    addPortmap(w.host, A, '10.9.0.2');
    const before = rulesOf(A);
    ok(await callPlugin(w, 'DEL', A, { conf: { ...prev(['10.9.0.2']), hostports: false } }));
    expect(rulesOf(A)).toEqual(before);
  });

  it('a foreign rule entering the DN chain keeps the chain; the entry rule still goes (the hijack ends)', async () => {
    const chA = addPortmap(w.host, A, '10.9.0.2');
    w.host.addRule(V4, { line: `-A OUTPUT -p tcp --dport 1 -j ${chA}`, target: chA });
    ok(await callPlugin(w, 'DEL', A, { conf: prev(['10.9.0.2']) }));
    expect(w.host.table(V4).chains.has(chA)).toBe(true);
    expect(w.host.table(V4).rules.some((r) => r.line.startsWith('-A CNI-HOSTPORT-DNAT') && r.line.includes(chA))).toBe(false);
    expect(w.host.table(V4).rules.some((r) => r.line === `-A OUTPUT -p tcp --dport 1 -j ${chA}`)).toBe(true);
  });
});
