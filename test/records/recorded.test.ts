import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { looksLikeStateDir, readRecorded } from '../../src/state/recorded.js';

/**
 * readRecorded over real-format files in a temp state dir: libcni's result
 * cache (<dir>/results/<net>-<cid>-<ifname>) and host-local's reservations
 * (<dir>/networks/<net>/<ip>, first line the container ID, CRLF, ifname).
 */

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mjb-recorded-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A cache entry the way libcni (cni v1.x, cachedInfo) writes it. */
function cacheEntry(network: string, containerId: string, ifName: string, ip = '10.88.0.2/16'): string {
  const config = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: network, plugins: [{ type: 'bridge' }, { type: 'masq-janitor' }] })).toString('base64');
  return JSON.stringify({
    kind: 'cniCacheV1',
    containerId,
    config,
    ifName,
    networkName: network,
    cniArgs: [['IgnoreUnknown', '1']],
    result: {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'cni0', mac: '0a:58:0a:58:00:01' }, { name: ifName, mac: '0a:58:0a:58:00:02', sandbox: '/var/run/netns/x' }],
      ips: [{ interface: 1, address: ip, gateway: ip.replace(/\d+\/\d+$/, '1') }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: {},
    },
  });
}

function write(rel: string, content: string): string {
  const file = join(dir, rel);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, content);
  return file;
}

describe('readRecorded', () => {
  it('a state dir that does not exist records nothing', () => {
    const r = readRecorded(join(dir, 'missing'));
    expect(r.has('bridge', 'c1')).toBe(false);
    expect(r.hasPrefix('bridge', '')).toBe(false);
    expect(r.counts).toEqual({ cache: 0, reservations: 0 });
    expect(r.doubtful).toEqual([]);
  });

  it('reads valid cache entries by their content', () => {
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0'));
    write('results/bridge-c1-eth1', cacheEntry('bridge', 'c1', 'eth1'));
    write('results/my-net-c-2-eth0', cacheEntry('my-net', 'c-2', 'eth0'));
    const r = readRecorded(dir);
    expect(r.counts).toEqual({ cache: 3, reservations: 0 });
    expect(r.doubtful).toEqual([]);
    expect(r.has('bridge', 'c1')).toBe(true);
    expect(r.has('my-net', 'c-2')).toBe(true);
    // A valid entry says exactly which split of its name is meant.
    expect(r.has('my', 'net-c-2')).toBe(false);
    expect(r.has('bridge', 'c')).toBe(false);
    expect(r.has('podman', 'c1')).toBe(false);
    expect(r.has('bridge', 'c2')).toBe(false);
  });

  it('reads host-local reservations (CRLF + ifname, or the id alone), v4 and v6, and skips lock and last_reserved_ip.N', () => {
    write('networks/bridge/10.88.0.2', 'c1\r\neth0');
    write('networks/bridge/10.88.0.3', 'c2'); // host-local before v0.8 wrote the id only
    write('networks/bridge/fd00:88::2', 'c1\r\neth0');
    write('networks/bridge/lock', '');
    write('networks/bridge/last_reserved_ip.0', '10.88.0.3');
    write('networks/bridge/last_reserved_ip.1', 'fd00:88::2');
    write('networks/podman/10.89.0.7', 'p1\r\neth0');
    const r = readRecorded(dir);
    expect(r.counts).toEqual({ cache: 0, reservations: 4 });
    expect(r.doubtful).toEqual([]);
    expect(r.has('bridge', 'c1')).toBe(true);
    expect(r.has('bridge', 'c2')).toBe(true);
    expect(r.has('podman', 'p1')).toBe(true);
    expect(r.has('podman', 'c1')).toBe(false);
    expect(r.has('bridge', 'p1')).toBe(false);
    // The contents of last_reserved_ip.N are IPs, not container IDs.
    expect(r.has('bridge', '10.88.0.3')).toBe(false);
    expect(r.has('bridge', 'eth0')).toBe(false);
  });

  it('keeps whatever a corrupt cache file may name, under every split of its name', () => {
    const garbage = write('results/net-a-ctr-1-eth0', '\u0000\u0001 not json at all');
    const r = readRecorded(dir);
    expect(r.counts.cache).toBe(0);
    expect(r.doubtful).toHaveLength(1);
    expect(r.doubtful[0]).toContain(garbage);
    // <net>-<cid>-<ifname> with dashes everywhere: net-a/ctr-1, net/a-ctr-1, net-a-ctr/1 ...
    expect(r.has('net-a', 'ctr-1')).toBe(true);
    expect(r.has('net', 'a-ctr-1')).toBe(true);
    expect(r.has('net-a-ctr', '1')).toBe(true);
    expect(r.hasPrefix('net-a', 'ctr')).toBe(true);
    // ...but nothing the name cannot stand for.
    expect(r.has('net-a', 'ctr-2')).toBe(false);
    expect(r.has('other', 'ctr-1')).toBe(false);
    expect(r.hasPrefix('net-a', 'x')).toBe(false);
  });

  it('a truncated cache file (a crash mid-write) is doubtful, not valid and not absent', () => {
    const full = cacheEntry('bridge', 'dead1', 'eth0');
    write('results/bridge-dead1-eth0', full.slice(0, Math.floor(full.length / 2)));
    write('results/bridge-live1-eth0', cacheEntry('bridge', 'live1', 'eth0'));
    const r = readRecorded(dir);
    expect(r.counts).toEqual({ cache: 1, reservations: 0 });
    expect(r.doubtful).toHaveLength(1);
    expect(r.doubtful[0]).toContain('bridge-dead1-eth0');
    expect(r.has('bridge', 'dead1')).toBe(true);
    expect(r.has('bridge', 'live1')).toBe(true);
    expect(r.has('bridge', 'dead2')).toBe(false);
  });

  it('an empty cache file and a pre-cniCacheV1 entry (a bare result) are doubtful', () => {
    write('results/bridge-e1-eth0', '');
    write('results/bridge-old1-eth0', JSON.stringify({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.88.0.9/16' }] }));
    const r = readRecorded(dir);
    expect(r.counts.cache).toBe(0);
    expect(r.doubtful).toHaveLength(2);
    expect(r.has('bridge', 'e1')).toBe(true);
    expect(r.has('bridge', 'old1')).toBe(true);
    expect(r.has('bridge', 'x')).toBe(false);
  });

  it('an empty reservation file keeps its whole network, and only that network', () => {
    write('networks/bridge/10.88.0.4', '');
    write('networks/podman/10.89.0.7', 'p1\r\neth0');
    const r = readRecorded(dir);
    expect(r.counts.reservations).toBe(1);
    expect(r.doubtful).toHaveLength(1);
    expect(r.doubtful[0]).toContain('10.88.0.4');
    expect(r.has('bridge', 'anything')).toBe(true);
    expect(r.hasPrefix('bridge', 'anything')).toBe(true);
    expect(r.has('podman', 'p2')).toBe(false);
  });

  it('hasPrefix answers for ids a 128-character nft comment cut short', () => {
    const id = 'default-' + '0123456789abcdef'.repeat(4);
    write(`results/bridge-${id}-eth0`, cacheEntry('bridge', id, 'eth0'));
    write('networks/podman/10.89.0.7', `${id}\r\neth0`);
    const r = readRecorded(dir);
    expect(r.hasPrefix('bridge', id.slice(0, 66))).toBe(true);
    expect(r.hasPrefix('podman', id.slice(0, 66))).toBe(true);
    expect(r.hasPrefix('bridge', 'default-f')).toBe(false);
    expect(r.hasPrefix('other', id.slice(0, 66))).toBe(false);
  });

  it('ignores stray files next to network directories', () => {
    write('networks/README', 'not a network');
    write('networks/bridge/10.88.0.2', 'c1\r\neth0');
    const r = readRecorded(dir);
    expect(r.counts.reservations).toBe(1);
    expect(r.doubtful).toEqual([]);
    expect(r.has('README', 'x')).toBe(false);
  });

  it('cache and reservations together', () => {
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0'));
    write('networks/bridge/10.88.0.3', 'c2\r\neth0');
    write('networks/bridge/lock', '');
    const r = readRecorded(dir);
    expect(r.counts).toEqual({ cache: 1, reservations: 1 });
    expect(['c1', 'c2', 'c3'].map((c) => r.has('bridge', c))).toEqual([true, true, false]);
  });
});

describe('looksLikeStateDir', () => {
  it('refuses a directory with neither results/ nor networks/ (a mistyped --state-dir would doom every container)', () => {
    const d = mkdtempSync(join(tmpdir(), 'mjb-statedir-'));
    try {
      expect(looksLikeStateDir(d)).toBe(false);
      expect(looksLikeStateDir(join(d, 'missing'))).toBe(false);
      mkdirSync(join(d, 'networks'));
      expect(looksLikeStateDir(d)).toBe(true);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('keeps a whole network whose directory cannot be read (a dangling symlink)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'mjb-statedir-'));
    try {
      mkdirSync(join(d, 'networks'));
      const { symlinkSync } = await import('node:fs');
      symlinkSync(join(d, 'nowhere'), join(d, 'networks', 'bridge'));
      const r = readRecorded(d);
      expect(r.has('bridge', 'anything')).toBe(true);
      expect(r.doubtful).toHaveLength(1);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
