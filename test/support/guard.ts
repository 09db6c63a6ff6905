import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { SYSTEM_PATH } from './proc.js';

/**
 * The suites that drive real plugins, iptables, nft or containerd as root.
 * A machine without them must FAIL such a suite, never skip it.
 */

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
/** The built plugin under test. */
export const JANITOR = join(REPO_ROOT, 'dist/masq-janitor');
/** Debian's containernetworking-plugins. */
export const UPSTREAM_CNI_DIR = '/usr/lib/cni';

export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `name` on this process's PATH or SYSTEM_PATH. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SYSTEM_PATH.split(delimiter)].filter((d) => d !== '');
  return dirs.map((d) => join(d, name)).find(executable);
}

export interface Needs<T extends string> {
  /** How the error names the suite, e.g. "masq-janitor e2e". */
  readonly suite: string;
  /** What root is needed for, e.g. "network namespaces and iptables". */
  readonly rootFor: string;
  /** Absolute paths that must be executable. */
  readonly executables?: readonly string[];
  /** Programs that must be on PATH; their paths are returned. */
  readonly onPath?: readonly T[];
  /** The janitor build the suite runs (default JANITOR). */
  readonly janitor?: string;
  /** What to do about it (e.g. which make target installs everything). */
  readonly hint?: string;
}

/** Throw one error listing everything missing, or return where the `onPath` programs are. */
export function requireEnvironment<T extends string = never>(needs: Needs<T>): Readonly<Record<T, string>> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push(`not running as root (${needs.rootFor} need it)`);
  for (const p of needs.executables ?? []) if (!executable(p)) problems.push(`missing ${p}`);
  const found: Partial<Record<T, string>> = {};
  for (const name of needs.onPath ?? []) {
    const p = which(name);
    if (p) found[name] = p;
    else problems.push(`missing ${name} on PATH`);
  }
  const janitor = needs.janitor ?? JANITOR;
  if (!executable(janitor)) problems.push(`missing ${janitor} (build it: npx tsup)`);
  if (problems.length > 0) throw new Error(`${needs.suite} environment is not ready:\n  - ${problems.join('\n  - ')}${needs.hint ? `\n${needs.hint}` : ''}`);
  return found as Record<T, string>;
}
