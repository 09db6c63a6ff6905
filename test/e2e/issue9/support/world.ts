import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Conflist, Json, JsonObject, PluginConf } from '../../../support/conflist.js';
import { nsExec, removeNetns, type Netns } from '../../../support/netns.js';
import { describeProc, sleep, type ProcResult } from '../../../support/proc.js';
import { addNetworkList, delNetworkList, explain, type AddOutcome, type DelOutcome } from '../../support/cni.js';
import { masqState } from '../../support/iptables.js';
import { JANITOR_DIR, type Container, type Lab } from '../../support/lab.js';

/**
 * Issue 9's scenes on top of lab.ts: a CNI state dir shaped like
 * /var/lib/cni (results/ holding libcni cache entries, networks/ being
 * host-local's dataDir), so sweep's --state-dir and the janitor's
 * "stateDir" see what a real node records; and PATH wrappers around
 * iptables-restore / nft that give a test a deterministic moment between
 * the janitor's first read and its transaction.
 *
 * The janitor binary comes from JANITOR_DIR, which honours MJT_PLUGIN_DIR,
 * so the same suite runs against an older build.
 */

export const JANITOR_BIN = join(JANITOR_DIR, 'masq-janitor');

export interface World {
  readonly lab: Lab;
  /** Holds results/ and networks/. */
  readonly stateDir: string;
  readonly results: string;
  /** host-local's dataDir. */
  readonly networks: string;
}

export function world(lab: Lab): World {
  const stateDir = join(lab.tmp, 'cni-state');
  const results = join(stateDir, 'results');
  const networks = join(stateDir, 'networks');
  mkdirSync(results, { recursive: true });
  mkdirSync(networks, { recursive: true });
  return { lab, stateDir, results, networks };
}

export interface ListOptions {
  readonly janitor?: boolean;
  /** Extra keys of the janitor's entry (stateDir, strict, ...). */
  readonly janitorKeys?: JsonObject;
  /** No routes in the IPAM result (a second interface of one container would add a second default route). */
  readonly noRoutes?: boolean;
}

/** lab.bridgeList, with host-local's dataDir in the state dir (so sweep sees its reservations). */
export function bridgeList(w: World, opts: ListOptions = {}): Conflist {
  const base = w.lab.bridgeList({ janitor: false });
  const bridge = base.plugins[0] as PluginConf;
  const ipam = { ...(bridge.ipam as JsonObject), dataDir: w.networks, ...(opts.noRoutes ? { routes: [] } : {}) };
  const plugins: PluginConf[] = [{ ...bridge, ipam }];
  if (opts.janitor !== false) plugins.push(janitorEntry(w, opts.janitorKeys));
  return { ...base, plugins };
}

export function janitorEntry(w: World, keys: JsonObject = {}): PluginConf {
  return { type: 'masq-janitor', logFile: w.lab.janitorLog, logLevel: 'info', ...keys };
}

export function janitorOnly(w: World, keys: JsonObject = {}, cniVersion = '1.0.0'): Conflist {
  return { cniVersion, name: w.lab.network, plugins: [janitorEntry(w, keys)] };
}

export async function addIf(w: World, list: Conflist, c: Container, ifname: string): Promise<JsonObject> {
  const out: AddOutcome = await addNetworkList(w.lab.cni, list, { containerId: c.id, netns: c.ns.path, ifname });
  if (out.failure || !out.result) throw new Error(`ADD failed at ${out.failure?.plugin ?? '?'}:\n${explain(out)}`);
  return out.result;
}

export function delIf(w: World, list: Conflist, containerId: string, netns: string, ifname: string, cached: JsonObject | undefined): Promise<DelOutcome> {
  return delNetworkList(w.lab.cni, list, { containerId, netns, ifname }, { cachedResult: cached });
}

/** libcni's cache entry file name: `<network>-<containerID>-<ifname>`. */
export const cacheFile = (w: World, containerId: string, ifname: string): string => join(w.results, `${w.lab.network}-${containerId}-${ifname}`);

/** Write a libcni-like cniCacheV1 entry (complete file, renamed into place, as libcni's atomic write). */
export function writeCache(w: World, list: Conflist, containerId: string, ifname: string, netns: string, result: JsonObject): void {
  const config = Buffer.from(JSON.stringify(list)).toString('base64');
  const entry = { kind: 'cniCacheV1', containerId, config, ifName: ifname, networkName: list.name, netns, cniArgs: null, result };
  const file = cacheFile(w, containerId, ifname);
  writeFileSync(`${file}.tmp`, JSON.stringify(entry));
  renameSync(`${file}.tmp`, file);
}

export function removeCache(w: World, containerId: string, ifname: string): void {
  rmSync(cacheFile(w, containerId, ifname), { force: true });
}

/** host-local reservations (one file per IP) of this lab's network. */
export function reservedIps(w: World): string[] {
  const dir = join(w.networks, w.lab.network);
  return existsSync(dir) ? readdirSync(dir).filter((f) => isIP(f) !== 0) : [];
}

/** The IPv4 address of a CNI result, without prefix. */
export function ip4(result: JsonObject): string {
  const ips = (result.ips ?? []) as readonly { address?: Json }[];
  const a = ips.map((i) => String(i.address ?? '')).find((s) => s.includes('.'));
  if (!a) throw new Error(`no IPv4 in ${JSON.stringify(result)}`);
  return a.split('/')[0] as string;
}

/**
 * A container whose masquerade state leaked: ADD through bridge alone, then
 * bridge's DEL with CNI_NETNS="" (IP released, rules left), netns removed.
 * Nothing records it any more.
 */
export async function leak(w: World): Promise<{ c: Container; ip: string }> {
  const list = bridgeList(w, { janitor: false });
  const c = await w.lab.container();
  const result = await addIf(w, list, c, 'eth0');
  const out = await delIf(w, list, c.id, '', 'eth0', result);
  if (out.failure) throw new Error(`leak DEL failed:\n${explain(out)}`);
  await removeNetns(c.ns);
  return { c, ip: ip4(result) };
}

/** A live, recorded container: bridge+janitor ADD, libcni cache entry written. */
export async function live(w: World, list: Conflist = bridgeList(w)): Promise<{ c: Container; ip: string; result: JsonObject }> {
  const c = await w.lab.container();
  const result = await addIf(w, list, c, 'eth0');
  writeCache(w, list, c.id, 'eth0', c.ns.path, result);
  return { c, ip: ip4(result), result };
}

/** Is this container's IPv4 state whole: its chain with ACCEPT + MASQUERADE and a POSTROUTING jump from each IP? */
export function masqWhole(saveV4: string, network: string, containerId: string, ips: readonly string[]): { ok: boolean; why: string } {
  const s = masqState(saveV4, network, containerId);
  const targets = s.chainRules.map((r) => / -j (\S+)$/.exec(r)?.[1]).sort();
  const sources = s.jumps.map((j) => /-s (\S+)/.exec(j)?.[1]).sort();
  const want = ips.map((ip) => `${ip}/32`).sort();
  const ok = s.chainDeclared && JSON.stringify(targets) === JSON.stringify(['ACCEPT', 'MASQUERADE']) && want.every((x) => sources.includes(x));
  return { ok, why: `declared=${s.chainDeclared} rules=${targets.join(',')} jumps=${sources.join(',')} want=${want.join(',')}` };
}

// ---- running the janitor's operator commands and GC ---------------------------------

/** sweep scoped to this lab's network (the lab's foreign "othernet" chains are unrecorded on purpose). */
export function sweep(w: World, args: readonly string[], pathPrefix?: string): Promise<ProcResult> {
  const path = pathPrefix ? `${pathPrefix}:${w.lab.toolchain.path}` : w.lab.toolchain.path;
  return nsExec(w.lab.host, JANITOR_BIN, ['sweep', '--state-dir', w.stateDir, '--network', w.lab.network, ...args], { env: { PATH: path }, timeoutMs: 120_000 });
}

/** The CNI GC verb (cniVersion 1.1.0) on the janitor alone, as libcni's GCNetworkList calls each plugin. */
export function gc(w: World, valid: readonly { containerID: string; ifname: string }[], keys: JsonObject = {}, pathPrefix?: string): Promise<ProcResult> {
  const path = pathPrefix ? `${pathPrefix}:${w.lab.toolchain.path}` : w.lab.toolchain.path;
  const conf = { ...janitorEntry(w, keys), cniVersion: '1.1.0', name: w.lab.network, 'cni.dev/valid-attachments': valid };
  return nsExec(w.lab.host, JANITOR_BIN, [], {
    input: JSON.stringify(conf),
    env: { PATH: path, CNI_COMMAND: 'GC', CNI_PATH: w.lab.cni.cniPath },
    timeoutMs: 120_000,
  });
}

export const procText = describeProc;

// ---- PATH wrappers: a deterministic moment inside the janitor's run ----------------------

export type HookMode =
  /** The first wrapped call waits for the test, then fails once with a "table moved" error; every later call is the real tool. */
  | 'fail-once'
  /** The first wrapped call waits for the test, then runs the real tool (which may fail on its own). */
  | 'pause-once'
  /** Never waits: only reports which reads finished. */
  | 'observe';

export interface Hook {
  /** Put this first on the janitor's PATH. */
  readonly dir: string;
  /** Wait until the janitor reaches its first wrapped call, run `during`, then let it go on. Resolves with `run`'s result. */
  around(run: Promise<ProcResult>, during: () => Promise<void>): Promise<ProcResult>;
  /** Whether a save/list of the wrapped read tools has completed (for --settle scenes). */
  readDone(): boolean;
  /** Whether a read by this tool (e.g. `iptables-legacy-save`, `nft`) has completed. */
  readBy(tool: string): boolean;
  fired(): boolean;
}

const RESTORES = ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-restore', 'ip6tables-restore'];
const SAVES = ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save', 'iptables-save', 'ip6tables-save'];

/**
 * Wrappers for the transaction tools (`kind` 'iptables': every *-restore;
 * 'nft': `nft -f`). Read tools are wrapped only to report that a read
 * finished. The real binaries are called by absolute path, never through
 * PATH. The legacy toolchain's plain `iptables-restore` points at the
 * legacy binary, so the wrapper resolves the name through the rest of PATH.
 */
export function makeHook(w: World, kind: 'iptables' | 'nft', mode: HookMode): Hook {
  const dir = join(w.lab.tmp, `hook-${kind}-${Math.random().toString(16).slice(2, 8)}`);
  mkdirSync(dir);
  const state = join(dir, 'state');
  mkdirSync(state);
  const fail =
    kind === 'nft'
      ? `echo "Error: Could not process rule: No such file or directory" >&2`
      : `echo "iptables-restore: line 3 failed: No chain/target/match by that name." >&2`;
  const gate = (isTransaction: string): string => `
real=""
IFS=: read -ra dirs <<< "$PATH"
for d in "\${dirs[@]}"; do
  [ "$d" = "${dir}" ] && continue
  if [ -x "$d/$name" ]; then real="$d/$name"; break; fi
done
[ -n "$real" ] || { echo "wrapper: no real $name" >&2; exit 127; }
if ${mode === 'observe' ? 'false' : isTransaction} && mkdir "${state}/fired" 2>/dev/null; then
  for i in $(seq 1 1200); do [ -e "${state}/go" ] && break; sleep 0.05; done
  ${mode === 'fail-once' ? `cat >/dev/null; ${fail}; exit 1` : ':'}
fi
`;
  const write = (name: string, body: string): void => {
    const file = join(dir, name);
    writeFileSync(file, `#!/bin/bash\nname=${name}\n${body}`);
    chmodSync(file, 0o755);
  };
  if (kind === 'iptables') {
    for (const n of RESTORES) write(n, `${gate('true')}exec "$real" "$@"\n`);
  } else {
    write('nft', `${gate('[[ " $* " == *" -f "* ]]')}"$real" "$@"; rc=$?\n[[ " $* " == *" list "* ]] && touch "${state}/read" "${state}/read-nft"\nexit $rc\n`);
  }
  if (kind === 'iptables') for (const n of SAVES) write(n, `${gate('false')}"$real" "$@"; rc=$?\ntouch "${state}/read" "${state}/read-${n}"\nexit $rc\n`);
  return {
    dir,
    fired: () => existsSync(join(state, 'fired')),
    readDone: () => existsSync(join(state, 'read')),
    readBy: (tool) => existsSync(join(state, `read-${tool}`)),
    async around(run, during) {
      let done = false;
      const watched = run.finally(() => {
        done = true;
      });
      while (!done && !existsSync(join(state, 'fired'))) await sleep(20);
      if (!done) {
        try {
          await during();
        } finally {
          writeFileSync(join(state, 'go'), '');
        }
      }
      return watched;
    },
  };
}

/** Wait (bounded) until `cond` holds. */
export async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(20);
  }
}

export type { Netns };
