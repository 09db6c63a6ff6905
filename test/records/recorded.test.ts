import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cachedInterfaces, looksLikeStateDir, MAX_ENTRY, readEntry, readRecords } from '../../src/records/recorded.js';

/**
 * readRecords over real-format files in a temp state dir: libcni's result
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

describe('readRecords', () => {
  it('a state dir that does not exist records nothing', () => {
    const r = readRecords(join(dir, 'missing'));
    expect(r.has('bridge', 'c1')).toBe(false);
    expect(r.hasPrefix('bridge', 'c')).toBe(false);
    expect(r.counts).toEqual({ cache: 0, reservations: 0 });
    expect(r.problems).toEqual([]);
  });

  it('hasPrefix(network, "") is false with nothing recorded (the empty-prefix lookup must not run off the end)', () => {
    // A cut nft comment may leave an empty id prefix (cutOwner gives containerId ''); sweep then keeps that rule forever.
    const r = readRecords(join(dir, 'missing'));
    expect(r.hasPrefix('bridge', '')).toBe(false);
  });

  it('reads valid cache entries by their content', () => {
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0'));
    write('results/bridge-c1-eth1', cacheEntry('bridge', 'c1', 'eth1'));
    write('results/my-net-c-2-eth0', cacheEntry('my-net', 'c-2', 'eth0'));
    const r = readRecords(dir);
    expect(r.counts).toEqual({ cache: 3, reservations: 0 });
    expect(r.problems).toEqual([]);
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
    const r = readRecords(dir);
    expect(r.counts).toEqual({ cache: 0, reservations: 4 });
    expect(r.problems).toEqual([]);
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
    const r = readRecords(dir);
    expect(r.counts.cache).toBe(0);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toContain(garbage);
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
    const r = readRecords(dir);
    expect(r.counts).toEqual({ cache: 1, reservations: 0 });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toContain('bridge-dead1-eth0');
    expect(r.has('bridge', 'dead1')).toBe(true);
    expect(r.has('bridge', 'live1')).toBe(true);
    expect(r.has('bridge', 'dead2')).toBe(false);
  });

  it('an empty cache file and a pre-cniCacheV1 entry (a bare result) are doubtful', () => {
    write('results/bridge-e1-eth0', '');
    write('results/bridge-old1-eth0', JSON.stringify({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.88.0.9/16' }] }));
    const r = readRecords(dir);
    expect(r.counts.cache).toBe(0);
    expect(r.problems).toHaveLength(2);
    expect(r.has('bridge', 'e1')).toBe(true);
    expect(r.has('bridge', 'old1')).toBe(true);
    expect(r.has('bridge', 'x')).toBe(false);
  });

  it('an empty reservation file keeps its whole network, and only that network', () => {
    write('networks/bridge/10.88.0.4', '');
    write('networks/podman/10.89.0.7', 'p1\r\neth0');
    const r = readRecords(dir);
    expect(r.counts.reservations).toBe(1);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toContain('10.88.0.4');
    expect(r.has('bridge', 'anything')).toBe(true);
    expect(r.hasPrefix('bridge', 'anything')).toBe(true);
    expect(r.has('podman', 'p2')).toBe(false);
  });

  it('hasPrefix answers for ids a 128-character nft comment cut short', () => {
    const id = 'default-' + '0123456789abcdef'.repeat(4);
    write(`results/bridge-${id}-eth0`, cacheEntry('bridge', id, 'eth0'));
    write('networks/podman/10.89.0.7', `${id}\r\neth0`);
    const r = readRecords(dir);
    expect(r.hasPrefix('bridge', id.slice(0, 66))).toBe(true);
    expect(r.hasPrefix('podman', id.slice(0, 66))).toBe(true);
    expect(r.hasPrefix('bridge', 'default-f')).toBe(false);
    expect(r.hasPrefix('other', id.slice(0, 66))).toBe(false);
  });

  it('a stray file next to network directories is a problem of that name only, never of the real networks', () => {
    write('networks/README', 'not a network');
    write('networks/bridge/10.88.0.2', 'c1\r\neth0');
    const r = readRecords(dir);
    expect(r.counts.reservations).toBe(1);
    expect(r.problems).toEqual([`${join(dir, 'networks/README')}: not a directory`]);
    expect(r.has('bridge', 'c1')).toBe(true);
    expect(r.has('bridge', 'c2')).toBe(false);
  });

  it('cache and reservations together', () => {
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0'));
    write('networks/bridge/10.88.0.3', 'c2\r\neth0');
    write('networks/bridge/lock', '');
    const r = readRecords(dir);
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
      const r = readRecords(d);
      expect(r.has('bridge', 'anything')).toBe(true);
      expect(r.problems).toHaveLength(1);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('readRecords per interface', () => {
  it('keeps each interface with its canonical IPs, and says when a record names none', () => {
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0', '10.88.0.2/16'));
    write('results/bridge-c1-net1', cacheEntry('bridge', 'c1', 'net1', 'fd00:0::5/64'));
    write('results/bridge-c2-eth0', JSON.stringify({ kind: 'cniCacheV1', containerId: 'c2', networkName: 'bridge', ifName: 'eth0' }));
    write('networks/bridge/10.88.0.9', 'c3\r\neth1');
    const r = readRecords(dir);
    expect(r.interfaces('bridge', 'c1')).toEqual(
      expect.arrayContaining([
        { ifname: 'eth0', ips: ['10.88.0.2'] },
        { ifname: 'net1', ips: ['fd00::5'] },
      ]),
    );
    expect(r.interfaces('bridge', 'c2')).toEqual([{ ifname: 'eth0', ips: undefined }]);
    expect(r.interfaces('bridge', 'c3')).toEqual([{ ifname: 'eth1', ips: ['10.88.0.9'] }]);
    expect(r.interfaces('bridge', 'nope')).toEqual([]);
    expect([...r.networks]).toEqual(['bridge']);
  });

  it('reservations: false skips host-local', () => {
    write('networks/bridge/10.88.0.9', 'c3\r\neth1');
    expect(readRecords(dir, { reservations: false }).has('bridge', 'c3')).toBe(false);
  });

  it('doubtful names keep every split (net-a-b-eth0)', () => {
    write('results/net-a-b-eth0', 'garbage');
    const r = readRecords(dir);
    for (const [n, c] of [['net', 'a-b'], ['net-a', 'b'], ['net', 'a'], ['net', 'a-b-eth0'.slice(0, 3)]] as const) {
      expect(r.doubtful(n, c)).toBe(true);
      expect(r.has(n, c)).toBe(true);
    }
    // Every split leaves a non-empty ifname: net-a-b/eth0 would leave none.
    expect(r.doubtful('net-a-b', 'eth0')).toBe(false);
    expect(r.doubtful('net-a', 'c')).toBe(false);
    expect(r.doubtful('ne', 't-a')).toBe(false);
  });
});

describe('cachedInterfaces (DEL)', () => {
  it('reads only <net>-<id>-* entries, checked against their contents', () => {
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0', '10.88.0.2/16'));
    write('results/bridge-c1-net1', cacheEntry('bridge', 'c1', 'net1', '10.88.0.3/16'));
    // Named like c1's, but it is another attachment (net "bridge-c1", id "x"): not c1's.
    write('results/bridge-c1-x-eth0', cacheEntry('bridge-c1', 'x', 'eth0'));
    write('results/bridge-c2-eth0', cacheEntry('bridge', 'c2', 'eth0'));
    const got = cachedInterfaces(dir, 'bridge', 'c1').sort((a, b) => String(a.ifname).localeCompare(String(b.ifname)));
    expect(got).toEqual([
      { ifname: 'eth0', ips: ['10.88.0.2'] },
      { ifname: 'net1', ips: ['10.88.0.3'] },
    ]);
  });

  it('an unreadable entry counts as a live interface of unknown addresses', () => {
    write('results/bridge-c1-net1', 'not json');
    expect(cachedInterfaces(dir, 'bridge', 'c1')).toEqual([{ ifname: 'net1', ips: undefined }]);
    expect(cachedInterfaces(join(dir, 'missing'), 'bridge', 'c1')).toEqual([]);
  });
});

// ---- hostile filesystems (issue 10 case 5, issue 9 failure 6) ----------------

/**
 * readRecords in a child process, so a read that blocks (a FIFO opened
 * without O_NONBLOCK) fails the test instead of hanging the worker. The
 * module is bundled once with esbuild; the child prints what it read.
 */
let bundleDir: string;
let bundle: string;
beforeAll(() => {
  bundleDir = mkdtempSync(join(tmpdir(), 'mjb-recorded-bundle-'));
  bundle = join(bundleDir, 'recorded.mjs');
  buildSync({ entryPoints: [join(__dirname, '../../src/records/recorded.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent' });
});
afterAll(() => rmSync(bundleDir, { recursive: true, force: true }));

interface ChildRead {
  readonly status: number | null;
  readonly timedOut: boolean;
  readonly out: { problems: string[]; has: Record<string, boolean>; counts: { cache: number; reservations: number } } | undefined;
  readonly stderr: string;
}

function readInChild(stateDir: string, ask: readonly [string, string][]): ChildRead {
  const script = `
    import { readRecords } from ${JSON.stringify(bundle)};
    const r = readRecords(${JSON.stringify(stateDir)});
    const has = {};
    for (const [n, c] of ${JSON.stringify(ask)}) has[n + '/' + c] = r.has(n, c);
    process.stdout.write(JSON.stringify({ problems: r.problems, has, counts: r.counts }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  const timedOut = r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
  let out: ChildRead['out'];
  try {
    out = r.status === 0 ? JSON.parse(r.stdout) : undefined;
  } catch {
    out = undefined;
  }
  return { status: r.status, timedOut, out, stderr: r.stderr };
}

function mkfifo(path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr.toString()}`);
}

describe('hostile state dirs', () => {
  it('a FIFO in results/ does not block; it is doubtful and the rest is read', () => {
    mkfifo(join(dir, 'results/bridge-fifo1-eth0'));
    write('results/bridge-c1-eth0', cacheEntry('bridge', 'c1', 'eth0'));
    const r = readInChild(dir, [['bridge', 'fifo1'], ['bridge', 'c1'], ['bridge', 'c2']]);
    expect(r.timedOut).toBe(false);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out?.has).toEqual({ 'bridge/fifo1': true, 'bridge/c1': true, 'bridge/c2': false });
    expect(r.out?.problems.join('\n')).toMatch(/bridge-fifo1-eth0: not a regular file/);
  });

  it('a symlink to a FIFO, and a symlink to /dev/zero, are never followed', () => {
    mkfifo(join(dir, 'elsewhere/fifo'));
    mkdirSync(join(dir, 'results'), { recursive: true });
    symlinkSync(join(dir, 'elsewhere/fifo'), join(dir, 'results/bridge-l1-eth0'));
    symlinkSync('/dev/zero', join(dir, 'results/bridge-l2-eth0'));
    const r = readInChild(dir, [['bridge', 'l1'], ['bridge', 'l2']]);
    expect(r.timedOut).toBe(false);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out?.has).toEqual({ 'bridge/l1': true, 'bridge/l2': true });
    expect(r.out?.problems.filter((p) => p.includes('a symbolic link'))).toHaveLength(2);
  });

  it('a reservation that is a FIFO keeps its network and does not block', () => {
    mkfifo(join(dir, 'networks/bridge/10.88.0.5'));
    write('networks/podman/10.89.0.7', 'p1\r\neth0');
    const r = readInChild(dir, [['bridge', 'anyone'], ['podman', 'p1'], ['podman', 'p2']]);
    expect(r.timedOut).toBe(false);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out?.has).toEqual({ 'bridge/anyone': true, 'podman/p1': true, 'podman/p2': false });
  });

  it('readEntry on /dev/zero directly: not a regular file, read nothing', () => {
    expect(readEntry('/dev/zero')).toEqual({ ok: false, why: 'not a regular file' });
  });

  it('a 0600 file with secret content that is not JSON: doubtful, and the secret never appears in problems', () => {
    const secret = 'AKIA-very-secret-token-4242';
    const f = write('results/bridge-s1-eth0', `password=${secret}\n`);
    chmodSync(f, 0o600);
    const r = readRecords(dir);
    expect(r.has('bridge', 's1')).toBe(true);
    expect(r.problems).toHaveLength(1);
    expect(r.problems.join('\n')).not.toContain(secret);
    expect(r.problems.join('\n')).not.toContain('password');
    // Also when it parses as JSON but is not a cache entry.
    write('results/bridge-s2-eth0', JSON.stringify({ token: secret }));
    expect(readRecords(dir).problems.join('\n')).not.toContain(secret);
  });

  it('an entry larger than MAX_ENTRY is doubtful, not read', () => {
    const big = cacheEntry('bridge', 'big1', 'eth0').padEnd(MAX_ENTRY + 10, ' ');
    write('results/bridge-big1-eth0', big);
    const r = readRecords(dir);
    expect(r.counts.cache).toBe(0);
    expect(r.has('bridge', 'big1')).toBe(true);
    expect(r.problems.join('\n')).toMatch(/larger than/);
    expect(readEntry(join(dir, 'results/bridge-big1-eth0'))).toEqual({ ok: false, why: `larger than ${MAX_ENTRY} bytes` });
    // One byte under the limit is read.
    const f = write('results/ok', 'x'.repeat(MAX_ENTRY));
    expect(readEntry(f)).toMatchObject({ ok: true });
  });

  it(
    'a huge directory: 100,000 cache entries of one network and 20,000 unreadable ones are read (time printed, not asserted)',
    () => {
      const results = join(dir, 'results');
      mkdirSync(results, { recursive: true });
      const N = 100_000;
      const BAD = 20_000;
      for (let i = 0; i < N; i++) writeFileSync(join(results, `bridge-c${i}-eth0`), `{"kind":"cniCacheV1","containerId":"c${i}","networkName":"bridge","ifName":"eth0","result":{"ips":[{"address":"10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/8"}]}}`);
      for (let i = 0; i < BAD; i++) writeFileSync(join(results, `bridge-dead${i}-eth0`), 'x');
      const t0 = process.hrtime.bigint();
      const r = readRecords(dir);
      const t1 = process.hrtime.bigint();
      let found = 0;
      for (let i = 0; i < BAD; i++) {
        if (r.has('bridge', `dead${i}`)) found++;
        if (r.hasPrefix('bridge', `dead${i}`)) found++;
        if (r.interfaces('bridge', `c${i}`).length === 1) found++;
      }
      const t2 = process.hrtime.bigint();
      console.log(`readRecords: ${N} entries + ${BAD} unreadable in ${Number(t1 - t0) / 1e6} ms; ${3 * BAD} lookups in ${Number(t2 - t1) / 1e6} ms`);
      expect(r.counts.cache).toBe(N);
      expect(r.problems).toHaveLength(BAD);
      expect(found).toBe(3 * BAD);
      expect(r.has('bridge', 'nobody')).toBe(false);
    },
    600_000,
  );
});
