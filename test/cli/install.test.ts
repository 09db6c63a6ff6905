import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
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
    expect(r.err).toMatch(/does not work as a CNI plugin here \(exit 1: broken\); nothing installed/);
    expect(r.err).toContain('no config changed');
    expect(await readdir(bin)).toEqual(['bridge']);
    expect(await readFile(join(conf, '10-a.conflist'), 'utf8')).toBe(BRIDGE_LIST);
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

describe('uninstall', () => {
  it('removes exactly what install added, and the binary once nothing names it', async () => {
    for (const f of await readdir(ORIGINALS)) await copyFile(join(ORIGINALS, f), join(conf, f));
    const originals = Object.fromEntries(await Promise.all((await readdir(ORIGINALS)).map(async (f) => [f, JSON.parse(await readFile(join(ORIGINALS, f), 'utf8')) as unknown])));
    expect((await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin)).code).toBe(0);

    const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--remove-binary');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${conf}/10-containerd-net.conflist: removed (back to its original bytes; 10-containerd-net.conflist${BACKUP_SUFFIX} removed)\n`);
    expect(r.out.endsWith(`${bin}/masq-janitor: removed\n`)).toBe(true);
    for (const [f, doc] of Object.entries(originals)) expect(JSON.parse(await readFile(join(conf, f), 'utf8'))).toEqual(doc);
    // nerdctl writes 2-space JSON itself: its file comes back byte for byte.
    expect(await readFile(join(conf, 'nerdctl-bridge.conflist'), 'utf8')).toBe(await readFile(join(ORIGINALS, 'nerdctl-bridge.conflist'), 'utf8'));
    expect(await readdir(bin)).toEqual(['bridge']);

    const again = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--remove-binary');
    expect(again.code).toBe(0);
    expect(again.out).toContain(`${conf}/10-containerd-net.conflist: not present\n`);
    expect(again.out).toContain(`${bin}/masq-janitor: not present\n`);
  });

  it('leaves an entry someone gave settings, and then keeps the binary', async () => {
    const p = join(conf, '10-a.conflist');
    const edited = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":true},{"type":"masq-janitor","logLevel":"info"}]}';
    await writeFile(p, edited);
    await fakePlugin(join(bin, 'masq-janitor'));
    const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--remove-binary');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `${p}: kept: the masq-janitor entry has settings install does not write (logLevel); remove it by hand\n${bin}/masq-janitor: kept: still named by ${p}\n`,
    );
    expect(await readFile(p, 'utf8')).toBe(edited);
    expect(await readdir(bin)).toContain('masq-janitor');
  });

  it('--dry-run changes nothing', async () => {
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    await run(install, '--conf-dir', conf, '--bin-dir', bin, '--from', plugin);
    const before = await tree(dir);
    const r = await run(uninstall, '--conf-dir', conf, '--bin-dir', bin, '--remove-binary', '--dry-run');
    expect(r.out).toBe(`${conf}/10-a.conflist: would remove\n${bin}/masq-janitor: would remove\n`);
    expect(await tree(dir)).toEqual(before);
  });
});

describe('the bundle (dist/masq-janitor)', () => {
  const exec = promisify(execFile);

  it('copies itself when run as `node dist/masq-janitor install`, verified, idempotent', async () => {
    const bundle = await ensureBundle();
    await writeFile(join(conf, '10-a.conflist'), BRIDGE_LIST);
    const first = await exec('node', [bundle, 'install', '--conf-dir', conf, '--bin-dir', bin]);
    expect(first.stdout).toContain(`${bin}/masq-janitor: installed (copied from ${bundle})`);
    expect(first.stderr).toContain('is a script run by "/usr/bin/env node"');
    expect(await readFile(join(bin, 'masq-janitor'))).toEqual(await readFile(bundle));
    const second = await exec('node', [bundle, 'install', '--conf-dir', conf, '--bin-dir', bin]);
    expect(second.stdout).toBe(`${bin}/masq-janitor: already up to date\n${conf}/10-a.conflist: already present\n`);
    // The installed copy answers for itself.
    const third = await exec(join(bin, 'masq-janitor'), ['install', '--conf-dir', conf, '--bin-dir', bin]);
    expect(third.stdout).toContain('already in place');
    const help = await exec('node', [bundle, '--help']);
    expect(help.stdout).toMatch(/install .*\n.*\n\s+uninstall/);
  });
});
