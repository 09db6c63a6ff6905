import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { K3S_BIN_DIR, K3S_CONF_DIR, K3S_CONTAINERD_CONFIG } from '../../src/cli/k3s.js';
import { ensureBundle, ROOT } from '../cli/support.js';

const K8S = `${ROOT}/examples/kubernetes`;
const ENTRYPOINT = `${K8S}/entrypoint.sh`;

interface Proc {
  readonly code: number | null;
  readonly out: string;
}

function start(env: Record<string, string>, args: readonly string[] = []): { done: Promise<Proc>; kill: () => void } {
  const child = spawn('/bin/sh', [ENTRYPOINT, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const done = new Promise<Proc>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
  return { done, kill: () => child.kill('SIGTERM') };
}

const once = (env: Record<string, string>): Promise<Proc> => start({ ONESHOT: '1', ...env }).done;

let root: string;
let bin: string;
let conf: string;
const dirs = (): Record<string, string> => ({ CNI_BIN_DIR: bin, CNI_CONF_DIR: conf });

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mj-k8s-'));
  bin = join(root, 'host/opt/cni/bin');
  conf = join(root, 'host/etc/cni/net.d');
  await mkdir(bin, { recursive: true });
  await mkdir(conf, { recursive: true });
  await writeFile(join(bin, 'bridge'), '');
  await copyFile(`${ROOT}/examples/original/10-containerd-net.conflist`, join(conf, '10-containerd-net.conflist'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A masq-janitor stand-in that records its arguments, one call per line. */
async function recorder(rc = 0): Promise<{ exe: string; calls: () => Promise<string[]> }> {
  const exe = join(root, 'fake-masq-janitor');
  const log = join(root, 'calls');
  await writeFile(exe, `#!/bin/sh\necho "$*" >> '${log}'\necho "fake: $1"\nexit ${rc}\n`);
  await chmod(exe, 0o755);
  return { exe, calls: async () => (existsSync(log) ? (await readFile(log, 'utf8')).trimEnd().split('\n') : []) };
}

describe('entrypoint.sh', () => {
  it('installs into the mounted host dirs with the real executable, once, then finds it in place', async () => {
    const bundle = await ensureBundle();
    const first = await once({ ...dirs(), MASQ_JANITOR: bundle });
    expect(first.out).toContain(`${conf}/10-containerd-net.conflist: added`);
    expect(first.code).toBe(0);
    // Run as the bundle, install copies the standalone executable beside it (issue 10: no node needed on the host).
    expect((await readFile(join(bin, 'masq-janitor'))).equals(await readFile(`${ROOT}/dist/standalone/masq-janitor`))).toBe(true);
    expect(statSync(join(bin, 'masq-janitor')).mode & 0o777).toBe(0o755);
    expect(await readFile(join(conf, '10-containerd-net.conflist'), 'utf8')).toBe(await readFile(`${ROOT}/examples/with-masq-janitor/10-containerd-net.conflist`, 'utf8'));
    const second = await once({ ...dirs(), MASQ_JANITOR: bundle });
    expect(second.code).toBe(0);
    expect(second.out).toContain(`${conf}/10-containerd-net.conflist: already present`);
  });

  it('keeps it installed: re-applies after a runtime rewrites its conflist, and stops on SIGTERM', async () => {
    const bundle = await ensureBundle();
    const file = join(conf, '10-containerd-net.conflist');
    const original = await readFile(file, 'utf8');
    const p = start({ ...dirs(), MASQ_JANITOR: bundle, INSTALL_INTERVAL: '1' });
    const until = async (cond: () => Promise<boolean>): Promise<void> => {
      for (let i = 0; i < 100 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await cond()).toBe(true);
    };
    const hasJanitor = async (): Promise<boolean> => (await readFile(file, 'utf8')).includes('"masq-janitor"');
    await until(hasJanitor);
    await writeFile(file, original); // the runtime writes its default again
    await until(hasJanitor);
    p.kill();
    const r = await p.done;
    expect(r.code).toBe(0);
    // The unchanged report of idle rounds is not repeated.
    expect(r.out.match(/already present/g)?.length ?? 0).toBeLessThanOrEqual(2);
    expect(r.out).toMatch(/stopping/);
  });

  it('install mode only installs, into the mounted dirs; sweep mode only sweeps', async () => {
    const fake = await recorder();
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe })).code).toBe(0);
    expect(await fake.calls()).toEqual([`install --conf-dir ${conf} --bin-dir ${bin}`]);
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe, ACTION: 'sweep' })).code).toBe(0);
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe, ACTION: 'sweep', SWEEP_SETTLE: '0', METRICS_FILE: '/host/textfile/masq-janitor.prom' })).code).toBe(0);
    expect((await fake.calls()).slice(1)).toEqual(['sweep --apply --settle 10', 'sweep --apply --settle 0 --metrics-file /host/textfile/masq-janitor.prom']);
  });

  it('ready: the readiness probe is masq-janitor check on the same dirs', async () => {
    const fake = await recorder();
    expect((await start({ ...dirs(), MASQ_JANITOR: fake.exe }, ['ready']).done).code).toBe(0);
    expect(await fake.calls()).toEqual([`check --conf-dir ${conf} --bin-dir ${bin} --json`]);
    const failing = await recorder(1);
    expect((await start({ ...dirs(), MASQ_JANITOR: failing.exe }, ['ready']).done).code).toBe(1);
  });

  it('ACTION=uninstall removes what install added, binary included', async () => {
    const fake = await recorder();
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe, ACTION: 'uninstall' })).code).toBe(0);
    expect(await fake.calls()).toEqual([`uninstall --conf-dir ${conf} --bin-dir ${bin} --remove-binary`]);
  });

  it('ACTION=uninstall with the real executable leaves the node as before install: same bytes, no backups', async () => {
    const bundle = await ensureBundle();
    const before = await readFile(join(conf, '10-containerd-net.conflist'));
    expect((await once({ ...dirs(), MASQ_JANITOR: bundle })).code).toBe(0);
    expect((await once({ ...dirs(), MASQ_JANITOR: bundle })).code).toBe(0);
    const r = await once({ ...dirs(), MASQ_JANITOR: bundle, ACTION: 'uninstall' });
    expect(r.code, r.out).toBe(0);
    expect(await readFile(join(conf, '10-containerd-net.conflist'))).toEqual(before);
    expect(await readdir(conf)).toEqual(['10-containerd-net.conflist']);
    expect(await readdir(bin)).toEqual(['bridge']);
  });

  it('k3s: installs only when the mounted dirs are the ones k3s\'s containerd uses', async () => {
    const bundle = await ensureBundle();
    const hostRoot = join(root, 'host');
    await mkdir(join(hostRoot, 'var/lib/rancher/k3s/agent/etc/containerd'), { recursive: true });
    await writeFile(
      join(hostRoot, K3S_CONTAINERD_CONFIG),
      `[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "${K3S_BIN_DIR}"\n  conf_dir = "${K3S_CONF_DIR}"\n`,
    );
    const wrong = await once({ ...dirs(), MASQ_JANITOR: bundle, HOST_ROOT: hostRoot, HOST_CNI_BIN_DIR: '/opt/cni/bin', HOST_CNI_CONF_DIR: '/etc/cni/net.d' });
    expect(wrong.code).toBe(2);
    expect(wrong.out).toContain(`k3s's containerd uses conf dir and bin dir '${K3S_CONF_DIR} ${K3S_BIN_DIR}', but '/etc/cni/net.d /opt/cni/bin' is mounted`);
    expect(await readdir(bin)).toEqual(['bridge']);
    const right = await once({ ...dirs(), MASQ_JANITOR: bundle, HOST_ROOT: hostRoot, HOST_CNI_BIN_DIR: K3S_BIN_DIR, HOST_CNI_CONF_DIR: K3S_CONF_DIR });
    expect(right.code, right.out).toBe(0);
    expect(right.out).toContain(`k3s: containerd uses ${K3S_CONF_DIR} ${K3S_BIN_DIR}, as mounted`);
  });

  it('reports a failing round with its exit status', async () => {
    const fake = await recorder(1);
    const r = await once({ ...dirs(), MASQ_JANITOR: fake.exe });
    expect(r.code).toBe(1);
    expect(r.out).toContain('fake: install');
    expect(r.out).toMatch(/install failed \(exit 1\)/);
  });

  it('rejects bad settings before doing anything', async () => {
    const fake = await recorder();
    const bad: Record<string, string>[] = [
      { INSTALL_INTERVAL: '0' },
      { INSTALL_INTERVAL: 'soon' },
      { SWEEP_INTERVAL: '-1' },
      { SWEEP_SETTLE: '1.5' },
      { ACTION: 'remove' },
      { MASQ_JANITOR: join(root, 'nope') },
    ];
    for (const env of bad) {
      const r = await once({ ...dirs(), MASQ_JANITOR: fake.exe, ...env });
      expect(r.code, JSON.stringify(env)).toBe(2);
    }
    expect(await fake.calls()).toEqual([]);
  });
});

interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: { name: string; value?: string }[];
  readinessProbe?: { exec?: { command?: string[] } };
  securityContext?: { privileged?: boolean; runAsUser?: number; capabilities?: { add?: string[]; drop?: string[] }; seLinuxOptions?: { type?: string } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  hostNetwork?: boolean;
  tolerations?: { operator?: string; key?: string; effect?: string }[];
  containers: Container[];
  volumes: { name: string; hostPath?: { path: string; type?: string } }[];
}
interface DaemonSet {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

const yamlFile = async <T>(path: string): Promise<T> => parseYaml(await readFile(path, 'utf8')) as T;
const envOf = (c: Container | undefined): Record<string, string> => Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? '']));

describe('daemonset.yaml, its patches and overlays, and the image', () => {
  const load = (): Promise<DaemonSet> => yamlFile<DaemonSet>(`${K8S}/daemonset.yaml`);

  it('the DaemonSet parses and runs on every node with the host network, ready when check passes', async () => {
    const ds = await load();
    expect([ds.apiVersion, ds.kind]).toEqual(['apps/v1', 'DaemonSet']);
    const pod = ds.spec.template.spec;
    expect(ds.spec.template.metadata.labels).toMatchObject(ds.spec.selector.matchLabels);
    expect(pod.hostNetwork).toBe(true);
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0] as Container;
    expect(c.readinessProbe?.exec?.command).toEqual([...(c.command ?? []), 'ready']);
  });

  it('install asks for no capabilities; only the sweep container gets NET_ADMIN and NET_RAW', async () => {
    const c = (await load()).spec.template.spec.containers[0] as Container;
    expect(c.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.securityContext?.capabilities?.add).toBeUndefined();
    const patch = await yamlFile<{ spec: { template: { spec: PodSpec } } }>(`${K8S}/sweep-patch.yaml`);
    const sweep = patch.spec.template.spec.containers.find((x) => x.name === 'sweep');
    expect(sweep?.securityContext?.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
    expect(envOf(sweep).ACTION).toBe('sweep');
    expect(sweep?.command).toEqual(c.command);
    const vol = (mountPath: string): string | undefined =>
      patch.spec.template.spec.volumes.find((v) => v.name === sweep?.volumeMounts.find((m) => m.mountPath === mountPath)?.name)?.hostPath?.path;
    expect(vol('/var/lib/cni')).toBe('/var/lib/cni');
    expect(sweep?.volumeMounts.find((m) => m.mountPath === '/var/lib/cni')?.readOnly).toBe(true);
    expect(vol('/run/xtables.lock')).toBe('/run/xtables.lock');
  });

  it('mounts the host CNI dirs where the entrypoint is told they are', async () => {
    const ds = await load();
    const pod = ds.spec.template.spec;
    const c = pod.containers[0] as Container;
    const env = envOf(c);
    const hostPathOf = (mountPath: string | undefined): string | undefined => {
      const m = c.volumeMounts.find((v) => v.mountPath === mountPath);
      return pod.volumes.find((v) => v.name === m?.name)?.hostPath?.path;
    };
    expect(hostPathOf(env.CNI_BIN_DIR)).toBe('/opt/cni/bin');
    expect(hostPathOf(env.CNI_CONF_DIR)).toBe('/etc/cni/net.d');
    // Every variable the DaemonSet and its patches set is one the entrypoint reads, and the defaults agree.
    const script = await readFile(ENTRYPOINT, 'utf8');
    const patched = await yamlFile<{ spec: { template: { spec: PodSpec } } }>(`${K8S}/sweep-patch.yaml`);
    const k3s = await yamlFile<DaemonSet>(`${ROOT}/examples/k3s/k3s-patch.yaml`);
    for (const e of [env, envOf(patched.spec.template.spec.containers[0]), envOf(k3s.spec.template.spec.containers[0])])
      for (const name of Object.keys(e)) expect(script, name).toContain(`${name}="\${${name}:-`);
    expect(script).toContain(`CNI_BIN_DIR="\${CNI_BIN_DIR:-${env.CNI_BIN_DIR}}"`);
    expect(script).toContain(`CNI_CONF_DIR="\${CNI_CONF_DIR:-${env.CNI_CONF_DIR}}"`);
  });

  it('the k3s overlay mounts the dirs k3s\'s containerd uses (data/cni, not data/current/bin) and tells the entrypoint', async () => {
    const k = await yamlFile<{ resources: string[]; patches: { path: string }[] }>(`${ROOT}/examples/k3s/kustomization.yaml`);
    expect(k.resources).toEqual(['../kubernetes']);
    for (const p of k.patches) expect(existsSync(join(ROOT, 'examples/k3s', p.path)), p.path).toBe(true);
    const patch = await yamlFile<DaemonSet>(`${ROOT}/examples/k3s/k3s-patch.yaml`);
    const vols = Object.fromEntries(patch.spec.template.spec.volumes.map((v) => [v.name, v.hostPath?.path]));
    expect(vols['cni-bin']).toBe(K3S_BIN_DIR);
    expect(vols['cni-conf']).toBe(K3S_CONF_DIR);
    const env = envOf(patch.spec.template.spec.containers[0]);
    expect([env.HOST_CNI_BIN_DIR, env.HOST_CNI_CONF_DIR]).toEqual([K3S_BIN_DIR, K3S_CONF_DIR]);
    const m = patch.spec.template.spec.containers[0]?.volumeMounts.find((v) => v.name === 'k3s-containerd');
    expect(`${env.HOST_ROOT}${vols['k3s-containerd']}`).toBe(m?.mountPath);
    expect(m?.readOnly).toBe(true);
    expect(K3S_CONTAINERD_CONFIG.startsWith(`${vols['k3s-containerd']}/`)).toBe(true);
    const base = await yamlFile<{ resources: string[] }>(`${K8S}/kustomization.yaml`);
    expect(base.resources).toEqual(['daemonset.yaml']);
    const crio = await yamlFile<{ resources: string[]; patches: { path: string }[] }>(`${K8S}/crio/kustomization.yaml`);
    for (const p of crio.patches) expect(existsSync(join(K8S, 'crio', p.path)), p.path).toBe(true);
    const crioPatch = await yamlFile<DaemonSet>(`${K8S}/crio/crio-patch.yaml`);
    expect(crioPatch.spec.template.spec.containers[0]?.securityContext?.seLinuxOptions?.type).toBe('spc_t');
  });

  it('the image puts the executable and the entrypoint where the DaemonSet and entrypoint look', async () => {
    const build = await readFile(`${K8S}/build-image.sh`, 'utf8');
    const c = (await load()).spec.template.spec.containers[0] as Container;
    const entry = c.command?.[0] ?? '';
    expect(build).toContain(`install -m 0755 "$ENTRYPOINT_SH" "$ROOTFS${entry}"`);
    const exe = /MASQ_JANITOR="\$\{MASQ_JANITOR:-([^}]+)\}"/.exec(await readFile(ENTRYPOINT, 'utf8'))?.[1];
    expect(build).toContain(`install -m 0755 "$STANDALONE" "$ROOTFS${exe}"`);
    expect(build).toContain(`"Entrypoint":["${entry}"]`);
    const containerfile = await readFile(`${K8S}/Containerfile`, 'utf8');
    expect(containerfile).toContain(`ENTRYPOINT ["${entry}"]`);
    expect(statSync(ENTRYPOINT).mode & 0o111).toBe(0o111);
  });

  it('refers to no file that does not exist', async () => {
    const texts = await Promise.all(['daemonset.yaml', 'sweep-patch.yaml', 'Containerfile', 'entrypoint.sh'].map((f) => readFile(join(K8S, f), 'utf8')));
    for (const t of texts) expect(t).not.toContain('INSTALL-SECTION.md');
    for (const t of texts) for (const m of t.matchAll(/\b(examples\/[\w./-]+\/)/g)) expect(existsSync(join(ROOT, m[1] ?? '')), m[1]).toBe(true);
  });

  it('the examples directory holds what the README points at', async () => {
    expect(await readdir(K8S)).toEqual(expect.arrayContaining(['Containerfile', 'daemonset.yaml', 'entrypoint.sh', 'build-image.sh', 'sweep-patch.yaml', 'kustomization.yaml', 'crio']));
  });
});
