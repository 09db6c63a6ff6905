import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fail, ok, type Result } from '../cni/errors.js';

/**
 * The locks runtimes hold while they write network configs in a conf dir,
 * so that install/uninstall never interleave with them:
 * - nerdctl >= 2: flock(LOCK_EX) on `<conf-dir>/.nerdctl.lock`
 *   (pkg/netutil store: filesystem.WithLock(filepath.Join(NetconfPath,
 *   ".nerdctl.lock")); pkg/internal/filesystem lock_unix.go uses flock);
 * - nerdctl 1.x: flock(LOCK_EX) on the conf dir itself
 *   (pkg/lockutil WithDirLock(NetconfPath));
 * - podman 4 on its CNI backend: a POSIX write lock, fcntl(F_SETLKW), on
 *   `<conf-dir>/cni.lock` (containers/common libnetwork/cni
 *   NewCNINetworkInterface: lockfile.GetLockfile(CNIConfigDir/cni.lock);
 *   containers/storage pkg/lockfile takes F_WRLCK over the whole file).
 * containerd, CRI-O and kubelet only read the dir; they have no lock.
 * flock and fcntl locks do not see each other on Linux, so both kinds are
 * taken. A lock file that does not exist is not created: that runtime does
 * not use this dir.
 *
 * node can do neither flock(2) nor fcntl(2), so a perl child (perl-base is
 * Essential in Debian) takes the locks, says so, and holds them until its
 * stdin closes, which also happens when this process dies.
 */

export interface HeldLocks {
  /** What is held, for messages. */
  readonly held: readonly string[];
  /** Why fewer locks than wanted are held (no perl on this host). */
  readonly note?: string;
  release(): Promise<void>;
}

const NONE: HeldLocks = { held: [], release: async () => {} };

/** struct flock as x86_64 and arm64 lay it out: l_type, l_whence, pad, l_start, l_len, l_pid, pad. */
const FCNTL_ARCHES = new Set(['x64', 'arm64']);

// Arguments: seconds to wait, then kind:path pairs. Prints "held" once all are held.
const HOLDER = `
use strict; use Fcntl qw(:DEFAULT :flock);
my $wait = shift @ARGV; my @fh;
local $SIG{ALRM} = sub { print "timeout\\n"; exit 3 }; alarm $wait;
for my $a (@ARGV) {
  my ($kind, $path) = split /:/, $a, 2; my $f;
  if ($kind eq 'flock') {
    sysopen($f, $path, O_RDONLY) or do { print "error $path: $!\\n"; exit 2 };
    flock($f, LOCK_EX) or do { print "error $path: $!\\n"; exit 2 };
  } else {
    sysopen($f, $path, O_RDWR) or do { print "error $path: $!\\n"; exit 2 };
    my $s = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0);
    fcntl($f, F_SETLKW, $s) or do { print "error $path: $!\\n"; exit 2 };
  }
  push @fh, $f;
}
alarm 0; $| = 1; print "held\\n"; my $x = <STDIN>; exit 0;
`;

export async function lockConfDir(confDir: string, waitSeconds = 30): Promise<Result<HeldLocks, string>> {
  const locks: string[] = [`flock:${confDir}`];
  const nerdctl = join(confDir, '.nerdctl.lock');
  if (existsSync(nerdctl)) locks.push(`flock:${nerdctl}`);
  const podman = join(confDir, 'cni.lock');
  if (existsSync(podman) && FCNTL_ARCHES.has(process.arch)) locks.push(`fcntl:${podman}`);
  if (!existsSync(confDir)) return ok(NONE);
  let child;
  try {
    child = spawn('perl', ['-e', HOLDER, String(waitSeconds), ...locks], { stdio: ['pipe', 'pipe', 'ignore'] });
  } catch (e) {
    return fail(`cannot take the runtimes' conf dir locks: ${(e as Error).message}`);
  }
  const proc = child;
  const first = await new Promise<string>((res) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) res(out.split('\n')[0] ?? '');
    });
    proc.once('error', (e) => res(`error ${e.message}`));
    proc.once('exit', (code) => res(out.split('\n')[0] || `exit ${code}`));
  });
  if (first === 'error spawn perl ENOENT') {
    // A host without perl (a distroless image): the check after each rename still keeps a runtime's write.
    return ok({ ...NONE, note: `no perl here to take the runtimes' conf dir locks (${locks.map((l) => l.slice(l.indexOf(':') + 1)).join(', ')}); edits are still checked after each rename` });
  }
  if (first !== 'held') {
    proc.stdin.end();
    const why = first === 'timeout' ? `a runtime held its lock for more than ${waitSeconds} s` : first;
    return fail(`cannot take the runtimes' conf dir locks (${locks.map((l) => l.slice(l.indexOf(':') + 1)).join(', ')}): ${why}; nothing changed, run again`);
  }
  const exited = new Promise((res) => proc.once('exit', res));
  return ok({
    held: locks.map((l) => l.slice(l.indexOf(':') + 1)),
    release: async () => {
      proc.stdin.end();
      await exited;
    },
  });
}
