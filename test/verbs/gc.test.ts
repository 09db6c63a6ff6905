import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attachment } from '../../src/identity.js';
import { addBridge, addNftMasq, callPlugin, fakeWorld, writeCache, type FakeWorld } from '../support/fake-world.js';

/** GC's decisions through the plugin shell, against the stateful fake (see fake-host.ts). */

const NET = 'gcnet';
const LIVE: Attachment = { network: NET, containerId: 'live' };
const GONE: Attachment = { network: NET, containerId: 'gone' };
const OTHER: Attachment = { network: 'othernet', containerId: 'gone' };
const B = 'iptables-nft';
const valid = (list: { containerID: string; ifname: string }[]) => ({ conf: { 'cni.dev/valid-attachments': list } });

let w: FakeWorld;
beforeEach(() => {
  w = fakeWorld();
});
afterEach(() => w.dispose());

describe('GC', () => {
  it('removes what the valid list does not name, on this network only', async () => {
    const live = addBridge(w.host, B, LIVE, '10.8.0.2', '10.8.0.0/24');
    addBridge(w.host, B, GONE, '10.8.0.3', '10.8.0.0/24');
    const other = addBridge(w.host, B, OTHER, '10.7.0.3', '10.7.0.0/24');
    const r = await callPlugin(w, 'GC', LIVE, valid([{ containerID: 'live', ifname: 'eth0' }]));
    expect(r.exitCode, r.stdout).toBe(0);
    expect(w.host.table(B).rules.map((x) => x.line).sort()).toEqual([live.jump, ...live.inside, other.jump, ...other.inside].map((x) => x.line).sort());
  });

  it('per interface: a valid container keeps its jump; its invalid interface’s jump goes when the cache names its address; the chain stays', async () => {
    const live = addBridge(w.host, B, LIVE, '10.8.0.2', '10.8.0.0/24');
    const net1 = { line: live.jump.line.replace('10.8.0.2/32', '10.8.0.9/32'), target: live.chain };
    w.host.addRule(B, net1);
    writeCache(w.stateDir, LIVE, 'eth0', ['10.8.0.2']);
    writeCache(w.stateDir, LIVE, 'net1', ['10.8.0.9']);
    const r = await callPlugin(w, 'GC', LIVE, valid([{ containerID: 'live', ifname: 'eth0' }]));
    expect(r.exitCode, r.stdout).toBe(0);
    expect(w.host.rulesOf(B, 'POSTROUTING')).toEqual([live.jump.line]);
    expect(w.host.rulesOf(B, live.chain)).toHaveLength(2);
  });

  it('nft: per interface, by the full comment', async () => {
    const keep = addNftMasq(w.host, LIVE, 'eth0', '10.8.0.2');
    addNftMasq(w.host, LIVE, 'net1', '10.8.0.9');
    addNftMasq(w.host, GONE, 'eth0', '10.8.0.3');
    const r = await callPlugin(w, 'GC', LIVE, valid([{ containerID: 'live', ifname: 'eth0' }]));
    expect(r.exitCode, r.stdout).toBe(0);
    expect(w.host.nft.map((x) => x.handle)).toEqual([keep]);
  });

  it('a retry never dooms what the first plan kept: a container that appeared in between stays', async () => {
    addBridge(w.host, B, GONE, '10.8.0.3', '10.8.0.0/24');
    const late: Attachment = { network: NET, containerId: 'late' };
    let lateState: ReturnType<typeof addBridge> | undefined;
    w.host.beforeApply = (kind) => {
      if (kind !== 'restore' || lateState) return undefined;
      lateState = addBridge(w.host, B, late, '10.8.0.4', '10.8.0.0/24');
      return 'fail';
    };
    const r = await callPlugin(w, 'GC', LIVE, valid([{ containerID: 'live', ifname: 'eth0' }]));
    expect(r.exitCode, r.stdout).toBe(0);
    expect(w.host.table(B).rules.map((x) => x.line).sort()).toEqual([lateState?.jump, ...(lateState?.inside ?? [])].map((x) => x?.line).sort());
  });

  it('cleanup errors are logged and GC exits 0 unless strict', async () => {
    addBridge(w.host, B, GONE, '10.8.0.3', '10.8.0.0/24');
    w.host.beforeApply = () => 'fail';
    expect((await callPlugin(w, 'GC', LIVE, valid([]))).exitCode).toBe(0);
    const strict = await callPlugin(w, 'GC', LIVE, { conf: { 'cni.dev/valid-attachments': [], strict: true } });
    expect(strict.exitCode).toBe(1);
    expect(JSON.parse(strict.stdout).code).toBe(5);
  });
});
