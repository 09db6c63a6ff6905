import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Io } from '../../src/cli/output.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BUNDLE = `${ROOT}/dist/masq-janitor`;

/** An Io that keeps what a command printed. */
export function capture(): Io & { readonly stdout: () => string; readonly stderr: () => string } {
  let out = '';
  let err = '';
  return {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    stdout: () => out,
    stderr: () => err,
  };
}

/** A stand-in plugin that answers CNI VERSION like the real one (or fails, to test verification). */
export async function fakePlugin(path: string, works = true): Promise<string> {
  const body = works
    ? `#!/bin/sh\ncat >/dev/null\necho '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}'\n`
    : '#!/bin/sh\necho broken >&2\nexit 1\n';
  await writeFile(path, body);
  await chmod(path, 0o755);
  return path;
}

/**
 * The bundle, built once if missing. An existing one is taken as it is
 * (`make test` builds first), so a test run never rebuilds a file other
 * test files are executing.
 */
export async function ensureBundle(): Promise<string> {
  if (!existsSync(BUNDLE)) await promisify(execFile)('npx', ['tsup'], { cwd: ROOT });
  return BUNDLE;
}
