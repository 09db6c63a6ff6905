import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ensureBundle, ROOT } from '../cli/support.js';

const K8S = `${ROOT}/examples/kubernetes`;
const ENTRYPOINT = `${K8S}/entrypoint.sh`;

interface Proc {
  readonly code: number | null;
  readonly out: string;
}

function start(env: Record<string, string>): { done: Promise<Proc>; kill: () => void } {
  const child = spawn('/bin/sh', [ENTRYPOINT], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
    const t0 = Date.now();
    p.kill();
    const r = await p.done;
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    // The unchanged report of idle rounds is not repeated.
    expect(r.out.match(/already present/g)?.length ?? 0).toBeLessThanOrEqual(2);
    expect(r.out).toMatch(/stopping/);
  });

  it('passes the mounted dirs to install; sweeps only when SWEEP_INTERVAL is set', async () => {
    const fake = await recorder();
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe })).code).toBe(0);
    expect(await fake.calls()).toEqual([`install --conf-dir ${conf} --bin-dir ${bin}`]);
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe, SWEEP_INTERVAL: '3600' })).code).toBe(0);
    expect((await fake.calls()).slice(1)).toEqual([`install --conf-dir ${conf} --bin-dir ${bin}`, 'sweep --apply --settle 10']);
  });

  it('ACTION=uninstall removes what install added, binary included', async () => {
    const fake = await recorder();
    expect((await once({ ...dirs(), MASQ_JANITOR: fake.exe, ACTION: 'uninstall' })).code).toBe(0);
    expect(await fake.calls()).toEqual([`uninstall --conf-dir ${conf} --bin-dir ${bin} --remove-binary`]);
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
    const bad: Record<string, string>[] = [{ INSTALL_INTERVAL: '0' }, { INSTALL_INTERVAL: 'soon' }, { SWEEP_INTERVAL: '-1' }, { ACTION: 'remove' }, { MASQ_JANITOR: join(root, 'nope') }];
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
  securityContext?: { privileged?: boolean; runAsUser?: number; capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface DaemonSet {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        hostNetwork?: boolean;
        tolerations?: { operator?: string; key?: string; effect?: string }[];
        containers: Container[];
        volumes: { name: string; hostPath?: { path: string; type?: string } }[];
      };
    };
  };
}

/** Containerfile instructions, continuation lines joined, comments dropped. */
async function containerfile(): Promise<{ op: string; args: string }[]> {
  const text = (await readFile(`${K8S}/Containerfile`, 'utf8')).replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [op = '', ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

describe('daemonset.yaml and Containerfile', () => {
  const load = async (): Promise<DaemonSet> => parseYaml(await readFile(`${K8S}/daemonset.yaml`, 'utf8')) as DaemonSet;

  it('the DaemonSet parses and runs on every node with the host network', async () => {
    const ds = await load();
    expect([ds.apiVersion, ds.kind]).toEqual(['apps/v1', 'DaemonSet']);
    const pod = ds.spec.template.spec;
    expect(ds.spec.template.metadata.labels).toMatchObject(ds.spec.selector.matchLabels);
    expect(pod.hostNetwork).toBe(true);
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0] as Container;
    expect(c.securityContext?.privileged === true || (c.securityContext?.capabilities?.add ?? []).includes('NET_ADMIN')).toBe(true);
  });

  it('mounts the host CNI dirs where the entrypoint is told they are, the state and xtables lock for sweep', async () => {
    const ds = await load();
    const pod = ds.spec.template.spec;
    const c = pod.containers[0] as Container;
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '']));
    const hostPathOf = (mountPath: string | undefined): string | undefined => {
      const m = c.volumeMounts.find((v) => v.mountPath === mountPath);
      return pod.volumes.find((v) => v.name === m?.name)?.hostPath?.path;
    };
    expect(hostPathOf(env.CNI_BIN_DIR)).toBe('/opt/cni/bin');
    expect(hostPathOf(env.CNI_CONF_DIR)).toBe('/etc/cni/net.d');
    expect(hostPathOf('/var/lib/cni')).toBe('/var/lib/cni');
    expect(c.volumeMounts.find((v) => v.mountPath === '/var/lib/cni')?.readOnly).toBe(true);
    expect(hostPathOf('/run/xtables.lock')).toBe('/run/xtables.lock');
    // Every variable the DaemonSet sets is one the entrypoint reads, and its defaults agree.
    const script = await readFile(ENTRYPOINT, 'utf8');
    for (const name of Object.keys(env)) expect(script, name).toContain(`${name}="\${${name}:-`);
    expect(script).toContain(`CNI_BIN_DIR="\${CNI_BIN_DIR:-${env.CNI_BIN_DIR}}"`);
    expect(script).toContain(`CNI_CONF_DIR="\${CNI_CONF_DIR:-${env.CNI_CONF_DIR}}"`);
  });

  it('the Containerfile COPYs files that exist, to where the DaemonSet and entrypoint look', async () => {
    await ensureBundle();
    const steps = await containerfile();
    const copies = steps.filter((s) => s.op === 'COPY').map((s) => s.args.split(/\s+/));
    const local = copies.filter((a) => !a[0]?.startsWith('--from='));
    expect(local.length).toBeGreaterThan(0);
    for (const a of local) for (const src of a.slice(0, -1)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    // The bundle it builds from is the one package.json ships.
    const pkg = JSON.parse(await readFile(`${ROOT}/package.json`, 'utf8')) as { bin: Record<string, string> };
    expect(local.map((a) => a[0])).toContain(pkg.bin['masq-janitor']);

    const entry = steps.filter((s) => s.op === 'ENTRYPOINT').at(-1);
    const entrypoint = JSON.parse(entry?.args ?? '[]') as string[];
    expect(local).toContainEqual(['examples/kubernetes/entrypoint.sh', entrypoint[0]]);
    expect(statSync(ENTRYPOINT).mode & 0o111).toBe(0o111);

    const ds = await load();
    const c = ds.spec.template.spec.containers[0] as Container;
    expect(c.command ?? entrypoint).toEqual(entrypoint);
    // The executable lands where the entrypoint runs it from by default.
    const exe = copies.find((a) => a[0]?.startsWith('--from=') && a.at(-1)?.endsWith('/masq-janitor'))?.at(-1);
    expect(await readFile(ENTRYPOINT, 'utf8')).toContain(`MASQ_JANITOR="\${MASQ_JANITOR:-${exe}}"`);
  });

  it('the examples directory holds what the README points at', async () => {
    expect(await readdir(K8S)).toEqual(expect.arrayContaining(['Containerfile', 'daemonset.yaml', 'entrypoint.sh']));
  });
});
