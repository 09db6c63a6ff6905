import { execFile, spawnSync } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBundle, ROOT } from '../cli/support.js';

/**
 * examples/systemd: the periodic `sweep --apply` for hosts without
 * Kubernetes, checked by systemd's own parser (`systemd-analyze verify`,
 * systemd is on Debian hosts) against a throwaway root holding the system
 * units and the janitor where the service runs it from.
 */

const run = promisify(execFile);
const DIR = join(ROOT, 'examples/systemd');
const UNITS = ['masq-janitor-sweep.service', 'masq-janitor-sweep.timer'];
const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;
const required = process.env.MJ_REQUIRE_REAL_TOOLS === '1';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mj-systemd-'));
  await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
  await mkdir(join(root, 'opt/cni/bin'), { recursive: true });
  for (const u of UNITS) await copyFile(join(DIR, u), join(root, 'etc/systemd/system', u));
  // sysinit.target and friends, which every service and timer depends on by default.
  if (analyze) await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
  await copyFile(await ensureBundle(), join(root, 'opt/cni/bin/masq-janitor'));
  await chmod(join(root, 'opt/cni/bin/masq-janitor'), 0o755);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function verify(...units: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('systemd-analyze', ['verify', `--root=${root}`, ...units]);
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}

describe('examples/systemd', () => {
  it.skipIf(!analyze && !required)('systemd-analyze verify accepts the service and the timer, without a single warning', async () => {
    expect(await verify(...UNITS)).toEqual({ code: 0, out: '' });
  });

  it.skipIf(!analyze && !required)('and is not a rubber stamp: a bad timer value and a missing executable are reported', async () => {
    const bad = (await readFile(join(DIR, UNITS[1] as string), 'utf8')).replace('OnUnitActiveSec=1h', 'OnUnitActiveSec=hourly-ish');
    await writeFile(join(root, 'etc/systemd/system/bad.timer'), bad);
    expect((await verify('bad.timer')).out).toContain('Failed to parse timer value');
    await chmod(join(root, 'opt/cni/bin/masq-janitor'), 0o644);
    try {
      expect((await verify(UNITS[0] as string)).code).not.toBe(0);
    } finally {
      await chmod(join(root, 'opt/cni/bin/masq-janitor'), 0o755);
    }
  });

  it('the service runs sweep --apply with options sweep accepts, and only network capabilities', async () => {
    const service = await readFile(join(DIR, UNITS[0] as string), 'utf8');
    const exec = /^ExecStart=(\S+) (.*)$/m.exec(service);
    expect(exec?.[1]).toBe('/opt/cni/bin/masq-janitor');
    expect(exec?.[2]).toBe('sweep --apply --settle 10 $MASQ_JANITOR_ARGS');
    const help = (await run(process.execPath, [await ensureBundle(), 'sweep', '--help'])).stdout;
    for (const opt of ['--apply', '--settle']) expect(help).toContain(opt);
    expect(service).toMatch(/^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m);
    expect(service).toMatch(/^Type=oneshot$/m);
  });

  it('installs with the one command its header and docs/operations.md give', async () => {
    const service = await readFile(join(DIR, UNITS[0] as string), 'utf8');
    const cmd = /^#\s+(install -m 0644 .*)$/m.exec(service)?.[1] ?? '';
    expect(cmd).toContain('systemctl enable --now masq-janitor-sweep.timer');
    expect(await readFile(join(ROOT, 'docs/operations.md'), 'utf8')).toContain(cmd);
    // Its file-copying half, run against a throwaway /etc.
    const etc = join(root, 'install-target');
    await mkdir(etc);
    const copy = cmd.split(' && ')[0]?.replace('/etc/systemd/system', etc) ?? '';
    await run('sh', ['-c', copy], { cwd: ROOT });
    for (const u of UNITS) expect(await readFile(join(etc, u), 'utf8')).toBe(await readFile(join(DIR, u), 'utf8'));
  });
});
