import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { check, type CheckReport } from '../../src/cli/check.js';
import { capture, ensureBundle, fakePlugin, ROOT } from './support.js';

let dir: string;
let conf: string;
let bin: string;
let state: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mj-check-'));
  conf = join(dir, 'net.d');
  bin = join(dir, 'bin');
  state = join(dir, 'state');
  await mkdir(conf);
  await mkdir(bin);
  await mkdir(join(state, 'results'), { recursive: true });
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const LIST = (janitor: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge', ipMasq: true }, { type: 'masq-janitor', ...janitor }] });

async function runCheck(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await check(argv, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

async function json(...argv: string[]): Promise<{ code: number; report: CheckReport }> {
  const r = await runCheck('--conf-dir', conf, '--bin-dir', bin, '--state-dir', state, '--json', ...argv);
  return { code: r.code, report: JSON.parse(r.out) as CheckReport };
}

describe('masq-janitor check', () => {
  it('exit 0 when every entry is valid and the binary answers VERSION under the runtime environment', async () => {
    await writeFile(join(conf, '10-a.conflist'), LIST({ logLevel: 'info' }));
    await fakePlugin(join(bin, 'masq-janitor'));
    const { code, report } = await json();
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.configs).toEqual([{ path: join(conf, '10-a.conflist'), entries: 1, problems: [] }]);
    expect(report.binaries).toEqual([{ binDir: bin, path: join(bin, 'masq-janitor'), present: true, answersVersion: true, problem: null }]);
  });

  it('exit 1 naming file, plugin and key for an entry the plugin would reject (typo, wrong type, cniVersion)', async () => {
    await writeFile(join(conf, '10-a.conflist'), LIST({ logfile: '/x' }));
    await writeFile(join(conf, '20-b.conflist'), LIST({ lockWait: '5' }));
    await writeFile(join(conf, '30-c.conflist'), LIST().replace('1.0.0', '0.2.0'));
    await fakePlugin(join(bin, 'masq-janitor'));
    const { code, report } = await json();
    expect(code).toBe(1);
    const byFile = Object.fromEntries(report.configs.map((c) => [c.path.slice(conf.length + 1), c.problems.map((p) => `${p.plugin} ${p.message}`).join('; ')]));
    expect(byFile['10-a.conflist']).toMatch(/^2 .*"logfile".*logFile/);
    expect(byFile['20-b.conflist']).toMatch(/^2 .*lockWait/);
    expect(byFile['30-c.conflist']).toMatch(/^2 .*0\.2\.0/);
    expect(report.problems).toHaveLength(3);
  });

  it('exit 1 when a bin dir holds a janitor that does not answer VERSION as runtimes run it, or none is installed while configs name it', async () => {
    await writeFile(join(conf, '10-a.conflist'), LIST());
    const other = join(dir, 'bin2');
    await mkdir(other);
    const nvm = join(dir, 'nvm');
    await mkdir(nvm);
    await symlink(process.execPath, join(nvm, 'node-nvm'));
    await writeFile(join(bin, 'masq-janitor'), '#!/usr/bin/env node-nvm\nconsole.log("{}")\n');
    await chmod(join(bin, 'masq-janitor'), 0o755);
    const { code, report } = await json('--bin-dir', other);
    expect(code).toBe(1);
    expect(report.binaries.map((b) => [b.binDir, b.present, b.answersVersion])).toEqual([
      [bin, true, false],
      [other, false, false],
    ]);
    expect(report.binaries[0]?.problem).toMatch(/node-nvm.*No such file/);
    const none = await runCheck('--conf-dir', conf, '--bin-dir', other, '--state-dir', state);
    expect(none.code).toBe(1);
    expect(none.out).toMatch(/named by .*10-a.conflist.* but no bin dir has a working masq-janitor/);
  });

  it('reports the cached configs that name the janitor; with the binary gone they would fail their DEL', async () => {
    const cached = Buffer.from(LIST()).toString('base64');
    await writeFile(join(state, 'results', 'n-c1-eth0'), JSON.stringify({ kind: 'cniCacheV1', containerId: 'c1', config: cached }));
    await promisify(execFile)('mkfifo', [join(state, 'results', 'n-fifo-eth0')]);
    const { code, report } = await json();
    expect(code).toBe(1);
    expect(report.cache.naming).toEqual([join(state, 'results', 'n-c1-eth0')]);
    expect(report.cache.unreadable.map((u) => u.path)).toEqual([join(state, 'results', 'n-fifo-eth0')]);
    expect(report.problems.join('\n')).toMatch(/n-c1-eth0/);
    await fakePlugin(join(bin, 'masq-janitor'));
    expect((await json()).code).toBe(0);
  }, 10_000);

  it('--bin-dir takes a colon- or comma-separated list too; usage errors exit 2', async () => {
    const other = join(dir, 'bin2');
    await mkdir(other);
    const { report } = await json('--bin-dir', `${other},${other}:${bin}`);
    expect(report.binaries.map((b) => b.binDir)).toEqual([bin, other]);
    expect((await runCheck('--frob')).code).toBe(2);
    const help = await runCheck('--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: masq-janitor check/);
  });

  it('exit 1 when the conf dir cannot be read', async () => {
    const r = await runCheck('--conf-dir', join(dir, 'nope'), '--bin-dir', bin, '--state-dir', state, '--json');
    expect(r.code).toBe(1);
    expect((JSON.parse(r.out) as CheckReport).problems.join()).toMatch(/conf dir/);
  });
});

describe('masq-janitor check, the real executables (the readiness-probe interface)', () => {
  it('`check --conf-dir D --bin-dir D --json` through the bundle: the standalone answers as runtimes run it, the script bundle only if node is on their PATH', async () => {
    const bundle = await ensureBundle();
    const standalone = join(ROOT, 'dist/standalone/masq-janitor');
    await writeFile(join(conf, '10-a.conflist'), LIST());
    await copyFile(existsSync(standalone) ? standalone : bundle, join(bin, 'masq-janitor'));
    await chmod(join(bin, 'masq-janitor'), 0o755);
    const r = await promisify(execFile)(process.execPath, [bundle, 'check', '--conf-dir', conf, '--bin-dir', bin, '--json'], { env: { PATH: '/usr/bin:/bin' } }).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    const report = JSON.parse(r.stdout) as CheckReport;
    // /usr/bin/node is on systemd's PATH and on glibc's default one: the bundle answers here too.
    expect(report.binaries[0]?.answersVersion, report.binaries[0]?.problem ?? '').toBe(true);
    expect(report.configs.map((c) => c.problems)).toEqual([[]]);
    // The host's /var/lib/cni decides the rest; the code follows ok either way.
    expect(r.code).toBe(report.ok ? 0 : 1);
  }, 60_000);
});

