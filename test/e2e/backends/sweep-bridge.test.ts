import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeNetns } from '../../support/netns.js';
import { describeProc } from '../../support/proc.js';
import { backendSuite, createNs, hostState, masqChain, sweep, tempDir, traces, upstream, without, type Attachment, type HostState, type Ns } from './host.js';

/**
 * sweep against host state made by the real Debian bridge plugin (v1.1.1,
 * iptables backend) and host-local, all inside a throwaway "host" namespace:
 * - leaks: ADD, then bridge's DEL with CNI_NETNS="" (what nerdctl, ctr and
 *   CRI after a reboot send): the IP is released, the masquerade state stays;
 * - live attachments, some also in libcni's result cache;
 * - a static-IPAM network, where the result cache is the only record;
 * - a leak whose cache file is corrupt (kept: it might be live).
 */

backendSuite();

const NET = 'sweepnet';
const STATIC = 'staticnet';
const hex = (): string => randomBytes(32).toString('hex');

interface Container {
  readonly network: string;
  readonly id: string;
  ns: Ns | undefined;
  result: unknown;
}

let host: Ns;
let stateDir: string;
const containers: Container[] = [];
let pristine: HostState;
let before: HostState;

function conflist(network: string, extra: { ip?: string } = {}): Record<string, unknown> {
  if (network === NET) {
    return {
      cniVersion: '1.0.0',
      name: NET,
      type: 'bridge',
      bridge: 'mjsw0',
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'host-local', dataDir: join(stateDir, 'networks'), ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd00:77::/64' }]] },
    };
  }
  return {
    cniVersion: '1.0.0',
    name: STATIC,
    type: 'bridge',
    bridge: 'mjst0',
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'static', addresses: [{ address: `${extra.ip ?? '10.78.0.9'}/24`, gateway: '10.78.0.1' }] },
  };
}

async function add(network: string, id: string, ip?: string): Promise<Container> {
  const ns = await createNs('ctr');
  // No IPv6 duplicate address detection wait inside the container.
  await ns.mustExec('sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
  const r = await upstream(host, 'bridge', { command: 'ADD', containerId: id, ifname: 'eth0', netns: ns.path, conf: conflist(network, ip ? { ip } : {}) });
  if (r.exitCode !== 0) throw new Error(describeProc(r));
  const c: Container = { network, id, ns, result: JSON.parse(r.stdout) as unknown };
  containers.push(c);
  return c;
}

/** The leak: bridge's DEL with an empty netns releases the IP and leaves masquerading; then the container goes away. */
async function leak(c: Container, ip?: string): Promise<void> {
  const r = await upstream(host, 'bridge', { command: 'DEL', containerId: c.id, ifname: 'eth0', netns: '', conf: conflist(c.network, ip ? { ip } : {}) });
  if (r.exitCode !== 0) throw new Error(describeProc(r));
  if (c.ns) await removeNetns(c.ns);
  c.ns = undefined;
}

/** libcni's result cache entry (cachedInfo) for an attachment. */
function cache(c: Container, ip?: string): void {
  const config = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: c.network, plugins: [conflist(c.network, ip ? { ip } : {})] })).toString('base64');
  const entry = { kind: 'cniCacheV1', containerId: c.id, config, ifName: 'eth0', networkName: c.network, netns: c.ns?.path ?? '', cniArgs: null, result: c.result };
  writeFileSync(join(stateDir, 'results', `${c.network}-${c.id}-eth0`), JSON.stringify(entry));
}

const at = (c: Container): Attachment => ({ network: c.network, containerId: c.id });

let L1: Container, L2: Container, A1: Container, A2: Container, D1: Container, S1: Container, S2: Container;

beforeAll(async () => {
  stateDir = tempDir('sweep-state');
  mkdirSync(join(stateDir, 'results'));
  host = await createNs('host');
  // Somebody else's NAT on the same host.
  await host.mustExec('iptables', ['-w', '5', '-t', 'nat', '-A', 'POSTROUTING', '-s', '192.168.77.0/24', '-j', 'MASQUERADE']);
  await host.mustExec('ip6tables', ['-w', '5', '-t', 'nat', '-A', 'POSTROUTING', '-s', 'fd00:99::/64', '-j', 'MASQUERADE']);
  pristine = await hostState(host);

  L1 = await add(NET, hex());
  L2 = await add(NET, 'leaked-2');
  A1 = await add(NET, hex());
  A2 = await add(NET, 'alive-2');
  D1 = await add(NET, hex());
  S1 = await add(STATIC, 'static-alive', '10.78.0.5');
  S2 = await add(STATIC, 'static-leaked', '10.78.0.6');
  await leak(L1);
  await leak(L2);
  await leak(D1);
  await leak(S2, '10.78.0.6');
  cache(A1);
  cache(S1, '10.78.0.5');
  // A crash mid-write: the cache file of D1 is cut short. It might be live: sweep must keep it.
  writeFileSync(join(stateDir, 'results', `${NET}-${D1.id}-eth0`), '{"kind":"cniCacheV1","containerId":"' + D1.id.slice(0, 20));
  before = await hostState(host);
}, 60_000);

afterAll(async () => {
  for (const c of containers) if (c.ns) await removeNetns(c.ns);
  if (host) await removeNetns(host);
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

interface Report {
  orphans: { network: string; containerId: string; where: string; object: string; rules: number; ips: string[] }[];
  totals: { attachments: number; chains: number; rules: number; nftRules: number };
  errors: string[];
  removed?: { chains: number; jumps: number; nftRules: number };
}

describe('sweep on a host made by the real bridge plugin', () => {
  it('the scene: leaks and live attachments hold masquerade state; only live ones hold an IP reservation', () => {
    for (const c of [L1, L2, A1, A2, D1]) expect(traces(before, at(c)), c.id).toMatchObject({ 'iptables-nft': 4, 'ip6tables-nft': 4 });
    for (const c of [S1, S2]) expect(traces(before, at(c)), c.id).toMatchObject({ 'iptables-nft': 4, 'ip6tables-nft': 0 });
    const reserved = readdirSync(join(stateDir, 'networks', NET)).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes('.') !== f.includes(':'));
    expect(reserved).toHaveLength(4); // A1 and A2, v4 and v6
    expect(existsSync(join(stateDir, 'networks', STATIC))).toBe(false);
  });

  it('dry run (--json) lists exactly the orphans, keeps the doubtful one, changes nothing and exits 1', async () => {
    const r = await sweep(host, ['--json', '--state-dir', stateDir]);
    expect(r.exitCode, describeProc(r)).toBe(1);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.errors).toEqual([]);
    const rows = report.orphans.map((o) => `${o.where} ${o.network}/${o.containerId} ${o.object} ${o.rules} ${o.ips.join(',')}`).sort();
    const ip = (c: Container, family: 4 | 6): string =>
      ((c.result as { ips: { address: string }[] }).ips.map((i) => i.address.split('/')[0] as string).find((a) => a.includes(':') === (family === 6)) as string) + (family === 4 ? '/32' : '/128');
    expect(rows).toEqual(
      [
        `iptables-nft v4 ${NET}/${L1.id} ${masqChain(NET, L1.id)} 3 ${ip(L1, 4)}`,
        `ip6tables-nft v6 ${NET}/${L1.id} ${masqChain(NET, L1.id)} 3 ${ip(L1, 6)}`,
        `iptables-nft v4 ${NET}/${L2.id} ${masqChain(NET, L2.id)} 3 ${ip(L2, 4)}`,
        `ip6tables-nft v6 ${NET}/${L2.id} ${masqChain(NET, L2.id)} 3 ${ip(L2, 6)}`,
        `iptables-nft v4 ${STATIC}/${S2.id} ${masqChain(STATIC, S2.id)} 3 10.78.0.6/32`,
      ].sort(),
    );
    expect(report.totals).toEqual({ attachments: 3, chains: 5, rules: 15, nftRules: 0 });
    expect(r.stderr).toContain(`${NET}-${D1.id}-eth0`);
    expect(await hostState(host)).toEqual(before);
  });

  it('the text dry run and --network scope agree', async () => {
    const text = await sweep(host, ['--state-dir', stateDir]);
    expect(text.exitCode, describeProc(text)).toBe(1);
    expect(text.stdout).toMatch(/^3 orphaned attachments: 5 chains, 15 rules \(0 nft\)/m);
    const scoped = await sweep(host, ['--json', '--state-dir', stateDir, '--network', STATIC]);
    expect(scoped.exitCode, describeProc(scoped)).toBe(1);
    expect((JSON.parse(scoped.stdout) as Report).orphans.map((o) => o.containerId)).toEqual([S2.id]);
  });

  it('--apply removes the orphans and nothing else', async () => {
    const r = await sweep(host, ['--apply', '--json', '--state-dir', stateDir]);
    expect(r.exitCode, describeProc(r)).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.errors).toEqual([]);
    expect(report.removed).toMatchObject({ chains: 5, jumps: 5, nftRules: 0 });
    const after = await hostState(host);
    expect(after).toEqual(without(before, { iptables: [at(L1), at(L2), at(S2)] }));
    for (const c of [A1, A2, S1, D1]) expect(traces(after, at(c)), c.id).toEqual(traces(before, at(c)));
    // Everything that was there before any container is still there.
    for (const t of ['iptables-nft', 'ip6tables-nft'] as const) for (const l of pristine[t]) expect(after[t]).toContain(l);
  });

  it('afterwards a dry run and a second apply find nothing (exit 0)', async () => {
    const dry = await sweep(host, ['--json', '--state-dir', stateDir]);
    expect(dry.exitCode, describeProc(dry)).toBe(0);
    expect((JSON.parse(dry.stdout) as Report).orphans).toEqual([]);
    const applied = await sweep(host, ['--apply', '--json', '--state-dir', stateDir]);
    expect(applied.exitCode, describeProc(applied)).toBe(0);
    expect((JSON.parse(applied.stdout) as Report).removed).toMatchObject({ chains: 0, jumps: 0, nftRules: 0 });
    expect(await hostState(host)).toEqual(without(before, { iptables: [at(L1), at(L2), at(S2)] }));
  });

  it('live attachments still work with bridge: their own DEL removes their state', async () => {
    const r = await upstream(host, 'bridge', { command: 'DEL', containerId: A2.id, ifname: 'eth0', netns: A2.ns?.path ?? '', conf: conflist(NET) });
    expect(r.exitCode, describeProc(r)).toBe(0);
    expect(traces(await hostState(host), at(A2))).toMatchObject({ 'iptables-nft': 0, 'ip6tables-nft': 0 });
  });
});
