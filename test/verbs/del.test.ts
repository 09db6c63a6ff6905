import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainName, dnatChainName, iptablesComment, type Attachment } from '../../src/identity.js';
import { addBridge, addNftMasq, callPlugin, fakeWorld, writeCache, type FakeWorld } from '../support/fake-world.js';

/**
 * DEL's decisions, through the real plugin shell, against a stateful fake
 * of iptables and nft that refuses `-X` of a referenced chain as the kernel
 * does. Each test names the decision it pins down; changing that decision
 * in src/ makes it fail.
 */

const NET = 'mynet';
const A: Attachment = { network: NET, containerId: 'default-a' };
const V4 = 'iptables';
const ALIVE = '/proc/self/ns/net';
const prev = (ips: string[], ifname = 'eth0') => ({
  prevResult: { cniVersion: '1.0.0', interfaces: [{ name: ifname, sandbox: '/x' }], ips: ips.map((ip) => ({ address: `${ip}/24`, interface: 0 })) },
});

let w: FakeWorld;
beforeEach(() => {
  w = fakeWorld();
});
afterEach(() => w.dispose());

const ok = (r: { exitCode: number; stdout: string }) => expect(r, r.stdout).toMatchObject({ exitCode: 0, stdout: '' });

describe('DEL: what goes', () => {
  it('with prevResult, the leak goes in one iptables-restore and nothing reads the table (the fast path)', async () => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    ok(await callPlugin(w, 'DEL', A, { conf: prev(['10.9.0.2']) }));
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
    expect(w.host.table(V4).rules).toEqual([]);
    expect(w.host.calls.filter((c) => c.file === 'iptables-restore')).toHaveLength(1);
    // With hostports on (the default) the same transaction declares and deletes portmap's chains of this
    // attachment: nothing is listed, and a live entry rule into one would make the kernel refuse.
    expect(w.host.calls.filter((c) => c.file === 'iptables' || c.file === 'iptables-save')).toHaveLength(0);
    expect(w.host.calls.find((c) => c.file === 'iptables-restore')?.input).toContain(`-X ${dnatChainName(A)}`);
  });

  it('with "hostports": false, the fast path reads nothing at all', async () => {
    addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    ok(await callPlugin(w, 'DEL', A, { conf: { ...prev(['10.9.0.2']), hostports: false } }));
    expect(w.host.table(V4).rules).toEqual([]);
    expect(w.host.calls.filter((c) => c.file === 'iptables' || c.file === 'iptables-save')).toHaveLength(0);
  });

  it('without prevResult it lists POSTROUTING, never the whole table, and removes jump, rules and chain', async () => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    ok(await callPlugin(w, 'DEL', A));
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
    expect(w.host.table(V4).rules).toEqual([]);
    expect(w.host.count('iptables-save')).toBe(0);
  });

  it('an empty chain of ours with no jump (an earlier partial cleanup) goes; one of another attachment that hashes to the same name does not', async () => {
    w.host.addChain(V4, chainName(A));
    ok(await callPlugin(w, 'DEL', A));
    expect(w.host.table(V4).chains.has(chainName(A))).toBe(false);
  });
});

describe('DEL: the collision check (names hash network + ID with no separator)', () => {
  // "a" + "bc-1" and "ab" + "c-1" hash the same: one chain name for two attachments.
  const X: Attachment = { network: 'a', containerId: 'bc-1' };
  const Y: Attachment = { network: 'ab', containerId: 'c-1' };
  it('holds the test premise: both names are one chain', () => {
    expect(chainName(X)).toBe(chainName(Y));
  });

  it("Y's chain and rules stay when X (no state of its own) is deleted", async () => {
    const y = addBridge(w.host, V4, Y, '10.9.0.3', '10.9.0.0/24');
    w.host.table(V4).rules = w.host.table(V4).rules.filter((r) => r !== y.jump); // Y's jump already gone: only its chain
    ok(await callPlugin(w, 'DEL', X, { conf: { strict: true } }));
    expect(w.host.rulesOf(V4, y.chain)).toEqual(y.inside.map((r) => r.line));
  });

  it("X's jump goes; the chain holding Y's rules stays although no jump of Y's enters it now", async () => {
    const y = addBridge(w.host, V4, Y, '10.9.0.3', '10.9.0.0/24');
    w.host.table(V4).rules = w.host.table(V4).rules.filter((r) => r !== y.jump);
    const xJump = { line: `-A POSTROUTING -s 10.9.0.4/32 -m comment --comment "${iptablesComment(X).replaceAll('"', '\\"')}" -j ${chainName(X)}`, target: chainName(X) };
    w.host.addRule(V4, xJump);
    ok(await callPlugin(w, 'DEL', X, { conf: { strict: true } }));
    expect(w.host.table(V4).rules.map((r) => r.line)).toEqual(y.inside.map((r) => r.line));
  });

  it("X's jump goes and the shared chain stays while Y still uses it", async () => {
    const y = addBridge(w.host, V4, Y, '10.9.0.3', '10.9.0.0/24');
    const xJump = { line: `-A POSTROUTING -s 10.9.0.4/32 -m comment --comment "${iptablesComment(X).replaceAll('"', '\\"')}" -j ${chainName(X)}`, target: chainName(X) };
    w.host.addRule(V4, xJump);
    ok(await callPlugin(w, 'DEL', X, { conf: { strict: true } }));
    expect(w.host.table(V4).rules.map((r) => r.line)).toEqual([y.jump, ...y.inside].map((r) => r.line));
  });
});

describe('DEL: reference safety (a chain any other rule enters is never emptied)', () => {
  for (const [how, rule] of [
    ['-j from OUTPUT', (c: string) => ({ line: `-A OUTPUT -d 192.0.2.1/32 -j ${c}`, target: c })],
    ['-g from a user chain', (c: string) => ({ line: `-A USERX -g ${c}`, target: c })],
  ] as const) {
    for (const netns of ['', ALIVE]) {
      it(`${how}, netns ${netns === '' ? 'empty' : 'alive (bridge tears down after us)'}: our jump goes, the chain keeps its rules`, async () => {
        w.host.netnsAddrs = '2: eth0    inet 10.9.0.2/24 brd 10.9.0.255 scope global eth0\n';
        const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
        w.host.addRule(V4, rule(s.chain));
        ok(await callPlugin(w, 'DEL', A, { netns, conf: { strict: true, ...prev(['10.9.0.2']) } }));
        expect(w.host.rulesOf(V4, s.chain)).toEqual(s.inside.map((r) => r.line));
        expect(w.host.rulesOf(V4, 'POSTROUTING')).toEqual([]);
      });
    }
  }

  it('netns alive: the chain is emptied and deleted in one transaction, then created again, empty, for bridge', async () => {
    w.host.netnsAddrs = '2: eth0    inet 10.9.0.2/24 brd 10.9.0.255 scope global eth0\n';
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    ok(await callPlugin(w, 'DEL', A, { netns: ALIVE, conf: prev(['10.9.0.2']) }));
    expect(w.host.table(V4).chains.has(s.chain)).toBe(true);
    expect(w.host.table(V4).rules).toEqual([]);
    const restores = w.host.calls.filter((c) => c.file === 'iptables-restore').map((c) => c.input ?? '');
    expect(restores[0]).toContain(`-X ${s.chain}`);
    expect(restores[0]).not.toContain(`-N ${s.chain}`);
    expect(restores[1]).toBe(`*nat\n-N ${s.chain}\nCOMMIT\n`);
  });

  it('netns alive and the chain already empty and unreferenced: left as it is for bridge (no delete and re-create to race it)', async () => {
    w.host.netnsAddrs = '2: eth0    inet 10.9.0.2/24 brd 10.9.0.255 scope global eth0\n';
    w.host.addChain(V4, chainName(A));
    ok(await callPlugin(w, 'DEL', A, { netns: ALIVE }));
    expect(w.host.table(V4).chains.has(chainName(A))).toBe(true);
    expect(w.host.count('iptables-restore')).toBe(0);
  });

  // hardening/concurrency, a concurrent double DEL: DEL 2's janitor had left the empty chain for its bridge,
  // which had seen eth0; DEL 1's janitor looked after that bridge deleted eth0, took the chain as an
  // earlier partial cleanup's, and bridge's teardown failed on it ("Chain ... does not exist").
  it('netns alive, eth0 already gone, the chain empty and unreferenced: left for a concurrent DEL’s bridge', async () => {
    w.host.netnsAddrs = undefined;
    w.host.addChain(V4, chainName(A));
    ok(await callPlugin(w, 'DEL', A, { netns: ALIVE, conf: { strict: true, ...prev(['10.9.0.2']) } }));
    ok(await callPlugin(w, 'DEL', A, { netns: ALIVE, conf: { strict: true } }));
    expect(w.host.table(V4).chains.has(chainName(A))).toBe(true);
  });

  it('netns alive, eth0 gone, the chain still holding bridge’s rules: removed as with the netns gone (bridge will not tear down)', async () => {
    w.host.netnsAddrs = undefined;
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    ok(await callPlugin(w, 'DEL', A, { netns: ALIVE }));
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
    expect(w.host.table(V4).rules).toEqual([]);
  });
});

describe('DEL: saved rules are read as iptables-restore reads them (failure 3)', () => {
  it('a foreign rule whose recent --name prints as "-j CNI-<hash>" is no jump of ours: the chain goes, the foreign rule stays', async () => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    const foreign = { line: `-A OUTPUT -m recent --set --name -j ${s.chain} --mask 255.255.255.255 --rsource` };
    w.host.addRule(V4, foreign);
    ok(await callPlugin(w, 'DEL', A, { conf: { strict: true } }));
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
    expect(w.host.table(V4).rules.map((r) => r.line)).toEqual([foreign.line]);
  });
});

describe('DEL: per interface (failure 5)', () => {
  it("DEL of eth0 without prevResult keeps net1's jump and the shared chain when libcni still records net1", async () => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    const net1 = { line: s.jump.line.replace('10.9.0.2/32', '10.9.0.7/32'), target: s.chain };
    w.host.addRule(V4, net1);
    writeCache(w.stateDir, A, 'eth0', ['10.9.0.2']);
    writeCache(w.stateDir, A, 'net1', ['10.9.0.7']);
    ok(await callPlugin(w, 'DEL', A, { conf: { strict: true } }));
    expect(w.host.rulesOf(V4, 'POSTROUTING')).toEqual([net1.line]);
    expect(w.host.rulesOf(V4, s.chain)).toEqual(s.inside.map((r) => r.line));
  });

  it('with prevResult for eth0 only eth0’s jump goes; the chain goes with the last interface', async () => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    const net1 = { line: s.jump.line.replace('10.9.0.2/32', '10.9.0.7/32'), target: s.chain };
    w.host.addRule(V4, net1);
    writeCache(w.stateDir, A, 'net1', ['10.9.0.7']);
    ok(await callPlugin(w, 'DEL', A, { conf: { strict: true, ...prev(['10.9.0.2']) } }));
    expect(w.host.rulesOf(V4, 'POSTROUTING')).toEqual([net1.line]);
    expect(w.host.rulesOf(V4, s.chain)).toHaveLength(2);
    // net1 goes later: libcni has removed eth0's entry by then, and net1's is still there while it is deleted.
    ok(await callPlugin(w, 'DEL', A, { ifname: 'net1', conf: { strict: true, ...prev(['10.9.0.7'], 'net1') } }));
    expect(w.host.table(V4).rules).toEqual([]);
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
  });

  it('the nft backend keys on the interface: net1’s rule stays', async () => {
    const eth0 = addNftMasq(w.host, A, 'eth0', '10.9.0.2');
    const net1 = addNftMasq(w.host, A, 'net1', '10.9.0.7');
    ok(await callPlugin(w, 'DEL', A, { conf: { strict: true } }));
    expect(w.host.nft.map((r) => r.handle)).toEqual([net1]);
    expect(eth0).not.toBe(net1);
  });
});

describe('DEL: never refuses an identity libcni accepts, never blocks the chain on one it cannot use (failure 4)', () => {
  it('an interface name with U+FEFF (not space for Go) is cleaned like any other', async () => {
    addNftMasq(w.host, A, 'e\uFEFFth', '10.9.0.2');
    ok(await callPlugin(w, 'DEL', A, { ifname: 'e\uFEFFth', conf: { strict: true } }));
    expect(w.host.nft).toEqual([]);
  });

  it('an unusable name ("a b") removes nothing and exits 0, strict or not', async () => {
    addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    ok(await callPlugin(w, 'DEL', A, { ifname: 'a b', conf: { strict: true } }));
    expect(w.host.calls).toEqual([]);
  });
});

describe('DEL: retries', () => {
  it('a transaction that fails because the table moved is planned again from a fresh read, and succeeds', async () => {
    const s = addBridge(w.host, V4, A, '10.9.0.2', '10.9.0.0/24');
    w.host.failNext.restore = 1;
    ok(await callPlugin(w, 'DEL', A, { conf: { strict: true } }));
    expect(w.host.table(V4).chains.has(s.chain)).toBe(false);
    expect(w.host.count('iptables-save')).toBe(1);
  });
});
