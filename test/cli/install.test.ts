import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKUP_SUFFIX } from '../../src/cli/atomic-file.js';
import { install, uninstall } from '../../src/cli/install.js';
import { capture, ensureBundle, fakePlugin, ROOT } from './support.js';

const ORIGINALS = `${ROOT}/examples/original`;
const isRoot = process.getuid?.() === 0;

let dir: string;
let conf: string;
let bin: string;
let plugin: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mj-install-'));
  conf = join(dir, 'net.d');
  bin = join(dir, 'bin');
  await mkdir(conf);
  await mkdir(bin);
  await writeFile(join(bin, 'bridge'), '');
  plugin = await fakePlugin(join(dir, 'masq-janitor'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(cmd: typeof install, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await cmd(argv, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

/** Every file under `root`: name -> content, mode and inode (to see what was touched). */
async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    const st = await stat(p);
    out[p.slice(root.length + 1)] = `${(st.mode & 0o7777).toString(8)} ${st.ino} ${await readFile(p, 'utf8')}`;
  }
  return out;
}

const BRIDGE_LIST = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":true}]}\n';

describe('install', () => {
  it('copies the binary, edits the masquerading lists, reports one line per file', async () => {
    for (const f of await readdir(ORIGINALS)) await copyFile(join(ORIGINALS, f), join(conf, f));
    await writeFile(join(conf, '99-loopback.conf'), '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}');
    await writeFile(join(conf, '05-calico.conflist'), '{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"}]}');
    await writeFile(join(conf, 'notes.txt'), 'not a config');
    await mkdir(join(conf, 'default'));
    await writeFile(join(conf, 'default', 'nerdctl-web.conflist'), BRIDGE_LIST);
    await chmod(join(conf, '87-podman-bridge.conflist'), 0o600);

    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.trimEnd().split('\n');
    expect(lines).toEqual([
      `${bin}/masq-janitor: installed (copied from ${plugin})`,
      `${conf}/05-calico.conflist: skipped: no bridge or ptp plugin with ipMasq: true`,
      `${conf}/10-containerd-net.conflist: added (after bridge with ipMasq: true; previous content in 10-containerd-net.conflist${BACKUP_SUFFIX})`,
      `${conf}/11-crio-ipv4-bridge.conflist: added (after bridge with ipMasq: true; previous content in 11-crio-ipv4-bridge.conflist${BACKUP_SUFFIX})`,
      `${conf}/87-podman-bridge.conflist: added (after bridge with ipMasq: true; previous content in 87-podman-bridge.conflist${BACKUP_SUFFIX})`,
      `${conf}/99-loopback.conf: skipped: no bridge or ptp plugin with ipMasq: true`,
      `${conf}/default/nerdctl-web.conflist: added (after bridge with ipMasq: true; previous content in nerdctl-web.conflist${BACKUP_SUFFIX})`,
      `${conf}/nerdctl-bridge.conflist: added (after bridge with ipMasq: true; previous content in nerdctl-bridge.conflist${BACKUP_SUFFIX})`,
    ]);
    expect((await stat(join(bin, 'masq-janitor'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(conf, '87-podman-bridge.conflist'))).mode & 0o7777).toBe(0o600);
    const crio = JSON.parse(await readFile(join(conf, '11-crio-ipv4-bridge.conflist'), 'utf8')) as { plugins: { type: string }[] };
    expect(crio.plugins.map((p) => p.type)).toEqual(['bridge', 'masq-janitor']);
    expect(await readFile(join(conf, `11-crio-ipv4-bridge.conflist${BACKUP_SUFFIX}`), 'utf8')).toBe(await readFile(join(ORIGINALS, '11-crio-ipv4-bridge.conflist'), 'utf8'));

    // Idempotent: the second run touches no file (same inodes, modes, contents).
    const before = await tree(dir);
    const again = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    expect(again.code).toBe(0);
    expect(await tree(dir)).toEqual(before);
    expect(again.out).toContain(`${bin}/masq-janitor: already up to date\n`);
    expect(again.out).toContain(`${conf}/10-containerd-net.conflist: already present\n`);
    expect(again.out).not.toMatch(/added/);
  });

  it('case 2: fails, naming the file and the key, on a janitor entry already present that the plugin would reject', async () => {
    const typo = join(conf, '10-typo.conflist');
    const badValue = join(conf, '20-value.conflist');
    const good = join(conf, '30-good.conflist');
    await writeFile(typo, '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge","ipMasq":true},{"type":"masq-janitor","logfile":"/var/log/mj.log"}]}');
    await writeFile(badValue, '{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge","ipMasq":true},{"type":"masq-janitor","lockWait":"5s"}]}');
    await writeFile(good, '{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"bridge","ipMasq":true},{"type":"masq-janitor","logLevel":"info"}]}');
    const before = await tree(conf);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    expect(r.code).toBe(1);
    expect(r.out).not.toContain(`${typo}: already present`);
    expect(r.err).toMatch(new RegExp(`${typo}: error: .*"logfile".*logFile`));
    expect(r.err).toMatch(new RegExp(`${badValue}: error: .*lockWait`));
    expect(r.out).toContain(`${good}: already present`);
    expect(await tree(conf)).toEqual(before);
  });

  it('--dry-run says what it would do and changes nothing', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const before = await tree(dir);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin, '--dry-run');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${bin}/masq-janitor: would install (from ${plugin})\n${conf}/10-a.conflist: would add (after bridge with ipMasq: true)\n`);
    expect(await tree(dir)).toEqual(before);
  });

  it('explains a single-plugin .conf and prints the .conflist that would replace it, changing nothing', async () => {
    const single = '{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"cni0","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.22.0.0/16"}}\n';
    await writeFile(join(conf, '10-mynet.conf'), single);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    expect(r.code).toBe(0);
    const [line, ...rest] = r.out.split('\n').slice(1);
    expect(line).toBe(
      `${conf}/10-mynet.conf: skipped: a single-plugin config cannot chain masq-janitor after bridge with ipMasq: true; ` +
        'to use it, replace 10-mynet.conf with 10-mynet.conflist holding this network list (nothing changed):',
    );
    const suggested = JSON.parse(rest.join('\n')) as { name: string; plugins: { type: string }[] };
    expect(suggested.name).toBe('mynet');
    expect(suggested.plugins.map((p) => p.type)).toEqual(['bridge', 'masq-janitor']);
    expect(await readFile(join(conf, '10-mynet.conf'), 'utf8')).toBe(single);
    expect((await readdir(conf)).sort()).toEqual(['10-mynet.conf']);
  });

  it('names the file with invalid JSON, leaves it untouched, handles the others, exits 1', async () => {
    await writeFile(join(conf, '10-bad.conflist'), '{"cniVersion": "1.0.0",\n "plugins": [\n');
    await writeFile(join(conf, '20-good.conflist'), BRIDGE_LIST);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`${conf}/10-bad.conflist: error: invalid JSON at line 3, column 1: unexpected end of input; file left untouched\n`);
    expect(await readFile(join(conf, '10-bad.conflist'), 'utf8')).toBe('{"cniVersion": "1.0.0",\n "plugins": [\n');
    expect(r.out).toContain(`${conf}/20-good.conflist: added`);
    expect(await readdir(conf)).not.toContain(`10-bad.conflist${BACKUP_SUFFIX}`);
  });

  it('edits only the FILEs named, even without a masquerading plugin', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const other = join(dir, 'custom.conflist');
    await writeFile(other, '{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"macvlan","master":"eth0"}]}');
    const r = await run(install, '--bin-dir', bin, '--from', plugin, other);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${other}: added (named explicitly; no bridge or ptp plugin with ipMasq: true found;`);
    expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
  });

  it('changes no config when the binary does not answer CNI VERSION', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const broken = await fakePlugin(join(dir, 'broken'), false);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', broken);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/does not work as a CNI plugin here \(does not answer CNI VERSION under a systemd service .*: exit 1: broken\); nothing installed/);
    expect(r.err).toContain('no config changed');
    expect(await readdir(bin)).toEqual(['bridge']);
    expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
  });

  describe('case 1: the file in the bin dir needs nothing from the host', () => {
    /** A Node script whose interpreter only the operator's PATH finds (node from nvm, volta, ...). */
    async function nvmScript(): Promise<{ script: string; path: string }> {
      const nvm = join(dir, 'nvm', 'bin');
      await mkdir(nvm, { recursive: true });
      await symlink(process.execPath, join(nvm, 'node-nvm'));
      const script = join(dir, 'script', 'masq-janitor');
      await mkdir(join(dir, 'script'));
      await writeFile(script, `#!/usr/bin/env node-nvm\nprocess.stdout.write(JSON.stringify({ cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] }));\n`);
      await chmod(script, 0o755);
      return { script, path: `${nvm}:${process.env.PATH ?? ''}` };
    }

    it('a Node script needs --script, even when it works in the operator shell; nothing changes', async () => {
      await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
      const { script, path } = await nvmScript();
      const saved = process.env.PATH;
      process.env.PATH = path;
      try {
        const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', script);
        expect(r.code).toBe(1);
        expect(r.err).toMatch(/is a Node script .*--script/);
        expect(r.err).toContain('no config changed');
        expect(await readdir(bin)).toEqual(['bridge']);
        expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
      } finally {
        process.env.PATH = saved;
      }
    });

    it('--script is refused when VERSION does not answer under the runtime environment (node only on the operator PATH)', async () => {
      await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
      const { script, path } = await nvmScript();
      const saved = process.env.PATH;
      process.env.PATH = path;
      try {
        const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', script, '--script');
        expect(r.code).toBe(1);
        expect(r.err).toMatch(/does not work as a CNI plugin .*PATH=\/usr\/local\/sbin:.*node-nvm.*No such file or directory/);
        expect(r.err).toContain('no config changed');
        expect(await readdir(bin)).toEqual(['bridge']);
        expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
      } finally {
        process.env.PATH = saved;
      }
    });

    it('a script already installed is probed too: "already up to date" is no pass for one that cannot run', async () => {
      const { script } = await nvmScript();
      await copyFile(script, join(bin, 'masq-janitor'));
      await chmod(join(bin, 'masq-janitor'), 0o755);
      const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', script, '--script');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/masq-janitor: error: .*does not answer CNI VERSION/);
    });
  });

  it('without --from refuses to guess when it is not running as masq-janitor', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot tell which file is masq-janitor .*pass --from FILE/);
    expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
  });

  it('--skip-binary edits configs only, and notes a missing plugin', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--skip-binary');
    expect(r.code).toBe(0);
    expect(r.err).toContain(`note: no masq-janitor in ${bin}`);
    expect(await readdir(bin)).toEqual(['bridge']);
    expect(r.out).toContain('10-a.conflist: added');
  });

  it('notes a bin dir without bridge or ptp, and a missing conf dir is an error', async () => {
    await rm(join(bin, 'bridge'));
    const r = await run(install, '--conf-dir', join(dir, 'nope'), '--bin-dir', bin, '--from', plugin);
    expect(r.err).toContain(`note: ${bin} has no bridge or ptp plugin`);
    expect(r.err).toMatch(/cannot read the conf dir: ENOENT/);
    expect(r.code).toBe(1);
  });

  it('usage: --help, unknown options, --conf-dir with FILEs', async () => {
    const help = await run(install, '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: masq-janitor install/);
    expect(help.out).toContain('/etc/cni/net.d');
    expect(help.out).toContain('/opt/cni/bin');
    expect((await run(install, '--frob')).code).toBe(2);
    const both = await run(install, '--conf-dir', conf, 'x.conflist');
    expect(both.code).toBe(2);
    expect(both.err).toContain('either --conf-dir or FILEs');
    expect((await run(uninstall, '-h')).out).toMatch(/^usage: masq-janitor uninstall/);
    expect((await run(uninstall, '--remove-binary', 'x.conflist')).code).toBe(2);
  });

  it.runIf(isRoot)('keeps owner and mode of each edited file (as root)', async () => {
    const p = join(conf, '10-a.conflist');
    await writeFile(p, BRIDGE_LIST);
    await chown(p, 1000, 1000);
    await chmod(p, 0o664);
    expect((await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin)).code).toBe(0);
    const st = await stat(p);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o664]);
  });
});

describe('case 6: install and uninstall take the locks runtimes write conflists under', () => {
  /** Hold a lock from another process until released; resolves once it is held. */
  async function holdLock(kind: 'flock' | 'fcntl', path: string): Promise<() => Promise<void>> {
    const script =
      kind === 'flock'
        ? 'use Fcntl qw(:flock O_RDONLY); sysopen(my $f, $ARGV[0], O_RDONLY) or die "$!"; flock($f, LOCK_EX) or die "$!"; $| = 1; print "held\\n"; <STDIN>;'
        : 'use Fcntl; sysopen(my $f, $ARGV[0], O_RDWR) or die "$!"; my $s = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLKW, $s) or die "$!"; $| = 1; print "held\\n"; <STDIN>;';
    const child = spawn('perl', ['-e', script, path], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      child.stdout.once('data', () => res());
      child.once('exit', (c) => rej(new Error(`lock holder exited ${c}`)));
    });
    return async () => {
      child.stdin.end();
      await new Promise((res) => child.once('exit', res));
    };
  }

  it.each([
    ['nerdctl >= 2 (flock on <conf-dir>/.nerdctl.lock)', 'flock', '.nerdctl.lock'],
    ['nerdctl < 2 (flock on the conf dir itself)', 'flock', ''],
    ['podman 4 CNI backend (fcntl lock on <conf-dir>/cni.lock)', 'fcntl', 'cni.lock'],
  ] as const)('waits for %s', async (_name, kind, lockName) => {
    const file = join(conf, '10-a.conflist');
    await writeFile(file, BRIDGE_LIST);
    const lockPath = lockName === '' ? conf : join(conf, lockName);
    if (lockName !== '') await writeFile(lockPath, '');
    const release = await holdLock(kind, lockPath);
    let done = false;
    const pending = run(install, '--conf-dir', conf, '--bin-dir', bin, '--skip-binary').finally(() => void (done = true));
    await new Promise((r) => setTimeout(r, 700));
    const whileHeld = await readFile(file, 'utf8');
    const finishedWhileHeld = done;
    await release();
    const r = await pending;
    expect(finishedWhileHeld).toBe(false);
    expect(whileHeld).toBe(BRIDGE_LIST);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${file}: added`);
  });

  it('without perl (a distroless host) it notes that it cannot take the locks and still edits, checked after the rename', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const r = await run(install, '--conf-dir', conf, '--bin-dir', bin, '--skip-binary');
      expect(r.code).toBe(0);
      expect(r.err).toMatch(/note: no perl here to take the runtimes' conf dir locks/);
      expect(r.out).toContain('10-a.conflist: added');
    } finally {
      process.env.PATH = saved;
    }
  });

  it('creates no lock file a runtime did not make', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    expect((await run(install, '--conf-dir', conf, '--bin-dir', bin, '--skip-binary')).code).toBe(0);
    expect((await readdir(conf)).sort()).toEqual(['10-a.conflist', `10-a.conflist${BACKUP_SUFFIX}`]);
  });
});

describe('uninstall', () => {
  it('removes exactly what install added, and the binary once nothing names it', async () => {
    for (const f of await readdir(ORIGINALS)) await copyFile(join(ORIGINALS, f), join(conf, f));
    const originals = Object.fromEntries(await Promise.all((await readdir(ORIGINALS)).map(async (f) => [f, JSON.parse(await readFile(join(ORIGINALS, f), 'utf8')) as unknown])));
    expect((await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin)).code).toBe(0);

    const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', join(dir, 'no-state'), '--remove-binary');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${conf}/10-containerd-net.conflist: removed (back to its original bytes; 10-containerd-net.conflist${BACKUP_SUFFIX} removed)\n`);
    expect(r.out.endsWith(`${bin}/masq-janitor: removed\n`)).toBe(true);
    for (const [f, doc] of Object.entries(originals)) expect(JSON.parse(await readFile(join(conf, f), 'utf8'))).toEqual(doc);
    // nerdctl writes 2-space JSON itself: its file comes back byte for byte.
    expect(await readFile(join(conf, 'nerdctl-bridge.conflist'), 'utf8')).toBe(await readFile(join(ORIGINALS, 'nerdctl-bridge.conflist'), 'utf8'));
    expect(await readdir(bin)).toEqual(['bridge']);

    const again = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', join(dir, 'no-state'), '--remove-binary');
    expect(again.code).toBe(0);
    expect(again.out).toContain(`${conf}/10-containerd-net.conflist: not present\n`);
    expect(again.out).toContain(`${bin}/masq-janitor: not present\n`);
  });

  it('leaves an entry someone gave settings, and then keeps the binary', async () => {
    const p = join(conf, '10-a.conflist');
    const edited = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":true},{"type":"masq-janitor","logLevel":"info"}]}';
    await writeFile(p, edited);
    await fakePlugin(join(bin, 'masq-janitor'));
    const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', join(dir, 'no-state'), '--remove-binary');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `${p}: kept: the masq-janitor entry has settings install does not write (logLevel); remove it by hand\n${bin}/masq-janitor: kept: still named by ${p}\n`,
    );
    expect(await readFile(p, 'utf8')).toBe(edited);
    expect(await readdir(bin)).toContain('masq-janitor');
  });

  describe('case 3: --remove-binary and the libcni cache (<state-dir>/results/*, field config)', () => {
    const WITH = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":true},{"type":"masq-janitor"}]}';
    const cacheEntry = (config: string, id: string) =>
      JSON.stringify({ kind: 'cniCacheV1', containerId: id, config: Buffer.from(config).toString('base64'), ifName: 'eth0', networkName: 'n', result: {} });

    it('keeps the binary while a cached ADD-time config names the janitor, says which and how to finish; exit 1', async () => {
      await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
      await fakePlugin(join(bin, 'masq-janitor'));
      const state = join(dir, 'state');
      await mkdir(join(state, 'results'), { recursive: true });
      await writeFile(join(state, 'results', 'n-c1-eth0'), cacheEntry(WITH, 'c1'));
      await writeFile(join(state, 'results', 'n-c2-eth0'), cacheEntry(BRIDGE_LIST, 'c2'));
      const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', state, '--remove-binary');
      expect(r.code).toBe(1);
      expect(await readdir(bin)).toContain('masq-janitor');
      expect(r.err).toContain(`${bin}/masq-janitor: kept`);
      expect(r.err).toContain(join(state, 'results', 'n-c1-eth0'));
      expect(r.err).not.toContain('n-c2-eth0');
      expect(r.err).toMatch(/remove or restart those containers.*run .*again/);
      // Once the container is gone (its cache entry with it), the binary goes.
      await rm(join(state, 'results', 'n-c1-eth0'));
      const again = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', state, '--remove-binary');
      expect(again.code).toBe(0);
      expect(again.out).toContain(`${bin}/masq-janitor: removed`);
    });

    it('reads the cache without hanging or reading without bound (FIFO, symlink to /dev/zero), never echoes it, and counts unreadable entries as naming it', async () => {
      await fakePlugin(join(bin, 'masq-janitor'));
      const state = join(dir, 'state');
      const results = join(state, 'results');
      await mkdir(results, { recursive: true });
      await promisify(execFile)('mkfifo', [join(results, 'n-fifo-eth0')]);
      await symlink('/dev/zero', join(results, 'n-zero-eth0'));
      await writeFile(join(results, 'n-garbage-eth0'), 'SECRET-TOKEN-1234 not json');
      const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', state, '--remove-binary');
      expect(r.code).toBe(1);
      expect(await readdir(bin)).toContain('masq-janitor');
      for (const n of ['n-fifo-eth0', 'n-zero-eth0', 'n-garbage-eth0']) expect(r.err).toContain(n);
      expect(r.out + r.err).not.toContain('SECRET');
    }, 10_000);

    it('a missing state dir means no cache: the binary goes', async () => {
      await fakePlugin(join(bin, 'masq-janitor'));
      const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', join(dir, 'no-state'), '--remove-binary');
      expect(r.code).toBe(0);
      expect(await readdir(bin)).toEqual(['bridge']);
    });
  });

  it('--dry-run changes nothing', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    const before = await tree(dir);
    const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--state-dir', join(dir, 'no-state'), '--remove-binary', '--dry-run');
    expect(r.out).toBe(`${conf}/10-a.conflist: would remove\n${bin}/masq-janitor: would remove\n`);
    expect(await tree(dir)).toEqual(before);
  });
});

describe('the bundle (dist/masq-janitor)', () => {
  const exec = promisify(execFile);

  it('with --script copies itself when run as `node dist/masq-janitor install`, verified under the runtime environment, idempotent', async () => {
    const bundle = await ensureBundle();
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const first = await exec('node', [bundle, 'install', '--script', '--conf-dir', conf, '--bin-dir', bin]);
    expect(first.stdout).toContain(`${bin}/masq-janitor: installed (copied from ${bundle})`);
    expect(await readFile(join(bin, 'masq-janitor'))).toEqual(await readFile(bundle));
    const second = await exec('node', [bundle, 'install', '--script', '--conf-dir', conf, '--bin-dir', bin]);
    expect(second.stdout).toBe(`${bin}/masq-janitor: already up to date\n${conf}/10-a.conflist: already present\n`);
    // The installed copy answers for itself.
    const third = await exec(join(bin, 'masq-janitor'), ['install', '--script', '--conf-dir', conf, '--bin-dir', bin]);
    expect(third.stdout).toContain('already in place');
    const help = await exec('node', [bundle, '--help']);
    expect(help.stdout).toMatch(/install .*\n.*\n\s+uninstall/);
  });

  it('case 1: without --script the bundle installs the standalone executable beside it, or refuses and changes nothing', async () => {
    const bundle = await ensureBundle();
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const standalone = join(ROOT, 'dist/standalone/masq-janitor');
    const r = await promisify(execFile)('node', [bundle, 'install', '--conf-dir', conf, '--bin-dir', bin]).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    if (existsSync(standalone)) {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`${bin}/masq-janitor: installed (copied from ${standalone})`);
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/no standalone executable .*make standalone.*--script/);
      expect(await readdir(bin)).toEqual(['bridge']);
      expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
    }
  });

});
