import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, link, lstat, open, readFile, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fail, ok, type Result } from '../cni/errors.js';

/**
 * The file-system half of install/uninstall. Runtimes re-read the conf dir
 * at any moment (containerd and CRI-O watch it) and run the plugin binary
 * on every container start, so nothing here is ever visible half-written:
 * each new content goes to a temp file in the same directory, is fsynced,
 * and is renamed over the old name.
 */

/**
 * Kept next to each edited file, holding its content from just before the
 * edit. libcni loads `*.conf`, `*.conflist` and `*.json` from the conf dir,
 * so the name must end in none of those: `.bak` is safe.
 */
export const BACKUP_SUFFIX = '.masq-janitor.bak';

export const BINARY_NAME = 'masq-janitor';

export interface FsError {
  /** `changed`: someone rewrote the file while we worked; run again. */
  readonly kind: 'io' | 'changed' | 'verify';
  readonly message: string;
}

const ioError = (e: unknown): FsError => ({ kind: 'io', message: (e as Error).message });

/**
 * Temp names start with a dot and end in `.tmp`: no runtime loads them as a
 * network config, and none can mistake one for a plugin called by `type`.
 */
function tempPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Make the rename itself durable; some file systems refuse fsync on a directory, which is fine. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

export interface Owner {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface WriteOptions {
  /** Runs just before the rename; a string from it cancels the write (the temp file is removed, `path` is untouched). */
  readonly guard?: () => Promise<string | undefined>;
  /**
   * Checks the file the rename replaced (kept under a hard link made just
   * before it, so an in-place rewrite shows too). A string from it puts
   * that file back and fails the write with kind `changed`.
   */
  readonly verifyReplaced?: (replaced: string) => Promise<string | undefined>;
  /** Tests only: runs after `guard`, where a concurrent writer would race the rename. */
  readonly beforeRename?: () => Promise<void>;
}

/** Write `data` to `path` through a temp file and a rename, with the given mode and owner. */
export async function writeAtomic(path: string, data: Buffer, owner: Owner, opts: WriteOptions | (() => Promise<string | undefined>) = {}): Promise<Result<void, FsError>> {
  const { guard, verifyReplaced, beforeRename } = typeof opts === 'function' ? { guard: opts, verifyReplaced: undefined, beforeRename: undefined } : opts;
  const tmp = tempPath(path);
  let held: string | undefined;
  let fh: FileHandle | undefined;
  try {
    // 0600 until the final mode is set: never readable by more than the end result.
    fh = await open(tmp, 'wx', 0o600);
    await fh.writeFile(data);
    const st = await fh.stat();
    // Owner first: chown clears set-id bits, chmod then restores them.
    if (st.uid !== owner.uid || st.gid !== owner.gid) await fh.chown(owner.uid, owner.gid);
    await fh.chmod(owner.mode & 0o7777);
    await fh.sync();
    await fh.close();
    fh = undefined;
    const why = guard ? await guard() : undefined;
    if (why !== undefined) {
      await unlink(tmp).catch(() => undefined);
      return fail({ kind: 'changed', message: why });
    }
    await beforeRename?.();
    if (verifyReplaced) {
      held = tempPath(path);
      await link(path, held).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        held = undefined;
      });
    }
    await rename(tmp, path);
    if (verifyReplaced) {
      const bad = held === undefined ? 'the file disappeared while it was being edited' : await verifyReplaced(held);
      if (bad !== undefined) {
        // Theirs goes back over ours: a runtime's write always wins, and the next run retries.
        if (held !== undefined) await rename(held, path);
        else await unlink(path);
        held = undefined;
        await syncDir(dirname(path));
        return fail({ kind: 'changed', message: bad });
      }
    }
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    return fail(ioError(e));
  } finally {
    if (held !== undefined) await unlink(held).catch(() => undefined);
  }
  await syncDir(dirname(path));
  return ok(undefined);
}

export interface Snapshot {
  /** The file as given. */
  readonly shown: string;
  /** The file actually replaced: symlinks resolved, so a link stays a link. */
  readonly path: string;
  readonly data: Buffer;
  readonly owner: Owner;
}

export async function readSnapshot(shown: string): Promise<Result<Snapshot, FsError>> {
  try {
    const path = await realpath(shown);
    const st = await stat(path);
    if (!st.isFile()) return fail({ kind: 'io', message: 'not a regular file' });
    const data = await readFile(path);
    return ok({ shown, path, data, owner: { mode: st.mode, uid: st.uid, gid: st.gid } });
  } catch (e) {
    return fail(ioError(e));
  }
}

/**
 * What happens to `<file>.masq-janitor.bak`:
 * - `always`: it gets the content from just before this edit;
 * - `first` (install): written only when there is none, so it keeps the
 *   content from before the FIRST install however often install runs;
 * - `restore` (uninstall): never written; removed once the file holds
 *   exactly its bytes again, so an undone install leaves nothing behind.
 */
export type BackupMode = 'always' | 'first' | 'restore';

export type BackupOutcome = 'written' | 'kept' | 'removed' | 'none';

/**
 * Replace a config file with `text`, handling its backup (same mode and
 * owner as the file: it may hold anything the original held) as `mode`
 * says. Refuses when the file no longer holds what was read, and checks
 * after the rename that the file replaced was the one compared, so a
 * runtime rewriting it at the same moment wins and the next run retries.
 */
export async function replaceWithBackup(
  snap: Snapshot,
  text: string,
  mode: BackupMode = 'always',
  hooks: Pick<WriteOptions, 'beforeRename'> = {},
): Promise<Result<{ readonly backup: string; readonly outcome: BackupOutcome }, FsError>> {
  const CHANGED = 'the file changed while editing, left alone: a runtime rewrote it; nothing lost, run again';
  const sameAsRead = async (file: string): Promise<string | undefined> => {
    const now = await readFile(file).catch(() => undefined);
    return now !== undefined && now.equals(snap.data) ? undefined : CHANGED;
  };
  const backup = snap.path + BACKUP_SUFFIX;
  const data = Buffer.from(text);
  // lstat, never follow: a FIFO or a link to /dev/zero under that name is not our backup.
  const existing = await lstat(backup).catch(() => undefined);
  let outcome: BackupOutcome = 'none';
  if (mode === 'always' || (mode === 'first' && existing === undefined)) {
    const saved = await writeAtomic(backup, snap.data, snap.owner, { guard: () => sameAsRead(snap.path) });
    if (!saved.ok) return saved;
    outcome = 'written';
  } else if (mode === 'first') outcome = 'kept';
  const written = await writeAtomic(snap.path, data, snap.owner, { guard: () => sameAsRead(snap.path), verifyReplaced: sameAsRead, ...hooks });
  if (!written.ok) return written;
  if (mode === 'restore' && existing?.isFile() && existing.size === data.length) {
    const held = await readFile(backup).catch(() => undefined);
    if (held?.equals(data)) {
      await unlink(backup).catch(() => undefined);
      outcome = 'removed';
    }
  }
  return ok({ backup, outcome });
}

/** Byte-for-byte comparison, in chunks: the binary may be a 100 MB single executable. */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  if (sa.size !== sb.size) return false;
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const size = 1 << 20;
    const ba = Buffer.alloc(size);
    const bb = Buffer.alloc(size);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size, null), fb.read(bb, 0, size, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

export type BinaryAction = 'installed' | 'updated' | 'up-to-date' | 'mode-fixed' | 'same-file';

export interface BinaryOptions {
  readonly dryRun: boolean;
  /** Checks the copied file before it takes the real name; a string rejects it. */
  readonly verify: (file: string) => Promise<string | undefined>;
}

const BINARY_MODE = 0o755;

/**
 * Put `src` into `binDir` as `masq-janitor`, mode 0755. Copy to a temp name,
 * verify, rename: a runtime exec'ing the plugin meanwhile gets the old or
 * the new file, never a torn one, and a running old binary keeps its inode
 * (writing in place would fail with ETXTBSY).
 */
export async function installBinary(src: string, binDir: string, opts: BinaryOptions): Promise<Result<{ readonly action: BinaryAction; readonly path: string }, FsError>> {
  const dest = join(binDir, BINARY_NAME);
  try {
    const s = await stat(src);
    if (!s.isFile()) return fail({ kind: 'io', message: `${src}: not a regular file` });
    const d = await stat(binDir).catch(() => undefined);
    if (!d?.isDirectory()) return fail({ kind: 'io', message: `${binDir}: no such directory` });
    const existing = await stat(dest).catch(() => undefined);
    if (existing?.isFile()) {
      if (existing.dev === s.dev && existing.ino === s.ino) return ok({ action: 'same-file', path: dest });
      if (await sameContent(src, dest)) {
        if ((existing.mode & 0o7777) === BINARY_MODE) return ok({ action: 'up-to-date', path: dest });
        if (!opts.dryRun) await chmod(dest, BINARY_MODE);
        return ok({ action: 'mode-fixed', path: dest });
      }
    }
    const action: BinaryAction = existing ? 'updated' : 'installed';
    if (opts.dryRun) return ok({ action, path: dest });
    const tmp = tempPath(dest);
    try {
      await copyFile(src, tmp, constants.COPYFILE_EXCL);
      await chmod(tmp, BINARY_MODE);
      const fh = await open(tmp, 'r');
      await fh.sync().finally(() => fh.close());
      const bad = await opts.verify(tmp);
      if (bad !== undefined) {
        await unlink(tmp).catch(() => undefined);
        return fail({ kind: 'verify', message: `${src} does not work as a CNI plugin here (${bad}); nothing installed` });
      }
      await rename(tmp, dest);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await syncDir(binDir);
    return ok({ action, path: dest });
  } catch (e) {
    return fail(ioError(e));
  }
}

export async function removeBinary(binDir: string, dryRun: boolean): Promise<Result<{ readonly action: 'removed' | 'absent'; readonly path: string }, FsError>> {
  const dest = join(binDir, BINARY_NAME);
  try {
    const st = await lstat(dest).catch(() => undefined);
    if (!st) return ok({ action: 'absent', path: dest });
    // unlink, not truncate: a plugin running right now keeps its inode.
    if (!dryRun) await unlink(dest);
    return ok({ action: 'removed', path: dest });
  } catch (e) {
    return fail(ioError(e));
  }
}
