import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKUP_SUFFIX, installBinary, readSnapshot, removeBinary, replaceWithBackup, writeAtomic } from '../../src/cli/atomic-file.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mj-atomic-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o7777;

describe('writeAtomic', () => {
  it('writes with the given mode whatever the umask, and leaves no temp file', async () => {
    const p = join(dir, 'a.conflist');
    const r = await writeAtomic(p, Buffer.from('x\n'), { mode: 0o640, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    expect(r.ok).toBe(true);
    expect(await readFile(p, 'utf8')).toBe('x\n');
    expect(await mode(p)).toBe(0o640);
    expect(await readdir(dir)).toEqual(['a.conflist']);
  });

  it('a guard that objects cancels the write and removes the temp file', async () => {
    const p = join(dir, 'a.conflist');
    await writeFile(p, 'old');
    const r = await writeAtomic(p, Buffer.from('new'), { mode: 0o644, uid: 0, gid: 0 }, async () => 'no');
    expect(r).toEqual({ ok: false, error: { kind: 'changed', message: 'no' } });
    expect(await readFile(p, 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['a.conflist']);
  });

  it('fails cleanly in a directory that does not exist', async () => {
    const r = await writeAtomic(join(dir, 'nope', 'a'), Buffer.from('x'), { mode: 0o644, uid: 0, gid: 0 });
    expect(r.ok).toBe(false);
  });

  it.runIf(isRoot)('keeps the owner (as root)', async () => {
    const p = join(dir, 'a.conflist');
    const r = await writeAtomic(p, Buffer.from('x'), { mode: 0o600, uid: 1234, gid: 4321 });
    expect(r.ok).toBe(true);
    const st = await stat(p);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 4321, 0o600]);
  });
});

describe('replaceWithBackup', () => {
  it('saves the previous content beside the file, with its mode, then replaces it', async () => {
    const p = join(dir, '10-net.conflist');
    await writeFile(p, 'old\n');
    await chmod(p, 0o640);
    const snap = await readSnapshot(p);
    if (!snap.ok) throw new Error(snap.error.message);
    const r = await replaceWithBackup(snap.value, 'new\n');
    expect(r).toEqual({ ok: true, value: { backup: p + BACKUP_SUFFIX, outcome: 'written' } });
    expect(await readFile(p, 'utf8')).toBe('new\n');
    expect(await readFile(p + BACKUP_SUFFIX, 'utf8')).toBe('old\n');
    expect(await mode(p)).toBe(0o640);
    expect(await mode(p + BACKUP_SUFFIX)).toBe(0o640);
    expect((await readdir(dir)).sort()).toEqual(['10-net.conflist', `10-net.conflist${BACKUP_SUFFIX}`]);
  });

  it('the backup name is one no runtime loads', () => {
    for (const ext of ['.conf', '.conflist', '.json']) expect(`x.conflist${BACKUP_SUFFIX}`.endsWith(ext)).toBe(false);
  });

  it('refuses when the file changed after it was read (a runtime rewrote it)', async () => {
    const p = join(dir, 'a.conflist');
    await writeFile(p, 'one');
    const snap = await readSnapshot(p);
    if (!snap.ok) throw new Error(snap.error.message);
    await writeFile(p, 'two');
    const r = await replaceWithBackup(snap.value, 'mine');
    expect(r).toMatchObject({ ok: false, error: { kind: 'changed' } });
    expect(await readFile(p, 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['a.conflist']);
  });

  it('edits the target of a symlink and keeps the link', async () => {
    await mkdir(join(dir, 'real'));
    const target = join(dir, 'real', 'net.conflist');
    await writeFile(target, 'old');
    const link = join(dir, 'net.conflist');
    await symlink(target, link);
    const snap = await readSnapshot(link);
    if (!snap.ok) throw new Error(snap.error.message);
    expect(snap.value.path).toBe(target);
    expect((await replaceWithBackup(snap.value, 'new')).ok).toBe(true);
    expect(await readFile(link, 'utf8')).toBe('new');
    expect(await readFile(target + BACKUP_SUFFIX, 'utf8')).toBe('old');
  });

  it.runIf(isRoot)('keeps the owner of the file and gives it to the backup (as root)', async () => {
    const p = join(dir, 'a.conflist');
    await writeFile(p, 'old');
    await chown(p, 1234, 4321);
    const snap = await readSnapshot(p);
    if (!snap.ok) throw new Error(snap.error.message);
    expect((await replaceWithBackup(snap.value, 'new')).ok).toBe(true);
    for (const f of [p, p + BACKUP_SUFFIX]) expect([(await stat(f)).uid, (await stat(f)).gid]).toEqual([1234, 4321]);
  });
});

describe('case 6: a runtime rewrite that lands between the check and the rename is never lost', () => {
  const exec = promisify(execFile);
  // Real writers, in other processes, the two ways runtimes write conflists.
  const writers: [string, (p: string) => Promise<unknown>][] = [
    ['in place (truncate + write: nerdctl os.WriteFile)', (p) => exec('/bin/sh', ['-c', 'printf runtime > "$1"', 'sh', p])],
    ['temp file + rename (podman AtomicWriteFile)', (p) => exec('/bin/sh', ['-c', 'printf runtime > "$1.rt" && mv -f "$1.rt" "$1"', 'sh', p])],
  ];

  it.each(writers)('writer %s: the file keeps the runtime content, the edit reports "changed while editing, left alone"', async (_name, write) => {
    const p = join(dir, '10-net.conflist');
    await writeFile(p, 'old\n');
    const snap = await readSnapshot(p);
    if (!snap.ok) throw new Error(snap.error.message);
    // The hook fires after the last content check, right before the rename.
    const r = await replaceWithBackup(snap.value, 'new\n', 'always', { beforeRename: async () => void (await write(p)) });
    expect(r.ok ? 'written' : r.error.kind).toBe('changed');
    if (!r.ok) expect(r.error.message).toMatch(/changed while editing, left alone/);
    expect(await readFile(p, 'utf8')).toBe('runtime');
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('installBinary', () => {
  const good = async (): Promise<undefined> => undefined;
  let src: string;
  let bin: string;

  beforeEach(async () => {
    src = join(dir, 'src-masq-janitor');
    bin = join(dir, 'bin');
    await mkdir(bin);
    await writeFile(src, '#!/bin/sh\necho v1\n');
  });

  it('installs mode 0755, then finds it up to date, fixes a wrong mode, updates a changed source', async () => {
    const dest = join(bin, 'masq-janitor');
    expect(await installBinary(src, bin, { dryRun: false, verify: good })).toEqual({ ok: true, value: { action: 'installed', path: dest } });
    expect(await mode(dest)).toBe(0o755);
    expect(await readFile(dest, 'utf8')).toBe('#!/bin/sh\necho v1\n');
    expect(await installBinary(src, bin, { dryRun: false, verify: good })).toMatchObject({ ok: true, value: { action: 'up-to-date' } });
    await chmod(dest, 0o700);
    expect(await installBinary(src, bin, { dryRun: false, verify: good })).toMatchObject({ ok: true, value: { action: 'mode-fixed' } });
    expect(await mode(dest)).toBe(0o755);
    await writeFile(src, '#!/bin/sh\necho v2\n');
    const before = (await stat(dest)).ino;
    expect(await installBinary(src, bin, { dryRun: false, verify: good })).toMatchObject({ ok: true, value: { action: 'updated' } });
    // A new inode: a plugin running from the old file keeps it.
    expect((await stat(dest)).ino).not.toBe(before);
    expect(await readFile(dest, 'utf8')).toBe('#!/bin/sh\necho v2\n');
    expect(await readdir(bin)).toEqual(['masq-janitor']);
  });

  it('verifies the copy before it takes the real name', async () => {
    const seen: string[] = [];
    const r = await installBinary(src, bin, {
      dryRun: false,
      verify: async (f) => {
        seen.push(f);
        return 'exit 1: nope';
      },
    });
    expect(r).toMatchObject({ ok: false, error: { kind: 'verify', message: expect.stringContaining('exit 1: nope') } });
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toBe(join(bin, 'masq-janitor'));
    expect(await readdir(bin)).toEqual([]);
  });

  it('dry run changes nothing; the same file is left alone', async () => {
    expect(await installBinary(src, bin, { dryRun: true, verify: good })).toMatchObject({ ok: true, value: { action: 'installed' } });
    expect(await readdir(bin)).toEqual([]);
    await installBinary(src, bin, { dryRun: false, verify: good });
    expect(await installBinary(join(bin, 'masq-janitor'), bin, { dryRun: false, verify: good })).toMatchObject({ ok: true, value: { action: 'same-file' } });
  });

  it('reports a missing bin dir or source', async () => {
    expect(await installBinary(src, join(dir, 'nope'), { dryRun: false, verify: good })).toMatchObject({ ok: false, error: { message: expect.stringContaining('no such directory') } });
    expect(await installBinary(join(dir, 'nope'), bin, { dryRun: false, verify: good })).toMatchObject({ ok: false });
  });

  it('removeBinary unlinks it, and is content when it is gone', async () => {
    await installBinary(src, bin, { dryRun: false, verify: good });
    expect(await removeBinary(bin, true)).toMatchObject({ ok: true, value: { action: 'removed' } });
    expect(await readdir(bin)).toEqual(['masq-janitor']);
    expect(await removeBinary(bin, false)).toMatchObject({ ok: true, value: { action: 'removed' } });
    expect(await removeBinary(bin, false)).toMatchObject({ ok: true, value: { action: 'absent' } });
  });
});
