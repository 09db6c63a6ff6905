import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, ok, type Result } from '../cni/errors.js';
import { kindOfFile } from './conflist-edit.js';

/**
 * The config files of a CNI conf dir that a runtime may load:
 * - its own `*.conf`, `*.conflist` and `*.json` (what libcni.ConfFiles
 *   returns to containerd, CRI-O, Podman 3 and nerdctl);
 * - `*.conflist` one level down: nerdctl keeps the non-default networks of
 *   namespace NS in `<dir>/NS/nerdctl-<name>.conflist`.
 * Hidden directories are skipped: namespaces cannot start with a dot, and a
 * ConfigMap mount keeps its real files in `..<timestamp>/` behind symlinks.
 * Sorted in byte order, as runtimes sort them.
 */
export async function configFiles(dir: string): Promise<Result<string[], string>> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    return fail((e as Error).message);
  }
  const found: string[] = [];
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name.startsWith('.')) continue;
      const inner = await readdir(path, { withFileTypes: true }).catch(() => []);
      for (const f of inner) if (kindOfFile(f.name) === 'list' && (await isFile(join(path, f.name)))) found.push(join(path, f.name));
    } else if (kindOfFile(e.name) !== undefined && (await isFile(path))) {
      found.push(path);
    }
  }
  return ok(found.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
}

/** Follows symlinks: a linked config is loaded like any other. */
async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
