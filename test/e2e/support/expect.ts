import { afterAll, beforeAll, expect } from 'vitest';
import { requireEnvironment, UPSTREAM_CNI_DIR } from '../../support/guard.js';
import { IP, removeAllNetns } from '../../support/netns.js';
import { disposeVariantPaths, type Family, type Tables } from '../../support/xtables.js';
import { explain, type DelOutcome } from './cni.js';
import { lines, masqState } from './iptables.js';
import { JANITOR_DIR, type Lab } from './lab.js';

const REQUIRED_EXECUTABLES = [
  `${UPSTREAM_CNI_DIR}/bridge`,
  `${UPSTREAM_CNI_DIR}/ptp`,
  `${UPSTREAM_CNI_DIR}/host-local`,
  IP,
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

/**
 * Every e2e file: the suite drives real plugins and real iptables as root,
 * so a machine without them FAILS it (never skips); and it never leaves a
 * namespace behind.
 */
export function e2eSuite(): void {
  beforeAll(() => {
    requireEnvironment({
      suite: 'masq-janitor e2e',
      rootFor: 'network namespaces and iptables',
      executables: REQUIRED_EXECUTABLES,
      janitor: `${JANITOR_DIR}/masq-janitor`,
      hint: 'Run `make test` (or `make e2e`) as root: it installs iptables, containernetworking-plugins and the rest, and builds dist/masq-janitor.',
    });
  });
  afterAll(async () => {
    await removeAllNetns();
    disposeVariantPaths();
  });
}

/** libcni's DEL went through every plugin (bridge's own DEL included). */
export function expectDelOk(out: DelOutcome): void {
  expect(out.failure, `DEL stopped at a failing plugin:\n${explain(out)}`).toBeUndefined();
}

/** Both nat tables (full save text, counters and comments stripped) and the nft ruleset are exactly `expected`. */
export function expectNat(actual: Tables, expected: Tables, what: string): void {
  expect(actual.v4, `iptables nat: ${what}`).toBe(expected.v4);
  expect(actual.v6, `ip6tables nat: ${what}`).toBe(expected.v6);
  expect(actual.nft, `nft ruleset: ${what}`).toBe(expected.nft);
}

/** Every line the lab started with (kube-proxy, Docker, user and other-network rules) is still there. */
export function expectForeignIntact(lab: Lab, snap: Tables): void {
  for (const family of ['v4', 'v6'] as const) {
    const have = new Set(lines(snap[family]));
    const missing = lines(lab.pristine[family]).filter((l) => !have.has(l));
    expect(missing, `foreign ${family} rules removed`).toEqual([]);
  }
}

/**
 * bridge/ptp set up masquerading for `containerId` in `family`: its chain with
 * ACCEPT + MASQUERADE, and one POSTROUTING jump per address of that family.
 */
export function expectMasq(lab: Lab, snap: Tables, containerId: string, family: Family, ips: readonly string[]): void {
  const s = masqState(family === 4 ? snap.v4 : snap.v6, lab.network, containerId);
  const chain = lab.chain(containerId);
  expect(s.chainDeclared, `${chain} declared (IPv${family})`).toBe(true);
  expect(s.chainRules.map((r) => / -j (\S+)$/.exec(r)?.[1]).sort(), `${chain} rules (IPv${family})`).toEqual(['ACCEPT', 'MASQUERADE']);
  const sources = s.jumps.map((j) => /-s (\S+)/.exec(j)?.[1]).sort();
  expect(sources, `POSTROUTING jumps to ${chain} (IPv${family})`).toEqual(ips.map((ip) => `${ip}/${family === 4 ? 32 : 128}`).sort());
}

/** No trace of `containerId` on this lab's network in either family. */
export function expectNoMasq(lab: Lab, snap: Tables, containerId: string): void {
  for (const [family, text] of [
    [4, snap.v4],
    [6, snap.v6],
  ] as const) {
    const s = masqState(text, lab.network, containerId);
    expect(s, `leftover state of ${containerId} (IPv${family})`).toEqual({ chainDeclared: false, jumps: [], chainRules: [] });
  }
}

/** masq-janitor logged nothing at warn level or worse. */
export function expectJanitorQuiet(lab: Lab): void {
  expect(lab.janitorProblems(), 'masq-janitor warnings/errors in its log').toEqual([]);
}

/** The container addresses of one family in a CNI result. */
export function resultIps(result: unknown, family: Family): string[] {
  if (typeof result !== 'object' || result === null) return [];
  const ips = (result as { ips?: unknown }).ips;
  if (!Array.isArray(ips)) return [];
  return ips
    .map((e: unknown) => (typeof e === 'object' && e !== null ? (e as { address?: unknown }).address : undefined))
    .filter((a): a is string => typeof a === 'string')
    .map((a) => a.split('/')[0] as string)
    .filter((ip) => (family === 4 ? !ip.includes(':') : ip.includes(':')));
}
