import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Conflist, JsonObject, PluginConf } from '../../support/conflist.js';
import { REPO_ROOT, UPSTREAM_CNI_DIR } from '../../support/guard.js';
import { createNetns, nsExec, nsMust, randomHex, removeNetns, type Netns } from '../../support/netns.js';
import { iptablesVersion, legacyNatLoaded, natSnapshot, toolchain, type Family, type Tables, type Toolchain, type Variant } from '../../support/xtables.js';
import { addNetworkList, delNetworkList, explain, type Attachment, type CniHost, type DelOutcome } from './cni.js';
import { installForeignRules } from './foreign.js';
import { iptables, masqChain } from './iptables.js';

/**
 * One test's world: a throwaway "host" namespace holding the bridge and the
 * nat tables (pre-filled with foreign rules), a unique network name, bridge
 * name and subnets, a host-local data dir and the containers' namespaces.
 * `withLab` always tears all of it down, also when the test fails.
 */

/**
 * The directory CNI_PATH must include for the plugin under test.
 * MJT_PLUGIN_DIR points the suite at another build (a standalone binary, a
 * deliberately broken plugin to prove the suite catches it).
 */
export const JANITOR_DIR = process.env.MJT_PLUGIN_DIR ? resolve(process.env.MJT_PLUGIN_DIR) : join(REPO_ROOT, 'dist');

export const IFNAME = 'eth0';

/** How the runtime calls DEL, and what has happened to the container's namespace by then. */
export type DelMode =
  /** CNI_NETNS="" (nerdctl's/ctr's onPostStop, CRI after a reboot); the task's netns is gone. */
  | 'empty'
  /** The netns was deleted; the runtime still passes its (now missing) path. */
  | 'deleted'
  /** The netns and the container's interface are alive: bridge tears down itself. */
  | 'alive'
  /** The netns is alive but the container's interface was already deleted. */
  | 'iface-gone';

export const DEL_MODES: readonly DelMode[] = ['empty', 'deleted', 'alive', 'iface-gone'];

export interface Container {
  readonly id: string;
  readonly ns: Netns;
}

export interface LabOptions {
  /**
   * A host that never used IPv6 NAT: no IPv6 foreign rules, and nothing (not
   * even a save, which instantiates legacy tables) touches its ip6 nat table
   * before the test looks. `pristine.v6` is then ''.
   */
  readonly ipv6NatUntouched?: boolean;
}

/** Which nat tables exist in a namespace, read without instantiating any. */
export interface NatTables {
  /** From /proc/net/ip{,6}_tables_names. */
  readonly legacy4: boolean;
  readonly legacy6: boolean;
  /** `nft list tables`, e.g. ["table ip nat", "table ip6 nat"]. */
  readonly nft: readonly string[];
}

export interface NetworkOptions {
  readonly cniVersion?: string;
  /** Append masq-janitor (default true). */
  readonly janitor?: boolean;
  readonly dualStack?: boolean;
  /** host-local range of exactly one address (.2), so a released IP is handed out again. */
  readonly singleAddress?: boolean;
}

export class Lab {
  readonly host: Netns;
  readonly toolchain: Toolchain;
  readonly cni: CniHost;
  /** Network (conflist) name: what upstream hashes into the chain name. */
  readonly network: string;
  readonly bridge: string;
  readonly subnet4: string;
  readonly subnet6: string;
  readonly tmp: string;
  readonly janitorLog: string;
  /** Nat tables right after the foreign rules went in, before any container. */
  readonly pristine: Tables;
  /** A container ID that another network's (foreign) chain also uses. */
  readonly sharedId: string;
  private readonly namespaces: Netns[];

  private constructor(host: Netns, tc: Toolchain, tmp: string, sharedId: string, pristine: Tables) {
    const tag = randomHex(4);
    this.host = host;
    this.toolchain = tc;
    this.cni = { ns: host, toolchain: tc, cniPath: `${UPSTREAM_CNI_DIR}:${JANITOR_DIR}` };
    this.network = `mjt-net-${tag}`;
    this.bridge = `mj${tag}`;
    this.subnet4 = `10.${randomInt(1, 250)}.0.0/24`;
    this.subnet6 = `fd00:${randomInt(1, 0xffff).toString(16)}::/64`;
    this.tmp = tmp;
    this.janitorLog = join(tmp, 'janitor.log');
    this.pristine = pristine;
    this.sharedId = sharedId;
    this.namespaces = [host];
  }

  static async open(variant: Variant, opts: LabOptions = {}): Promise<Lab> {
    const tc = toolchain(variant);
    const tmp = mkdtempSync(join(tmpdir(), 'mjt-lab-'));
    let host: Netns | undefined;
    try {
      host = await createNetns('mjt-host');
      const version = await iptablesVersion(host, tc);
      const expected = variant === 'nft' ? '(nf_tables)' : '(legacy)';
      if (!version.includes(expected)) throw new Error(`toolchain ${variant} reaches "${version}", expected ${expected}`);
      const sharedId = newContainerId();
      const families: readonly Family[] = opts.ipv6NatUntouched ? [4] : [4, 6];
      await installForeignRules(host, tc, sharedId, families);
      return new Lab(host, tc, tmp, sharedId, await natSnapshot(host, tc, families));
    } catch (e) {
      if (host) await removeNetns(host);
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        await removeNetns(ns);
      } catch (e) {
        errors.push(e);
      }
    }
    rmSync(this.tmp, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, 'lab teardown failed');
  }

  /** A new container: an ID in nerdctl's `<namespace>-<id>` form and its own netns. */
  async container(id: string = newContainerId()): Promise<Container> {
    const ns = await createNetns('mjt-ctr');
    this.namespaces.push(ns);
    return { id, ns };
  }

  private ipam(opts: NetworkOptions): JsonObject {
    const [net4] = this.subnet4.split('/') as [string];
    const base4 = net4.replace(/\.0$/, '');
    const v4: JsonObject = opts.singleAddress
      ? { subnet: this.subnet4, rangeStart: `${base4}.2`, rangeEnd: `${base4}.2`, gateway: `${base4}.1` }
      : { subnet: this.subnet4, gateway: `${base4}.1` };
    const ranges: JsonObject[][] = [[v4]];
    const routes: JsonObject[] = [{ dst: '0.0.0.0/0' }];
    if (opts.dualStack) {
      ranges.push([{ subnet: this.subnet6 }]);
      routes.push({ dst: '::/0' });
    }
    return { type: 'host-local', ranges, routes, dataDir: join(this.tmp, 'ipam') };
  }

  private janitorPlugin(): PluginConf {
    return { type: 'masq-janitor', logFile: this.janitorLog, logLevel: 'info' };
  }

  /** nerdctl's default network shape: bridge (isGateway, ipMasq, host-local) + masq-janitor. */
  bridgeList(opts: NetworkOptions = {}): Conflist {
    const bridge: PluginConf = { type: 'bridge', bridge: this.bridge, isGateway: true, ipMasq: true, hairpinMode: true, ipam: this.ipam(opts) };
    return this.list([bridge], opts);
  }

  ptpList(opts: NetworkOptions = {}): Conflist {
    const ptp: PluginConf = { type: 'ptp', ipMasq: true, ipam: this.ipam(opts) };
    return this.list([ptp], opts);
  }

  /** Just masq-janitor under this network's name (an operator's one-off DEL for a leaked identity). */
  janitorOnlyList(cniVersion = '1.0.0'): Conflist {
    return { cniVersion, name: this.network, plugins: [this.janitorPlugin()] };
  }

  private list(main: PluginConf[], opts: NetworkOptions): Conflist {
    const plugins = opts.janitor === false ? main : [...main, this.janitorPlugin()];
    return { cniVersion: opts.cniVersion ?? '1.0.0', name: this.network, plugins };
  }

  /** ADD through the whole list; throws (with every plugin's output) unless all succeed. */
  async add(list: Conflist, c: Container): Promise<JsonObject> {
    const out = await addNetworkList(this.cni, list, { containerId: c.id, netns: c.ns.path, ifname: IFNAME });
    if (out.failure || !out.result) throw new Error(`ADD failed at ${out.failure?.plugin ?? '?'}:\n${explain(out)}`);
    return out.result;
  }

  /**
   * Put the container's namespace in the state `mode` describes, then DEL.
   * `cachedResult` undefined means libcni's result cache is gone.
   */
  async del(list: Conflist, c: Container, mode: DelMode, cachedResult: JsonObject | undefined): Promise<DelOutcome> {
    const netns = await this.prepareDel(c, mode);
    return this.delRaw(list, { containerId: c.id, netns, ifname: IFNAME }, cachedResult);
  }

  delRaw(list: Conflist, att: Attachment, cachedResult: JsonObject | undefined): Promise<DelOutcome> {
    return delNetworkList(this.cni, list, att, { cachedResult });
  }

  private async prepareDel(c: Container, mode: DelMode): Promise<string> {
    switch (mode) {
      case 'empty':
        await removeNetns(c.ns);
        return '';
      case 'deleted':
        await removeNetns(c.ns);
        return c.ns.path;
      case 'alive':
        return c.ns.path;
      case 'iface-gone': {
        const r = await nsExec(c.ns, 'ip', ['link', 'show', IFNAME]);
        if (r.exitCode === 0) await nsMust(c.ns, 'ip', ['link', 'del', IFNAME]);
        return c.ns.path;
      }
    }
  }

  /** Pass [4] to leave the ip6 nat table alone (see LabOptions.ipv6NatUntouched). */
  snapshot(families?: readonly Family[]): Promise<Tables> {
    return natSnapshot(this.host, this.toolchain, families);
  }

  /** Which nat tables exist in the host namespace, without instantiating any. */
  async natTables(): Promise<NatTables> {
    const nft = await nsMust(this.host, 'nft', ['list', 'tables']);
    return { legacy4: await legacyNatLoaded(this.host, 4), legacy6: await legacyNatLoaded(this.host, 6), nft: nft.split('\n').filter((l) => l.trim() !== '') };
  }

  iptables(family: Family, args: readonly string[]): Promise<string> {
    return iptables(this.host, this.toolchain, family, args);
  }

  chain(containerId: string): string {
    return masqChain(this.network, containerId);
  }

  /** Lines masq-janitor logged at level warn (40) or worse. */
  janitorProblems(): string[] {
    let text: string;
    try {
      text = readFileSync(this.janitorLog, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => {
        const level = /"level":(\d+)/.exec(l)?.[1];
        return level === undefined || Number(level) >= 40;
      });
  }
}

/** Run `fn` in a fresh lab and always tear the lab down. */
export async function withLab(variant: Variant, fn: (lab: Lab) => Promise<void>, opts: LabOptions = {}): Promise<void> {
  const lab = await Lab.open(variant, opts);
  try {
    await fn(lab);
  } catch (e) {
    // The test's own failure is the one to report; teardown still runs.
    await lab.close().catch(() => undefined);
    throw e;
  }
  await lab.close();
}

export function newContainerId(): string {
  return `default-${randomHex(16)}`;
}
