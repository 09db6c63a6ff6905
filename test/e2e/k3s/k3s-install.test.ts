import { execFile } from 'node:child_process';
import { access, constants, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cniSection, K3S_CONTAINERD_CONFIG } from '../../../src/cli/k3s.js';
import { CONFIG_NO_FLANNEL, CONFIG_V2, CONFIG_V3 } from './fixtures.js';
import { ensureBundle } from '../../cli/support.js';

/**
 * The built masq-janitor, run as an operator runs it on a k3s node, against
 * throwaway trees shaped like k3s's: the plugin must land in the directory
 * k3s's containerd config names as bin_dir (so every ADD and DEL finds it),
 * and the network list must be the one in conf_dir.
 */

const run = promisify(execFile);
let bundle: string;

/** k3s's own flannel conflist (pkg/agent/flannel): the bridge delegate has no ipMasq. */
const FLANNEL = JSON.stringify(
  {
    name: 'cbr0',
    cniVersion: '1.0.0',
    plugins: [
      { type: 'flannel', delegate: { hairpinMode: true, forceAddress: true, isDefaultGateway: true } },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  },
  null,
  2,
);
const CUSTOM = '{\n  "cniVersion": "1.0.0",\n  "name": "lab",\n  "plugins": [\n    { "type": "bridge", "bridge": "lab0", "isGateway": true, "ipMasq": true, "ipam": { "type": "host-local", "subnet": "10.77.0.0/24" } }\n  ]\n}\n';

let root: string;
beforeAll(async () => {
  bundle = await ensureBundle();
});
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mj-k3s-e2e-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(path: string, text: string): Promise<void> {
  await mkdir(join(root, path, '..'), { recursive: true });
  await writeFile(join(root, path), text);
}

async function janitor(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [bundle, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

/** What containerd does with bin_dir: find the plugin named by `type` there and exec it. */
async function execFromBinDir(binDir: string): Promise<string> {
  const plugin = join(root, binDir, 'masq-janitor');
  await access(plugin, constants.X_OK);
  const child = execFile(plugin, [], { env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  child.stdin?.end('{"cniVersion":"1.0.0"}');
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((res) => child.on('close', res));
  return out;
}

/** A k3s node: containerd's config as k3s writes it, the bin dir it names, the upstream bridge there. */
async function node(config: string): Promise<{ binDir: string; confDir: string }> {
  await put(K3S_CONTAINERD_CONFIG, config);
  const cni = cniSection(config) ?? { binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d' };
  const binDir = cni.binDir as string;
  const confDir = cni.confDir as string;
  await mkdir(join(root, binDir), { recursive: true });
  await writeFile(join(root, binDir, 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
  await mkdir(join(root, confDir), { recursive: true });
  return { binDir, confDir };
}

describe.each([
  ['current k3s (config version 2, data/cni)', CONFIG_V2('/var/lib/rancher/k3s/data/cni')],
  ['current k3s on containerd 2 (config version 3)', CONFIG_V3],
])('%s', (_name, config) => {
  it('stock flannel: installs the plugin, chains nothing and says why', async () => {
    const { binDir, confDir } = await node(config);
    expect(binDir).toBe('/var/lib/rancher/k3s/data/cni');
    await put(join(confDir, '10-flannel.conflist'), FLANNEL);
    const r = await janitor('install', '--root', root);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('k3s: using conf dir /var/lib/rancher/k3s/agent/etc/cni/net.d and bin dir /var/lib/rancher/k3s/data/cni');
    expect(r.out).toContain('10-flannel.conflist: skipped: flannel sets its bridge ipMasq from FLANNEL_IPMASQ');
    expect(r.out).toContain('k3s: nothing to do: stock k3s runs flannel');
    expect(await readFile(join(root, confDir, '10-flannel.conflist'), 'utf8')).toBe(FLANNEL);
    expect(await execFromBinDir(binDir)).toContain('supportedVersions');
  });

  it('a custom bridge network with ipMasq: the binary lands in bin_dir, the list in conf_dir gets the entry', async () => {
    const { binDir, confDir } = await node(config);
    await put(join(confDir, '10-flannel.conflist'), FLANNEL);
    await put(join(confDir, '20-lab.conflist'), CUSTOM);
    const r = await janitor('install', '--root', root);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`${join(root, binDir, 'masq-janitor')}: installed`);
    expect(r.out).toContain('20-lab.conflist: added (after bridge with ipMasq: true');
    expect(r.out).not.toContain('nothing to do');
    expect(JSON.parse(await readFile(join(root, confDir, '20-lab.conflist'), 'utf8')).plugins.at(-1)).toEqual({ type: 'masq-janitor' });
    expect(await execFromBinDir(binDir)).toContain('supportedVersions');
    // The old, wrong place stays untouched.
    await expect(access(join(root, '/var/lib/rancher/k3s/data/current/bin/masq-janitor'))).rejects.toThrow();

    const u = await janitor('uninstall', '--root', root, '--remove-binary');
    expect(u.code, u.err).toBe(0);
    expect(await readFile(join(root, confDir, '20-lab.conflist'), 'utf8')).toBe(CUSTOM);
    await expect(access(join(root, binDir, 'masq-janitor'))).rejects.toThrow();
  });
});

it('older k3s (data/current/bin, a link re-pointed on upgrade): lands where containerd looks, with a note', async () => {
  await mkdir(join(root, 'var/lib/rancher/k3s/data/7a1f0c/bin'), { recursive: true });
  await symlink('7a1f0c', join(root, 'var/lib/rancher/k3s/data/current'));
  const { binDir, confDir } = await node(CONFIG_V2('/var/lib/rancher/k3s/data/current/bin'));
  await put(join(confDir, '20-lab.conflist'), CUSTOM);
  const r = await janitor('install', '--root', root);
  expect(r.code, r.err).toBe(0);
  expect(r.out).toContain('20-lab.conflist: added');
  expect(await execFromBinDir(binDir)).toContain('supportedVersions');
  expect(await realpath(join(root, binDir, 'masq-janitor'))).toBe(await realpath(join(root, 'var/lib/rancher/k3s/data/7a1f0c/bin/masq-janitor')));

  // Before k3s first wrote its containerd config: the layout decides, and says to re-run after upgrades.
  await rm(join(root, K3S_CONTAINERD_CONFIG));
  const again = await janitor('install', '--root', root, '--dry-run');
  expect(again.err).toMatch(/bin dir \/var\/lib\/rancher\/k3s\/data\/current\/bin \(.*run install again after each one/);
});

it('--flannel-backend=none: /etc/cni/net.d and /opt/cni/bin, because the config has no cni section', async () => {
  const { binDir, confDir } = await node(CONFIG_NO_FLANNEL);
  expect([binDir, confDir]).toEqual(['/opt/cni/bin', '/etc/cni/net.d']);
  await put(join(confDir, '10-lab.conflist'), CUSTOM);
  // k3s's agent dir exists but containerd does not read it in this mode.
  await put('/var/lib/rancher/k3s/agent/etc/cni/net.d/10-flannel.conflist', FLANNEL);
  const r = await janitor('install', '--runtime', 'k3s', '--root', root);
  expect(r.code, r.err).toBe(0);
  expect(r.err).toContain('no cni section (k3s --flannel-backend=none)');
  expect(r.out).toContain(`${join(root, '/etc/cni/net.d/10-lab.conflist')}: added`);
  expect(r.out).not.toContain('10-flannel.conflist');
  expect(await execFromBinDir(binDir)).toContain('supportedVersions');
});

it('--runtime k3s on a node without k3s is a one-line usage error', async () => {
  const r = await janitor('install', '--runtime', 'k3s', '--root', root);
  expect(r.code).toBe(2);
  expect(r.err).toBe(`masq-janitor install: --runtime k3s, but there is no ${join(root, '/var/lib/rancher/k3s')}\nRun 'masq-janitor help install' for its options.\n`);
});
