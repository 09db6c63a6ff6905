import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The built plugin under test and the directory CNI_PATH must include for it.
 * MJT_PLUGIN_DIR points the suite at another build (a standalone binary, a
 * deliberately broken plugin to prove the suite catches it).
 */
export const JANITOR_DIR = process.env.MJT_PLUGIN_DIR ? resolve(process.env.MJT_PLUGIN_DIR) : resolve(import.meta.dirname, '../../../dist');
export const JANITOR = `${JANITOR_DIR}/masq-janitor`;
export const UPSTREAM_CNI_DIR = '/usr/lib/cni';

const REQUIRED_EXECUTABLES = [
  `${UPSTREAM_CNI_DIR}/bridge`,
  `${UPSTREAM_CNI_DIR}/ptp`,
  `${UPSTREAM_CNI_DIR}/host-local`,
  '/usr/sbin/ip',
  '/usr/bin/nsenter',
  '/usr/sbin/iptables',
  '/usr/sbin/ip6tables',
  '/usr/sbin/iptables-save',
  '/usr/sbin/iptables-restore',
  '/usr/sbin/ip6tables-save',
  '/usr/sbin/ip6tables-restore',
  '/usr/sbin/iptables-legacy',
  '/usr/sbin/iptables-legacy-save',
  '/usr/sbin/iptables-legacy-restore',
  '/usr/sbin/ip6tables-legacy',
  '/usr/sbin/ip6tables-legacy-save',
  '/usr/sbin/ip6tables-legacy-restore',
  '/usr/sbin/nft',
];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The end-to-end suite drives real plugins and real iptables as root. A
 * machine without them must FAIL the suite, never skip it: call this in
 * beforeAll.
 */
export function requireE2eEnvironment(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('not running as root (network namespaces and iptables need it)');
  for (const p of REQUIRED_EXECUTABLES) if (!executable(p)) problems.push(`missing ${p}`);
  if (!executable(JANITOR)) problems.push(`missing ${JANITOR} (build it: npx tsup)`);
  if (problems.length > 0) {
    throw new Error(
      `masq-janitor e2e environment is not ready:\n  - ${problems.join('\n  - ')}\n` +
        'Run `make test` (or `make e2e`) as root: it installs iptables, containernetworking-plugins and the rest, and builds dist/masq-janitor.',
    );
  }
}
