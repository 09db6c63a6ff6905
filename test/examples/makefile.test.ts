import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT } from '../cli/support.js';

/**
 * What `make demo` and `make test` install. Run against a PATH holding only
 * a fake apt-get (and, per case, fake runtime binaries), so nothing is
 * installed and the host's own runtimes do not decide the outcome.
 */

const run = promisify(execFile);
let bin: string;
beforeEach(async () => {
  bin = await mkdtemp(join(tmpdir(), 'mj-make-'));
  await writeFile(join(bin, 'apt-get'), `#!/bin/sh\necho "apt-get $*" >> '${bin}/apt.log'\n`);
  await chmod(join(bin, 'apt-get'), 0o755);
});
afterEach(async () => {
  await rm(bin, { recursive: true, force: true });
});

async function make(...args: string[]): Promise<{ out: string; apt: string[] }> {
  // make's own $(shell find ...) for SOURCES wants find; give it the real one.
  await symlink('/usr/bin/find', join(bin, 'find')).catch(() => undefined);
  const r = await run('/usr/bin/make', ['-s', '--no-print-directory', ...args], { cwd: ROOT, env: { PATH: bin } });
  const apt = await readFile(join(bin, 'apt.log'), 'utf8').then((t) => t.trimEnd().split('\n'), () => []);
  return { out: r.stdout, apt };
}

async function variable(name: string): Promise<string[]> {
  const r = await run('/usr/bin/make', ['-s', '--no-print-directory', `--eval=print-var: ; @echo $(${name})`, 'print-var'], { cwd: ROOT });
  return r.stdout.trim().split(/\s+/);
}

const RUNTIMES = ['containerd', 'runc', 'docker.io', 'docker-ce', 'containerd.io', 'podman', 'cri-o', 'crun'];

describe('make demo', () => {
  it('installs no container runtime, and what examples/demo.sh checks for', async () => {
    const demo = await variable('DEMO_APT_PACKAGES');
    for (const r of RUNTIMES) expect(demo).not.toContain(r);
    // demo.sh's preflight: `for tool in ...; do` plus the upstream plugins.
    const script = await readFile(join(ROOT, 'examples/demo.sh'), 'utf8');
    const tools = /for tool in ([^;]+); do/.exec(script)?.[1]?.split(/\s+/) ?? [];
    const PACKAGE: Record<string, string> = { jq: 'jq', ip: 'iproute2', iptables: 'iptables', ip6tables: 'iptables', nft: 'nftables' };
    expect(tools.length).toBeGreaterThan(0);
    for (const t of tools) expect(demo, t).toContain(PACKAGE[t]);
    expect(demo).toContain('containernetworking-plugins');
    // The recipe itself: dry-run it and look for runtime packages.
    const plan = (await run('/usr/bin/make', ['-n', '-B', 'demo-deps'], { cwd: ROOT })).stdout;
    for (const r of RUNTIMES) expect(plan).not.toMatch(new RegExp(`\\b${r.replace('.', '\\.')}\\b(?!-plugins)`));
  });
});

describe('make test', () => {
  it('apt list holds no container runtime; those come only from runtime-deps', async () => {
    const test = await variable('TEST_APT_PACKAGES');
    expect(test).toEqual(expect.arrayContaining(['iptables', 'nftables', 'containernetworking-plugins', 'busybox-static']));
    for (const r of RUNTIMES) expect(test).not.toContain(r);
  });

  it.each(['containerd', 'dockerd', 'podman', 'crio'])('never installs a runtime when %s is on PATH (a Docker CE host has no "containerd" package)', async (found) => {
    await symlink('/bin/true', join(bin, found));
    const r = await make('runtime-deps');
    expect(r.apt).toEqual([]);
    expect(r.out).toContain(`container runtime found (${join(bin, found)}): installing none`);
  });

  it('installs containerd and runc on a host with no runtime binary at all', async () => {
    const r = await make('runtime-deps');
    expect(r.apt).toEqual(['apt-get update -qq', 'apt-get install -y -qq --no-install-recommends containerd runc']);
  });
});
