import { constants } from 'node:fs';
import { open, opendir } from 'node:fs/promises';
import { join } from 'node:path';
import { JANITOR_TYPE } from './conflist-edit.js';

/**
 * libcni's cache of each attachment: `<state-dir>/results/<net>-<id>-<if>`,
 * JSON whose `config` is the base64 of the network config as it was at ADD.
 * Podman (and any runtime tearing down from that cache) runs DEL with that
 * config, not the file on disk: while an entry names masq-janitor, removing
 * the binary fails that container's DEL (`failed to find plugin`), and
 * bridge never releases its IP.
 *
 * The state dir is written by every plugin and runtime on the node, so it
 * is read as hostile: no symlinks, no blocking opens (a FIFO), regular files
 * only, a bounded size (a link to /dev/zero), and contents never echoed.
 */

/** libcni's default cache dir (libcni api.go CacheDir). */
export const DEFAULT_STATE_DIR = '/var/lib/cni';

/** A cache entry is a config plus one result: far below this. */
const MAX_ENTRY_BYTES = 4 * 1024 * 1024;

export interface CacheScan {
  /** Entries whose cached config names masq-janitor. */
  readonly naming: readonly string[];
  /** Entries that could not be read: each may name it. */
  readonly unreadable: readonly { readonly path: string; readonly why: string }[];
  /** Why the results dir itself could not be listed (absent is not an error). */
  readonly error: string | undefined;
}

export async function scanCache(stateDir: string): Promise<CacheScan> {
  const dir = join(stateDir, 'results');
  const naming: string[] = [];
  const unreadable: { path: string; why: string }[] = [];
  let handle;
  try {
    handle = await opendir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { naming, unreadable, error: code === 'ENOENT' ? undefined : (e as Error).message };
  }
  // Streamed: a results dir can hold one entry per attachment the node ever had.
  for await (const e of handle) {
    const path = join(dir, e.name);
    const r = await namesJanitor(path);
    if (typeof r === 'string') unreadable.push({ path, why: r });
    else if (r) naming.push(path);
  }
  naming.sort();
  unreadable.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { naming, unreadable, error: undefined };
}

/** true/false, or why the entry could not be read. */
export async function namesJanitor(path: string): Promise<boolean | string> {
  const text = await readBounded(path);
  if (typeof text !== 'string') return text.why;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const config = typeof doc === 'object' && doc !== null ? (doc as { config?: unknown }).config : undefined;
  if (typeof config !== 'string') return 'no "config" field';
  let conf: unknown;
  try {
    conf = JSON.parse(Buffer.from(config, 'base64').toString('utf8'));
  } catch {
    return '"config" is not base64 of JSON';
  }
  return configNamesJanitor(conf);
}

export function configNamesJanitor(conf: unknown): boolean {
  if (typeof conf !== 'object' || conf === null) return false;
  const c = conf as { type?: unknown; plugins?: unknown };
  if (c.type === JANITOR_TYPE) return true;
  return Array.isArray(c.plugins) && c.plugins.some((p) => typeof p === 'object' && p !== null && (p as { type?: unknown }).type === JANITOR_TYPE);
}

/** The whole file as UTF-8, or why it was not read. */
export async function readBounded(path: string, max = MAX_ENTRY_BYTES): Promise<string | { why: string }> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { why: code === 'ELOOP' ? 'a symbolic link (not followed)' : (code ?? (e as Error).message) };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { why: 'not a regular file' };
    if (st.size > max) return { why: `larger than ${max} bytes` };
    const buf = Buffer.alloc(st.size + 1);
    let n = 0;
    // One byte more than fstat said: a file growing while read is not trusted either.
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > st.size) return { why: 'grew while being read' };
    return buf.subarray(0, n).toString('utf8');
  } catch (e) {
    return { why: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  } finally {
    await fh.close();
  }
}
