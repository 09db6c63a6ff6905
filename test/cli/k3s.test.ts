import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cniSection, detectK3s, nodeDirs, K3S_CONTAINERD_CONFIG } from '../../src/cli/k3s.js';
import { CONFIG_NO_FLANNEL, CONFIG_V2, CONFIG_V3 } from '../e2e/k3s/fixtures.js';

describe('cniSection', () => {
  it('reads bin_dir and conf_dir from config versions 2 and 3, bin_dirs too', () => {
    expect(cniSection(CONFIG_V2('/var/lib/rancher/k3s/data/cni'))).toEqual({ binDir: '/var/lib/rancher/k3s/data/cni', confDir: '/var/lib/rancher/k3s/agent/etc/cni/net.d' });
    expect(cniSection(CONFIG_V3)).toEqual({ binDir: '/var/lib/rancher/k3s/data/cni', confDir: '/var/lib/rancher/k3s/agent/etc/cni/net.d' });
    expect(cniSection(`[plugins."io.containerd.cri.v1.runtime".cni]\n  bin_dirs = ["/a", "/b"]\n  conf_dir = '/c'\n`)).toEqual({ binDir: '/a', confDir: '/c' });
  });

  it('finds no section where the template wrote none, and ignores other tables keys', () => {
    expect(cniSection(CONFIG_NO_FLANNEL)).toBeUndefined();
    expect(cniSection('[plugins."io.containerd.grpc.v1.cri".registry]\n  bin_dir = "/nope"\n')).toBeUndefined();
  });
});

describe('detectK3s', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mj-k3s-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const put = async (path: string, text: string): Promise<void> => {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  };

  it('is not k3s without /var/lib/rancher/k3s', async () => {
    expect(await detectK3s(root)).toBeUndefined();
  });

  it('current k3s: data/cni from containerd config', async () => {
    await put(K3S_CONTAINERD_CONFIG, CONFIG_V2('/var/lib/rancher/k3s/data/cni'));
    expect(await detectK3s(root)).toMatchObject({ binDir: '/var/lib/rancher/k3s/data/cni', confDir: '/var/lib/rancher/k3s/agent/etc/cni/net.d', source: 'containerd-config' });
  });

  it('older k3s: data/current/bin from containerd config, or from the layout before k3s first ran', async () => {
    await put(K3S_CONTAINERD_CONFIG, CONFIG_V2('/var/lib/rancher/k3s/data/current/bin'));
    expect(await detectK3s(root)).toMatchObject({ binDir: '/var/lib/rancher/k3s/data/current/bin', source: 'containerd-config' });
    await rm(join(root, K3S_CONTAINERD_CONFIG));
    expect(await detectK3s(root)).toMatchObject({ binDir: '/var/lib/rancher/k3s/data/current/bin', source: 'data-current' });
    await mkdir(join(root, 'var/lib/rancher/k3s/data/cni'), { recursive: true });
    expect(await detectK3s(root)).toMatchObject({ binDir: '/var/lib/rancher/k3s/data/cni', source: 'data-cni' });
  });

  it('--flannel-backend=none: containerd defaults', async () => {
    await put(K3S_CONTAINERD_CONFIG, CONFIG_NO_FLANNEL);
    expect(await detectK3s(root)).toMatchObject({ binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', source: 'flannel-backend-none' });
  });

  it('does not read a FIFO, a link or a huge file as the config', async () => {
    await mkdir(join(root, 'var/lib/rancher/k3s/agent/etc/containerd'), { recursive: true });
    const cfg = join(root, K3S_CONTAINERD_CONFIG);
    await symlink('/dev/zero', cfg);
    expect(await detectK3s(root)).toMatchObject({ source: 'data-current' });
    await rm(cfg);
    await writeFile(cfg, CONFIG_V3 + '#'.repeat(2 << 20));
    expect(await detectK3s(root)).toMatchObject({ source: 'data-current' });
  });

  it('nodeDirs: given dirs win, --runtime k3s insists, unknown runtimes are refused', async () => {
    expect(await nodeDirs({ root }, false, '/etc/cni/net.d', '/opt/cni/bin')).toMatchObject({ ok: true, value: { confDir: join(root, 'etc/cni/net.d'), k3s: undefined } });
    expect(await nodeDirs({ root, runtime: 'k3s' }, false, '/etc/cni/net.d', '/opt/cni/bin')).toMatchObject({ ok: false });
    expect(await nodeDirs({ root, runtime: 'k8s' }, false, '/e', '/o')).toEqual({ ok: false, error: 'unknown --runtime "k8s" (did you mean k3s?)' });
    await put(K3S_CONTAINERD_CONFIG, CONFIG_V3);
    expect(await nodeDirs({ root }, false, '/e', '/o')).toMatchObject({ ok: true, value: { binDir: join(root, 'var/lib/rancher/k3s/data/cni') } });
    expect(await nodeDirs({ root, 'bin-dir': '/x' }, false, '/e', '/o')).toMatchObject({ ok: true, value: { binDir: '/x', confDir: join(root, '/e'), k3s: undefined } });
  });
});
