import { describe, expect, it } from 'vitest';
import { nsMust } from '../../support/netns.js';
import { sleep } from '../../support/proc.js';
import { loadNft, restore, VARIANTS } from '../../support/xtables.js';
import { nftComment, nftRuleset, type NftMasq } from '../backends/host.js';
import { e2eSuite, expectForeignIntact } from '../support/expect.js';
import { masqState } from '../support/iptables.js';
import { newContainerId, withLab } from '../support/lab.js';
import { gc, leak, live, makeHook, masqWhole, procText, sweep, until, world, writeCache, type World } from './support/world.js';

/**
 * Issue 9, failure 1: when a transaction fails, sweep and GC re-read the
 * table and re-plan. A container that started in between (host-local
 * reservation, libcni cache and bridge rules all written) must keep its
 * chain and jump: a retry may only shrink what the first plan doomed, and
 * records are read again.
 *
 * The moment "between the first read and the retry" is made deterministic
 * with a PATH wrapper around iptables-restore / nft (support/world.ts): the
 * janitor's first transaction waits there while the test starts a real
 * container, then either fails once with a "vanished" error, or (the
 * --settle scenes) runs for real and fails because an orphan was deleted
 * during the settle.
 */

e2eSuite();

async function deleteIptablesState(w: World, containerId: string): Promise<void> {
  const snap = await w.lab.snapshot([4]);
  const s = masqState(snap.v4, w.lab.network, containerId);
  const chain = w.lab.chain(containerId);
  const text = ['*nat', ...s.jumps.map((j) => j.replace(/^-A /, '-D ')), `-F ${chain}`, `-X ${chain}`, 'COMMIT', ''].join('\n');
  await restore(w.lab.host, w.lab.toolchain, 4, text);
}

function expectGone(w: World, v4: string, containerId: string, what: string): void {
  expect(masqState(v4, w.lab.network, containerId), `${what} (${containerId}) left state`).toEqual({ chainDeclared: false, jumps: [], chainRules: [] });
}

function expectWhole(w: World, v4: string, containerId: string, ip: string, what: string): void {
  const r = masqWhole(v4, w.lab.network, containerId, [ip]);
  expect(r.ok, `${what} (${containerId}) lost masquerade state: ${r.why}`).toBe(true);
}

describe.each(VARIANTS)('iptables-%s: sweep and GC retry from fresh records', (variant) => {
  it('sweep --apply: the first transaction fails once; a container started before the retry keeps its chain and jump', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const a = await live(w);
      const o1 = await leak(w);
      const o2 = await leak(w);
      const hook = makeHook(w, 'iptables', 'fail-once');
      let n: Awaited<ReturnType<typeof live>> | undefined;
      const r = await hook.around(sweep(w, ['--apply', '--json'], hook.dir), async () => {
        n = await live(w);
      });
      expect(hook.fired(), `the janitor never reached a transaction:\n${procText(r)}`).toBe(true);
      expect(n).toBeDefined();
      const snap = await lab.snapshot();
      expectWhole(w, snap.v4, n!.c.id, n!.ip, 'container started before the retry');
      expectWhole(w, snap.v4, a.c.id, a.ip, 'container live all along');
      expect(r.exitCode, procText(r)).toBe(0);
      expectGone(w, snap.v4, o1.c.id, 'orphan 1');
      expectGone(w, snap.v4, o2.c.id, 'orphan 2');
      expectForeignIntact(lab, snap);
    }));

  it('sweep --apply --settle: an orphan deleted during the settle fails the first transaction; a container started before the retry keeps its chain and jump', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const a = await live(w);
      const o1 = await leak(w);
      const o2 = await leak(w);
      const hook = makeHook(w, 'iptables', 'pause-once');
      const run = sweep(w, ['--apply', '--json', '--settle', '2'], hook.dir);
      // During the settle (the tables are read, the records not yet): somebody else removes orphan 1.
      const deleted = (async () => {
        await until(() => hook.readDone());
        await sleep(300);
        await deleteIptablesState(w, o1.c.id);
      })();
      let n: Awaited<ReturnType<typeof live>> | undefined;
      const r = await hook.around(run, async () => {
        await deleted;
        n = await live(w);
      });
      await deleted;
      expect(hook.fired(), `the janitor never reached a transaction:\n${procText(r)}`).toBe(true);
      const snap = await lab.snapshot();
      expectWhole(w, snap.v4, n!.c.id, n!.ip, 'container started before the retry');
      expectWhole(w, snap.v4, a.c.id, a.ip, 'container live all along');
      expect(r.exitCode, procText(r)).toBe(0);
      expectGone(w, snap.v4, o1.c.id, 'orphan 1 (deleted during the settle)');
      expectGone(w, snap.v4, o2.c.id, 'orphan 2');
      expectForeignIntact(lab, snap);
    }));

  it('GC: the first transaction fails once; a container started before the retry keeps its chain and jump', () =>
    withLab(variant, async (lab) => {
      const w = world(lab);
      const a = await live(w);
      const o1 = await leak(w);
      const hook = makeHook(w, 'iptables', 'fail-once');
      let n: Awaited<ReturnType<typeof live>> | undefined;
      const r = await hook.around(gc(w, [{ containerID: a.c.id, ifname: 'eth0' }], {}, hook.dir), async () => {
        n = await live(w);
      });
      expect(hook.fired(), `the janitor never reached a transaction:\n${procText(r)}`).toBe(true);
      const snap = await lab.snapshot();
      expectWhole(w, snap.v4, n!.c.id, n!.ip, 'container started before the retry');
      expectWhole(w, snap.v4, a.c.id, a.ip, 'valid container');
      expect({ exitCode: r.exitCode, stdout: r.stdout }, procText(r)).toEqual({ exitCode: 0, stdout: '' });
      expectGone(w, snap.v4, o1.c.id, 'invalid attachment');
      expectForeignIntact(lab, snap);
    }));
});

// ---- the nftables backend's table ----------------------------------------------------

const T = 'inet cni_plugins_masquerade';

interface NftScene {
  readonly w: World;
  readonly subnet: string;
  readonly a: NftMasq;
  readonly o1: NftMasq;
  readonly o2: NftMasq;
  readonly n: NftMasq;
}

async function nftScene(w: World): Promise<NftScene> {
  const net = w.lab.network;
  const base = w.lab.subnet4.replace(/\.0\/24$/, '');
  const rule = (containerId: string, host: number): NftMasq => ({ network: net, ifname: 'eth0', containerId, ip: `${base}.${host}`, subnet: w.lab.subnet4 });
  const s: NftScene = { w, subnet: w.lab.subnet4, a: rule(newContainerId(), 10), o1: rule(newContainerId(), 11), o2: rule(newContainerId(), 12), n: rule(newContainerId(), 13) };
  await loadNft(w.lab.host, nftRuleset([s.a, s.o1, s.o2], ['ip saddr 10.200.0.2 masquerade comment "hand-made, not CNI"']));
  record(s, s.a);
  return s;
}

/** A libcni cache entry for a container on the nft backend (what ADD's result said). */
function record(s: NftScene, r: NftMasq): void {
  const result = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ address: `${r.ip}/24`, interface: 0 }] };
  const list = { cniVersion: '1.0.0', name: r.network, plugins: [{ type: 'bridge' }] };
  writeCache(s.w, list, r.containerId, 'eth0', '/var/run/netns/x', result);
}

async function startNft(s: NftScene): Promise<void> {
  const r = s.n;
  await loadNft(s.w.lab.host, `add rule ${T} masq_checks ip saddr ${r.ip} ip daddr != ${r.subnet} masquerade comment "${nftComment(r.network, r.ifname, r.containerId)}"\n`);
  record(s, r);
}

async function nftRules(s: NftScene): Promise<string[]> {
  return (await nsMust(s.w.lab.host, 'nft', ['-a', 'list', 'chain', ...T.split(' '), 'masq_checks'])).split('\n').map((l) => l.trim());
}

const countOf = (rules: readonly string[], r: NftMasq): number => rules.filter((l) => l.includes(`comment "${nftComment(r.network, r.ifname, r.containerId)}"`)).length;

async function expectNftOutcome(s: NftScene): Promise<void> {
  const rules = await nftRules(s);
  expect(countOf(rules, s.n), `rule of the container started before the retry:\n${rules.join('\n')}`).toBe(1);
  expect(countOf(rules, s.a), 'rule of the container live all along').toBe(1);
  expect(rules.some((l) => l.includes('hand-made, not CNI')), 'foreign nft rule').toBe(true);
}

describe('nft backend (inet cni_plugins_masquerade): sweep and GC retry from fresh records', () => {
  it('sweep --apply: nft -f fails once; a container started before the retry keeps its rule', () =>
    withLab('nft', async (lab) => {
      const s = await nftScene(world(lab));
      const hook = makeHook(s.w, 'nft', 'fail-once');
      const r = await hook.around(sweep(s.w, ['--apply', '--json'], hook.dir), () => startNft(s));
      expect(hook.fired(), `the janitor never reached nft -f:\n${procText(r)}`).toBe(true);
      await expectNftOutcome(s);
      expect(r.exitCode, procText(r)).toBe(0);
      const rules = await nftRules(s);
      expect(countOf(rules, s.o1) + countOf(rules, s.o2), 'orphans left').toBe(0);
    }));

  it('sweep --apply --settle: an orphan rule deleted during the settle fails the first batch; a container started before the retry keeps its rule', () =>
    withLab('nft', async (lab) => {
      const s = await nftScene(world(lab));
      const hook = makeHook(s.w, 'nft', 'pause-once');
      const run = sweep(s.w, ['--apply', '--json', '--settle', '2'], hook.dir);
      const deleted = (async () => {
        await until(() => hook.readDone());
        await sleep(300);
        const line = (await nftRules(s)).find((l) => l.includes(nftComment(s.o1.network, 'eth0', s.o1.containerId)));
        const handle = /# handle (\d+)/.exec(line ?? '')?.[1];
        if (!handle) throw new Error(`no handle for orphan 1 in ${line ?? '(none)'}`);
        await nsMust(lab.host, 'nft', ['delete', 'rule', ...T.split(' '), 'masq_checks', 'handle', handle]);
      })();
      const r = await hook.around(run, async () => {
        await deleted;
        await startNft(s);
      });
      await deleted;
      expect(hook.fired(), `the janitor never reached nft -f:\n${procText(r)}`).toBe(true);
      await expectNftOutcome(s);
      expect(r.exitCode, procText(r)).toBe(0);
      const rules = await nftRules(s);
      expect(countOf(rules, s.o1) + countOf(rules, s.o2), 'orphans left').toBe(0);
    }));

  it('GC: nft -f fails once; a container started before the retry keeps its rule', () =>
    withLab('nft', async (lab) => {
      const s = await nftScene(world(lab));
      const hook = makeHook(s.w, 'nft', 'fail-once');
      const r = await hook.around(gc(s.w, [{ containerID: s.a.containerId, ifname: 'eth0' }], {}, hook.dir), () => startNft(s));
      expect(hook.fired(), `the janitor never reached nft -f:\n${procText(r)}`).toBe(true);
      await expectNftOutcome(s);
      expect({ exitCode: r.exitCode, stdout: r.stdout }, procText(r)).toEqual({ exitCode: 0, stdout: '' });
      const rules = await nftRules(s);
      expect(countOf(rules, s.o1) + countOf(rules, s.o2), 'invalid attachments left').toBe(0);
    }));
});
