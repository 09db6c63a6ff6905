import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { JANITOR, requireEnvironment, UPSTREAM_CNI_DIR } from '../../support/guard.js';
import { createNetns, IP, nsExec, nsMust, removeAllNetns, type Netns } from '../../support/netns.js';
import { describeProc, NODE_DIR, SYSTEM_PATH, type ProcOptions, type ProcResult } from '../../support/proc.js';
import { legacyNatLoaded, normalizeSave, stripNftCounters } from '../../support/xtables.js';

/**
 * Throwaway "hosts" for the backend e2e suites: each is a named network
 * namespace (`mjbe-<role>-<random>`, see test/support/netns.ts), so nothing
 * here ever reads or writes the root namespace's tables. Unlike the other
 * suites, these drive each table through its own binaries
 * (iptables-nft-restore, iptables-legacy-save, ...) rather than a PATH.
 *
 * Names, comments and rule texts are computed here independently of src/,
 * from the upstream formats (containernetworking/plugins pkg/utils and
 * pkg/ip/ipmasq_{iptables,nftables}_linux.go).
 */

/** node's directory is on PATH for the janitor's `#!/usr/bin/env node`. */
export const PATH = `${SYSTEM_PATH}:${NODE_DIR}`;

/** Legacy tables live in our own namespaces: a private xtables lock keeps other people's iptables runs from stalling ours. */
const LOCK_DIR = mkdtempSync(join(tmpdir(), 'mjb-lock-'));
export const XTABLES_LOCKFILE = join(LOCK_DIR, 'xtables.lock');
// afterAll, not only 'exit': vitest ends its workers without an exit event, which left one dir per file in /tmp.
afterAll(() => rmSync(LOCK_DIR, { recursive: true, force: true }));
process.on('exit', () => rmSync(LOCK_DIR, { recursive: true, force: true }));

/** Every child of these suites gets exactly this environment, plus what a call adds. */
const ENV: Readonly<Record<string, string>> = { PATH, LC_ALL: 'C', XTABLES_LOCKFILE };

const REQUIRED = [
  IP,
  '/usr/sbin/nft',
  '/usr/sbin/iptables-nft-save',
  '/usr/sbin/iptables-nft-restore',
  '/usr/sbin/ip6tables-nft-save',
  '/usr/sbin/ip6tables-nft-restore',
  '/usr/sbin/iptables-legacy-save',
  '/usr/sbin/iptables-legacy-restore',
  '/usr/sbin/ip6tables-legacy-save',
  '/usr/sbin/ip6tables-legacy-restore',
  `${UPSTREAM_CNI_DIR}/bridge`,
  `${UPSTREAM_CNI_DIR}/host-local`,
  `${UPSTREAM_CNI_DIR}/static`,
];

/** A throwaway host namespace whose programs run with this suite's environment. */
export interface Ns extends Netns {
  exec(file: string, args: readonly string[], opts?: ProcOptions): Promise<ProcResult>;
  mustExec(file: string, args: readonly string[], opts?: ProcOptions): Promise<string>;
}

export async function createNs(role: string): Promise<Ns> {
  const ns = await createNetns(`mjbe-${role}`);
  const withEnv = (opts: ProcOptions): ProcOptions => ({ ...opts, env: { ...ENV, ...opts.env } });
  return {
    ...ns,
    exec: (file, args, opts = {}) => nsExec(ns, file, args, withEnv(opts)),
    mustExec: (file, args, opts = {}) => nsMust(ns, file, args, withEnv(opts)),
  };
}

/** Every backend e2e file: fail (never skip) without root, tools or the build; never leave a namespace behind. */
export function backendSuite(): void {
  beforeAll(() => {
    requireEnvironment({ suite: 'backend e2e', rootFor: 'network namespaces, iptables and nft', executables: REQUIRED });
  });
  afterAll(async () => {
    try {
      await removeAllNetns();
    } finally {
      rmSync(LOCK_DIR, { recursive: true, force: true });
    }
  });
}

export function tempDir(role: string): string {
  return mkdtempSync(join(tmpdir(), `mjb-${role}-`));
}

// ---- upstream names, computed independently -------------------------------------

const sha512 = (s: string): string => createHash('sha512').update(s).digest('hex');

/** pkg/utils FormatChainName: "CNI-" + 24 hex of sha512(network + containerID). */
export const masqChain = (network: string, containerId: string): string => 'CNI-' + sha512(network + containerId).slice(0, 24);

/** pkg/ip ipmasq_nftables_linux.go commentForInstance, cut to knftables.CommentLengthMax. */
export function nftComment(network: string, ifname: string, containerId: string): string {
  const full = `${sha512(network).slice(0, 16)}-${sha512(`${ifname}:${containerId}`).slice(0, 16)}, net: ${network}, if: ${ifname}, id: ${containerId}`;
  return full.slice(0, 128);
}

export interface Attachment {
  readonly network: string;
  readonly containerId: string;
}

const esc = (s: string): string => s.replaceAll('\\', '\\\\').replaceAll('"', '\\"');

/** What bridge's iptables backend writes for one IP, as iptables-restore input lines (the canonical save order). */
export function iptablesMasq(a: Attachment, ip: string, subnet: string): { chain: string; rules: string[] } {
  const chain = masqChain(a.network, a.containerId);
  const v6 = ip.includes(':');
  const comment = `"${esc(`name: "${a.network}" id: "${a.containerId}"`)}"`;
  return {
    chain,
    rules: [
      `-A POSTROUTING -s ${ip}/${v6 ? 128 : 32} -m comment --comment ${comment} -j ${chain}`,
      `-A ${chain} -d ${subnet} -m comment --comment ${comment} -j ACCEPT`,
      `-A ${chain} ! -d ${v6 ? 'ff00::/8' : '224.0.0.0/4'} -m comment --comment ${comment} -j MASQUERADE`,
    ],
  };
}

/** One `iptables-restore --noflush` transaction holding these setups (several IPs of one attachment share its chain). */
export function restoreText(setups: readonly { chain: string; rules: string[] }[], extra: readonly string[] = []): string {
  const chains = [...new Set(setups.map((s) => s.chain))];
  // AppendUnique: a second IP of the same subnet adds only its POSTROUTING jump.
  const rules = [...new Set(setups.flatMap((s) => s.rules))];
  return ['*nat', ':POSTROUTING ACCEPT [0:0]', ...chains.map((c) => `:${c} - [0:0]`), ...rules, ...extra, 'COMMIT', ''].join('\n');
}

export interface NftMasq {
  readonly network: string;
  readonly ifname: string;
  readonly containerId: string;
  readonly ip: string;
  readonly subnet: string;
}

/** The nftables backend's objects exactly as setupIPMasqNFTables writes them (knftables syntax), one rule per IP. */
export function nftRuleset(rules: readonly NftMasq[], extra: readonly string[] = []): string {
  const T = 'inet cni_plugins_masquerade';
  return [
    `add table ${T} { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }`,
    `add chain ${T} masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }`,
    `add chain ${T} postrouting { type nat hook postrouting priority 100 ; }`,
    `flush chain ${T} postrouting`,
    `add rule ${T} postrouting ip daddr == 224.0.0.0/4  return`,
    `add rule ${T} postrouting ip6 daddr == ff00::/8  return`,
    `add rule ${T} postrouting goto masq_checks`,
    ...rules.map((r) => {
      const f = r.ip.includes(':') ? 'ip6' : 'ip';
      return `add rule ${T} masq_checks ${f} saddr == ${r.ip} ${f} daddr != ${r.subnet} masquerade comment "${nftComment(r.network, r.ifname, r.containerId)}"`;
    }),
    ...extra.map((e) => `add rule ${T} masq_checks ${e}`),
    '',
  ].join('\n');
}

// ---- state of one namespace -------------------------------------------------------

export type Table = 'iptables-nft' | 'ip6tables-nft' | 'iptables-legacy' | 'ip6tables-legacy';
export const TABLES: readonly Table[] = ['iptables-nft', 'ip6tables-nft', 'iptables-legacy', 'ip6tables-legacy'];

export async function restore(ns: Ns, table: Table, text: string): Promise<void> {
  await ns.mustExec(`${table}-restore`, ['-w', '5', '--noflush'], { input: text });
}

/** Every masquerade-relevant table of `ns`, as sorted normalized lines. */
export type HostState = Record<Table | 'nft', string[]>;

export async function hostState(ns: Ns): Promise<HostState> {
  const save = async (t: Table): Promise<string[]> => {
    // A legacy save would instantiate the table: only save one that exists.
    if (t.endsWith('legacy') && !(await legacyNatLoaded(ns, t.startsWith('ip6') ? 6 : 4))) return [];
    const text = normalizeSave(await ns.mustExec(`${t}-save`, ['-t', 'nat']));
    return text === '' ? [] : text.split('\n').sort();
  };
  const nft = async (): Promise<string[]> => {
    const r = await ns.exec('nft', ['list', 'table', 'inet', 'cni_plugins_masquerade']);
    if (r.exitCode !== 0) {
      if (/No such file or directory/.test(r.stderr)) return [];
      throw new Error(describeProc(r));
    }
    return stripNftCounters(r.stdout)
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .sort();
  };
  const [a, b, c, d, e] = await Promise.all([save('iptables-nft'), save('ip6tables-nft'), save('iptables-legacy'), save('ip6tables-legacy'), nft()]);
  return { 'iptables-nft': a, 'ip6tables-nft': b, 'iptables-legacy': c, 'ip6tables-legacy': d, nft: e };
}

/** `state` without the lines of these attachments: iptables lines naming their chain, nft rules carrying their comment. */
export function without(state: HostState, gone: { iptables?: readonly Attachment[]; nft?: readonly { network: string; ifname: string; containerId: string }[] }): HostState {
  const chains = (gone.iptables ?? []).map((a) => masqChain(a.network, a.containerId));
  const comments = (gone.nft ?? []).map((r) => `comment "${nftComment(r.network, r.ifname, r.containerId)}"`);
  const out = {} as HostState;
  for (const t of TABLES) out[t] = state[t].filter((l) => !chains.some((c) => l.includes(c)));
  out.nft = state.nft.filter((l) => !comments.some((c) => l.endsWith(c)));
  return out;
}

/** How many lines of `state` carry this attachment's identity, per table (0 everywhere = fully gone). */
export function traces(state: HostState, a: Attachment, ifname?: string): Record<Table | 'nft', number> {
  const chain = masqChain(a.network, a.containerId);
  const out = {} as Record<Table | 'nft', number>;
  for (const t of TABLES) out[t] = state[t].filter((l) => l.includes(chain)).length;
  out.nft = state.nft.filter((l) => (ifname === undefined ? l.includes(`, net: ${a.network}, if: `) && l.includes(`, id: ${a.containerId}`) : l.endsWith(`comment "${nftComment(a.network, ifname, a.containerId)}"`))).length;
  return out;
}

// ---- the plugin under test ------------------------------------------------------

export interface CniCall {
  readonly command: 'DEL' | 'GC' | 'ADD';
  readonly containerId?: string;
  readonly ifname?: string;
  readonly netns?: string;
  readonly conf: Record<string, unknown>;
}

/** Run masq-janitor as a runtime would, inside `ns`. */
export function janitor(ns: Ns, call: CniCall): Promise<ProcResult> {
  return ns.exec('env', ['-i', ...cniEnv(call), JANITOR], { input: JSON.stringify(call.conf) });
}

function cniEnv(call: CniCall): string[] {
  return [
    `PATH=${PATH}`,
    `XTABLES_LOCKFILE=${XTABLES_LOCKFILE}`,
    `CNI_COMMAND=${call.command}`,
    `CNI_CONTAINERID=${call.containerId ?? ''}`,
    `CNI_NETNS=${call.netns ?? ''}`,
    `CNI_IFNAME=${call.ifname ?? ''}`,
    'CNI_ARGS=',
    `CNI_PATH=${UPSTREAM_CNI_DIR}:${dirname(JANITOR)}`,
  ];
}

/** Run an upstream plugin (bridge, ...) inside `ns`. */
export function upstream(ns: Ns, plugin: string, call: CniCall): Promise<ProcResult> {
  return ns.exec('env', ['-i', ...cniEnv(call), `${UPSTREAM_CNI_DIR}/${plugin}`], { input: JSON.stringify(call.conf) });
}

export function sweep(ns: Ns, args: readonly string[]): Promise<ProcResult> {
  return ns.exec('env', ['-i', `PATH=${PATH}`, `XTABLES_LOCKFILE=${XTABLES_LOCKFILE}`, JANITOR, 'sweep', ...args]);
}

/** A DEL or GC that succeeded prints nothing on stdout and exits 0. */
export function quietSuccess(r: ProcResult): { exitCode: number | undefined; stdout: string } {
  return { exitCode: r.exitCode, stdout: r.stdout };
}
