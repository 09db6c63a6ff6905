import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type Result } from 'execa';
import type { Conflist } from '../../support/conflist.js';
import { JANITOR, requireEnvironment, UPSTREAM_CNI_DIR } from '../../support/guard.js';
import { describeProc, mustRun, NODE_DIR, run, sleep, SYSTEM_PATH, type ProcResult } from '../../support/proc.js';
import { census, type NatCensus } from './nat.js';

/**
 * A private containerd + ctr world for one test:
 *
 * - a throwaway "host" netns (unique name) in which containerd and ctr run,
 *   so bridge, the nat tables and the janitor's work all stay in there;
 * - a private mount namespace, shared by containerd, its shims and ctr, in
 *   which /etc/cni/net.d, /opt/cni/bin, /var/lib/cni (go-cni's and libcni's
 *   fixed paths) and /run/containerd (the shims' fixed socket and runc
 *   state root) show temp directories, so this machine's own files are
 *   never read or written;
 * - containerd with its own root, state and socket, the CRI plugin off;
 * - a busybox-static rootfs for `ctr run --rootfs`.
 *
 * Everything is removed by dispose(), also after a failed or timed-out test,
 * and (synchronously, best effort) when the worker is interrupted.
 */

/** PATH for containerd, ctr and (through ctr) the plugins: root's usual one, plus this node for the janitor's `#!/usr/bin/env node`. */
const CHILD_ENV: Readonly<Record<string, string>> = { PATH: `${NODE_DIR}:${SYSTEM_PATH}`, LC_ALL: 'C', HOME: '/root' };

const TOOLS = ['containerd', 'containerd-shim-runc-v2', 'ctr', 'runc', 'nsenter', 'unshare', 'mount', 'ip', 'iptables', 'ip6tables', 'busybox'] as const;
type Tool = (typeof TOOLS)[number];
const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall', 'tuning'] as const;

/** Paths that ctr (go-cni, libcni) and containerd's shims use and that no option moves. */
const PRIVATE_DIRS = [
  ['cni/net.d', '/etc/cni/net.d'],
  ['cni/bin', '/opt/cni/bin'],
  ['cni/cache', '/var/lib/cni'],
  ['run-containerd', '/run/containerd'],
] as const;

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const RUN_TIMEOUT_MS = 60_000;

/**
 * This suite needs root and the real containerd, ctr and runc. Without them
 * it FAILS (never skips): call it in beforeAll.
 */
export function requireContainerdEnvironment(): Readonly<Record<Tool, string>> {
  return requireEnvironment({
    suite: 'masq-janitor containerd e2e',
    rootFor: 'network and mount namespaces, containerd and iptables',
    onPath: TOOLS,
    executables: PLUGINS.map((p) => join(UPSTREAM_CNI_DIR, p)),
    hint: 'Run `make test` (or `make e2e`) as root: it installs containerd, runc, busybox-static, iptables and containernetworking-plugins, and builds dist/masq-janitor.',
  });
}

/**
 * Run as `sh enter.sh TMP SRC DST [SRC DST ...] -- COMMAND...` inside a fresh
 * private mount namespace: each DST shows SRC, then COMMAND is exec'd. A DST
 * missing on this machine is made inside an overlay (upper layer in TMP) on its
 * nearest existing ancestor, so nothing is ever created on the real filesystem.
 */
const ENTER_SCRIPT = `set -eu
T=$1; shift
n=0
while [ "$1" != -- ]; do
  src=$1 dst=$2; shift 2
  if [ ! -d "$dst" ]; then
    anc=$(dirname "$dst")
    while [ ! -d "$anc" ]; do anc=$(dirname "$anc"); done
    if [ "$anc" = / ]; then echo "refusing to overlay / for $dst" >&2; exit 1; fi
    n=$((n + 1)); mkdir -p "$T/overlay/$n/upper" "$T/overlay/$n/work"
    mount -t overlay masq-janitor-e2e -o "lowerdir=$anc,upperdir=$T/overlay/$n/upper,workdir=$T/overlay/$n/work" "$anc"
    mkdir -p "$dst"
  fi
  mount --bind "$src" "$dst"
done
shift
exec "$@"
`;

/** One `ctr run --rm --cni` lifecycle. */
export interface Lifecycle {
  /** ctr's container ID. */
  readonly id: string;
  /** What the plugins see as CNI_CONTAINERID: "<namespace>-<id>". */
  readonly cniContainerId: string;
  readonly result: ProcResult;
}

export interface NatCensusByFamily {
  readonly v4: NatCensus;
  readonly v6: NatCensus;
}

const live = new Set<ContainerdWorld>();

export class ContainerdWorld {
  private containerd: Promise<Result> | undefined;
  private containerdPid: number | undefined;
  private containerdExited = false;
  private netnsMade = false;
  private disposing: Promise<void> | undefined;

  private constructor(
    readonly label: string,
    readonly tools: Readonly<Record<Tool, string>>,
    /** Everything of this world on disk. */
    readonly dir: string,
    readonly netns: string,
  ) {}

  get netnsPath(): string {
    return `/var/run/netns/${this.netns}`;
  }
  get socket(): string {
    return join(this.dir, 'containerd.sock');
  }
  private get log(): string {
    return join(this.dir, 'containerd.log');
  }
  /**
   * Parent cgroup of this world's containers (ctr's default is /<namespace>, shared
   * and never removed by runc); deleted on dispose.
   */
  get cgroupParent(): string {
    return `/${this.netns}`;
  }
  /** libcni's cache dir (/var/lib/cni inside the world): host-local's default dataDir and the result cache. */
  get cniCache(): string {
    return join(this.dir, 'cni/cache');
  }

  /** Start a world; on any failure what was made is removed before the error propagates. */
  static async start(label: string): Promise<ContainerdWorld> {
    const tools = requireContainerdEnvironment();
    const unique = `${process.pid}-${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(`/tmp/mj-ctrd-${label}-${unique}-`);
    const world = new ContainerdWorld(label, tools, dir, `mj-ctrd-${label}-${unique}`);
    live.add(world);
    installEmergencyCleanup();
    try {
      await world.boot();
      return world;
    } catch (e) {
      await world.dispose();
      throw e;
    }
  }

  private async boot(): Promise<void> {
    const d = this.dir;
    for (const sub of ['root', 'state', 'fifo', 'cni/net.d', 'cni/bin', 'cni/cache', 'run-containerd']) mkdirSync(join(d, sub), { recursive: true });

    // Container rootfs: busybox-static and the applets the test commands use.
    const rootfs = join(d, 'rootfs');
    for (const sub of ['bin', 'proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(rootfs, sub), { recursive: true });
    copyFileSync(this.tools.busybox, join(rootfs, 'bin/busybox'));
    for (const applet of ['sh', 'sleep', 'ip']) symlinkSync('busybox', join(rootfs, 'bin', applet));

    // CNI_PATH (/opt/cni/bin inside): the upstream plugins and the janitor.
    for (const p of readdirSync(UPSTREAM_CNI_DIR)) symlinkSync(join(UPSTREAM_CNI_DIR, p), join(d, 'cni/bin', p));
    symlinkSync(JANITOR, join(d, 'cni/bin/masq-janitor'));

    writeFileSync(
      join(d, 'config.toml'),
      [
        'version = 2',
        `root = ${JSON.stringify(join(d, 'root'))}`,
        `state = ${JSON.stringify(join(d, 'state'))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = ${JSON.stringify(this.socket)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(this.socket + '.ttrpc')}`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(d, 'enter.sh'), ENTER_SCRIPT);

    await mustRun('ip', ['netns', 'add', this.netns]);
    this.netnsMade = true;
    await mustRun('nsenter', [`--net=${this.netnsPath}`, 'ip', 'link', 'set', 'lo', 'up']);

    // nsenter (net) -> unshare (mount) -> sh (bind mounts) -> exec containerd: one PID throughout.
    // `nsenter --net`, not `ip netns exec`: the latter remounts /sys and runc then finds no cgroups.
    const binds = PRIVATE_DIRS.flatMap(([src, dst]) => [join(d, src), dst]);
    const sub = execa(
      'nsenter',
      [`--net=${this.netnsPath}`, 'unshare', '--mount', '--propagation', 'private', 'sh', join(d, 'enter.sh'), d, ...binds, '--', this.tools.containerd, '--config', join(d, 'config.toml')],
      { env: CHILD_ENV, extendEnv: false, stdin: 'ignore', stdout: 'ignore', stderr: { file: this.log }, reject: false, cleanup: true },
    );
    this.containerdPid = sub.pid;
    this.containerd = sub;
    void sub.then(() => {
      this.containerdExited = true;
    });
    if (this.containerdPid === undefined) throw new Error(`could not start containerd: ${(await sub).message}`);

    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      if (this.containerdExited) throw new Error(`containerd exited during startup:\n${this.readLog()}`);
      if (existsSync(this.socket)) {
        const v = await this.ctr(['version'], 5_000);
        if (v.exitCode === 0) break;
        if (Date.now() > deadline) throw new Error(`containerd socket never answered:\n${describeProc(v)}\n${this.readLog()}`);
      }
      if (Date.now() > deadline) throw new Error(`no containerd socket after ${STARTUP_TIMEOUT_MS} ms:\n${this.readLog()}`);
      await sleep(50);
    }
  }

  private readLog(): string {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '(no containerd log)';
    }
  }

  /** ctr, in containerd's network and mount namespaces (so it sees the private CNI dirs). */
  ctr(args: readonly string[], timeoutMs = 15_000): Promise<ProcResult> {
    if (this.containerdPid === undefined) throw new Error('containerd is not running');
    return run('nsenter', ['-t', String(this.containerdPid), '-m', '-n', this.tools.ctr, '--address', this.socket, '--namespace', 'default', ...args], { env: CHILD_ENV, timeoutMs });
  }

  /** Make `list` the only network config (go-cni loads the first conflist of /etc/cni/net.d). */
  installConflist(fileName: string, list: Conflist): void {
    const netd = join(this.dir, 'cni/net.d');
    for (const f of readdirSync(netd)) rmSync(join(netd, f));
    writeFileSync(join(netd, fileName), JSON.stringify(list, null, 2) + '\n');
  }

  /**
   * `ctr run --rm --cni` in the foreground: ADD with the task's netns, the
   * command runs and exits, then ctr's DEL with CNI_NETNS="".
   */
  async lifecycle(id: string, shellCommand: string): Promise<Lifecycle> {
    const result = await this.ctr(
      ['run', '--rm', '--cni', '--cgroup', `${this.cgroupParent}/${id}`, '--fifo-dir', join(this.dir, 'fifo'), '--rootfs', join(this.dir, 'rootfs'), id, '/bin/sh', '-c', shellCommand],
      RUN_TIMEOUT_MS,
    );
    return { id, cniContainerId: `default-${id}`, result };
  }

  /** Both nat tables of the world's host netns. */
  async nat(): Promise<NatCensusByFamily> {
    const [v4, v6] = await Promise.all(
      (['iptables', 'ip6tables'] as const).map((bin) => mustRun('nsenter', [`--net=${this.netnsPath}`, bin, '-w', '5', '-t', 'nat', '-S'], { env: CHILD_ENV })),
    );
    return { v4: census(v4 ?? ''), v6: census(v6 ?? '') };
  }

  /** Addresses host-local still holds for `network` (files other than its lock and last_reserved_ip.*). */
  ipamReservations(network: string): string[] {
    const d = join(this.cniCache, 'networks', network);
    if (!existsSync(d)) return [];
    return readdirSync(d).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip.'));
  }

  /** libcni's cached ADD results: removed only once every plugin's DEL succeeded. */
  cachedResults(): string[] {
    const d = join(this.cniCache, 'results');
    return existsSync(d) ? readdirSync(d) : [];
  }

  dispose(): Promise<void> {
    this.disposing ??= this.teardown().finally(() => live.delete(this));
    return this.disposing;
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    // 1. Containers a failed or timed-out run left behind.
    if (this.containerdPid !== undefined && !this.containerdExited) {
      const tasks = await this.ctr(['task', 'ls', '--quiet'], 10_000);
      for (const id of words(tasks.stdout)) {
        await this.ctr(['task', 'kill', '--signal', 'SIGKILL', id], 10_000);
        await this.ctr(['task', 'delete', '--force', id], 10_000);
      }
      const containers = await this.ctr(['container', 'ls', '--quiet'], 10_000);
      for (const id of words(containers.stdout)) await this.ctr(['container', 'delete', id], 10_000);
    }
    // 2. containerd itself: SIGTERM, then SIGKILL after a bounded wait.
    if (this.containerd && this.containerdPid !== undefined && !this.containerdExited) {
      signal(this.containerdPid, 'SIGTERM');
      const stopped = await Promise.race([this.containerd.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!stopped) {
        problems.push(`containerd ${this.containerdPid} ignored SIGTERM for ${STOP_TIMEOUT_MS} ms; killed`);
        signal(this.containerdPid, 'SIGKILL');
        await Promise.race([this.containerd, sleep(STOP_TIMEOUT_MS)]);
      }
    }
    // 3. Whatever this containerd started that outlived it.
    const strays = this.strayPids();
    for (const pid of strays) {
      problems.push(`killed stray process ${pid}`);
      signal(pid, 'SIGKILL');
    }
    waitGone(strays, 5_000); // a cgroup can only be removed once its processes have exited
    // 4. The host netns (the bridge, veths and every nat rule go with it), then the files.
    if (this.netnsMade) {
      const r = await run('ip', ['netns', 'delete', this.netns]);
      if (r.exitCode !== 0 && existsSync(this.netnsPath)) problems.push(describeProc(r));
    }
    problems.push(...this.removeCgroups());
    rmSync(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    if (problems.length > 0) process.stderr.write(`[containerd e2e ${this.label}] cleanup: ${problems.join('; ')}\n`);
  }

  /** Shims started by this containerd (identified by its socket) and container inits recorded in its state dir. */
  strayPids(): number[] {
    const pids: number[] = [];
    for (const entry of safeReaddir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = readProc(`/proc/${entry}/cmdline`).split('\0');
      if (argv.some((a) => a.includes('containerd-shim')) && argv.includes(this.socket)) pids.push(Number(entry));
    }
    const tasks = join(this.dir, 'state/io.containerd.runtime.v2.task');
    for (const ns of safeReaddir(tasks)) {
      for (const id of safeReaddir(join(tasks, ns))) {
        const pid = Number(readProc(join(tasks, ns, id, 'init.pid')).trim());
        // Only if it still is that container: its cgroup path is <cgroupParent>/<id>.
        if (pid > 1 && readProc(`/proc/${pid}/cgroup`).includes(`${this.cgroupParent}/${id}`)) pids.push(pid);
      }
    }
    return pids;
  }

  /** rmdir this world's cgroup parent (and any container cgroup a failure left) in every hierarchy. */
  removeCgroups(): string[] {
    const problems: string[] = [];
    const roots = ['/sys/fs/cgroup', ...safeReaddir('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c))];
    for (const root of roots) {
      const parent = join(root, this.cgroupParent);
      if (!existsSync(parent)) continue;
      for (const child of safeReaddir(parent)) {
        const d = join(parent, child);
        if (existsSync(join(d, 'cgroup.procs'))) tryRmdir(d, problems);
      }
      tryRmdir(parent, problems);
    }
    return problems;
  }

  /** For the interrupt handler: no awaiting, no ctr. */
  disposeSync(): void {
    const pids = [...(this.containerdPid !== undefined && !this.containerdExited ? [this.containerdPid] : []), ...this.strayPids()];
    for (const pid of pids) signal(pid, 'SIGKILL');
    waitGone(pids, 3_000);
    if (this.netnsMade) {
      try {
        execFileSync('ip', ['netns', 'delete', this.netns], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        /* best effort */
      }
    }
    this.removeCgroups();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function tryRmdir(d: string, problems: string[]): void {
  try {
    rmdirSync(d);
  } catch (e) {
    problems.push(`cannot remove cgroup ${d}: ${(e as Error).message}`);
  }
}

/** Block (bounded) until none of `pids` is running: gone, or a zombie nobody has reaped yet. */
function waitGone(pids: readonly number[], ms: number): void {
  const deadline = Date.now() + ms;
  const running = (pid: number): boolean => {
    const stat = readProc(`/proc/${pid}/stat`);
    // state is the field after the parenthesised command name
    return stat !== '' && !/\) Z /.test(stat);
  };
  while (pids.some(running) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
}

function words(s: string): string[] {
  return s.split(/\s+/).filter((w) => w !== '');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Dispose every world still alive: the suite's afterAll safety net. */
export async function disposeAllWorlds(): Promise<void> {
  await Promise.all([...live].map((w) => w.dispose()));
}

let emergencyInstalled = false;
/** Ctrl-C or a killed worker: remove what can be removed synchronously, then die of the same signal. */
function installEmergencyCleanup(): void {
  if (emergencyInstalled) return;
  emergencyInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const w of live) w.disposeSync();
      live.clear();
      process.kill(process.pid, sig);
    });
  }
  process.once('exit', () => {
    for (const w of live) w.disposeSync();
  });
}
