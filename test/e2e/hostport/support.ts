import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Conflist, JsonObject, PluginConf } from '../../support/conflist.js';
import { executable } from '../../support/guard.js';
import { IP, nsExec, removeNetns } from '../../support/netns.js';
import { NODE, SYSTEM_PATH } from '../../support/proc.js';
import { restore, type Family } from '../../support/xtables.js';
import type { AddOutcome, DelOutcome, PluginCall } from '../support/cni.js';
import { explain } from '../support/cni.js';
import { IFNAME, type Container, type Lab } from '../support/lab.js';

/**
 * Hostport (portmap) helpers for the e2e suites. Names are computed here,
 * independently of src/, from what upstream portmap does:
 * `CNI-DN-` + sha512(network + containerID) hex, 28 characters in all.
 */

export interface PortMapping {
  readonly hostPort: number;
  readonly containerPort: number;
  readonly protocol: 'tcp' | 'udp';
  readonly hostIP?: string;
}

export const dnChain = (network: string, containerId: string): string => 'CNI-DN-' + createHash('sha512').update(network + containerId).digest('hex').slice(0, 21);

/** portmap's entry rule comment as iptables-save prints it. */
export const savedDnatComment = (network: string, containerId: string): string => `--comment "dnat name: \\"${network}\\" id: \\"${containerId}\\""`;

const PORTMAP: PluginConf = { type: 'portmap', capabilities: { portMappings: true }, snat: true };

/** The lab's bridge list with portmap between bridge and the janitor (nerdctl's order: bridge, portmap, ..., masq-janitor last). */
export function withPortmap(list: Conflist): Conflist {
  const [main, ...rest] = list.plugins;
  if (!main) throw new Error('empty conflist');
  return { ...list, plugins: [main, PORTMAP, ...rest] };
}

/**
 * A second network in the same host namespace (its own name, bridge and
 * subnet), bridge + portmap (+ the janitor when `janitor`), for "the same
 * host port on another network".
 */
export function secondNetwork(lab: Lab, opts: { janitor: boolean; singleAddress?: boolean; octet: number }): Conflist {
  const base = `10.${opts.octet}.7`;
  const range: JsonObject = opts.singleAddress
    ? { subnet: `${base}.0/24`, rangeStart: `${base}.2`, rangeEnd: `${base}.2`, gateway: `${base}.1` }
    : { subnet: `${base}.0/24`, gateway: `${base}.1` };
  const plugins: PluginConf[] = [
    { type: 'bridge', bridge: `${lab.bridge}b`, isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[range]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(lab.tmp, 'ipam-b') } },
    PORTMAP,
  ];
  if (opts.janitor) plugins.push({ type: 'masq-janitor', logFile: lab.janitorLog, logLevel: 'info' });
  return { cniVersion: '1.0.0', name: `${lab.network}-b`, plugins };
}

/**
 * libcni's AddNetworkList / DelNetworkList with capability args: a plugin
 * whose `capabilities` names `portMappings` gets `runtimeConfig.portMappings`
 * (only when the runtime passes some, as libcni does). Everything else as in
 * ../support/cni.ts.
 */
async function invoke(lab: Lab, command: 'ADD' | 'DEL', list: Conflist, index: number, c: { id: string; netns: string }, prev: JsonObject | undefined, mappings: readonly PortMapping[] | undefined): Promise<PluginCall> {
  const plugin = list.plugins[index] as PluginConf;
  const caps = plugin.capabilities as JsonObject | undefined;
  const runtimeConfig = caps?.portMappings === true && mappings !== undefined ? { runtimeConfig: { portMappings: mappings as unknown as JsonObject[] } } : {};
  const conf = { ...plugin, cniVersion: list.cniVersion, name: list.name, ...runtimeConfig, ...(prev ? { prevResult: prev } : {}) };
  const stdin = JSON.stringify(conf);
  const dir = lab.cni.cniPath.split(':').find((d) => d !== '' && executable(`${d}/${plugin.type}`)) ?? '/nonexistent';
  const r = await nsExec(lab.host, `${dir}/${plugin.type}`, [], {
    input: stdin,
    env: { PATH: lab.toolchain.path, CNI_COMMAND: command, CNI_CONTAINERID: c.id, CNI_NETNS: c.netns, CNI_IFNAME: IFNAME, CNI_ARGS: '', CNI_PATH: lab.cni.cniPath },
  });
  return { command, plugin: plugin.type, stdin, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

function parse(text: string): JsonObject | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}

const failure = (call: PluginCall, index: number): NonNullable<AddOutcome['failure']> => ({
  command: call.command,
  plugin: call.plugin,
  index,
  exitCode: call.exitCode,
  error: parse(call.stdout),
  stderr: call.stderr,
});

/** ADD through the whole list with these port mappings; throws unless every plugin succeeds. */
export async function addWithPorts(lab: Lab, list: Conflist, c: Container, mappings: readonly PortMapping[] | undefined): Promise<JsonObject> {
  const calls: PluginCall[] = [];
  let prev: JsonObject | undefined;
  for (let i = 0; i < list.plugins.length; i++) {
    const call = await invoke(lab, 'ADD', list, i, { id: c.id, netns: c.ns.path }, prev, mappings);
    calls.push(call);
    const out = parse(call.stdout);
    if (call.exitCode !== 0 || !out) throw new Error(`ADD failed at ${call.plugin}:\n${explain({ calls })}`);
    prev = out;
  }
  return prev as JsonObject;
}

/** How the container's namespace looks when the runtime sends DEL. */
export type HostportDelMode = 'empty' | 'deleted' | 'alive';
export const HOSTPORT_DEL_MODES: readonly HostportDelMode[] = ['empty', 'deleted', 'alive'];

/**
 * DEL in reverse order with the cached result, passing `mappings` (undefined:
 * the runtime passes no portMappings, as after a kill, a failed start or a
 * restart), after putting the netns in `mode`.
 */
export async function delWithPorts(lab: Lab, list: Conflist, c: Container, mode: HostportDelMode, result: JsonObject | undefined, mappings: readonly PortMapping[] | undefined): Promise<DelOutcome> {
  if (mode !== 'alive') await removeNetns(c.ns);
  const netns = mode === 'empty' ? '' : c.ns.path;
  const calls: PluginCall[] = [];
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const call = await invoke(lab, 'DEL', list, i, { id: c.id, netns }, result, mappings);
    calls.push(call);
    if (call.exitCode !== 0) return { failure: failure(call, i), calls };
  }
  return { failure: undefined, calls };
}

/** What portmap leaves for one attachment in one family's save text. */
export interface DnatState {
  readonly chainDeclared: boolean;
  /** `-A CNI-HOSTPORT-DNAT ... -j CNI-DN-<hash>` lines carrying its comment. */
  readonly entries: readonly string[];
  readonly chainRules: readonly string[];
}

export function dnatState(saveText: string, network: string, containerId: string): DnatState {
  const chain = dnChain(network, containerId);
  const lines = saveText.split('\n');
  return {
    chainDeclared: lines.some((l) => l.startsWith(`:${chain} `)),
    entries: lines.filter((l) => l.startsWith('-A CNI-HOSTPORT-DNAT ') && l.includes(savedDnatComment(network, containerId)) && l.endsWith(` -j ${chain}`)),
    chainRules: lines.filter((l) => l.startsWith(`-A ${chain} `)),
  };
}

export const NO_DNAT: DnatState = { chainDeclared: false, entries: [], chainRules: [] };

/**
 * Foreign DNAT state a real host has next to portmap's: a Docker-style
 * published port, a user's own rule in CNI-HOSTPORT-DNAT (no comment), and a
 * rule whose comment imitates portmap's but names another chain. Call it
 * before any ADD: a restore that declares a chain flushes it, even with
 * --noflush, so it declares only chains that are new or still empty.
 */
export async function installForeignDnat(lab: Lab, families: readonly Family[]): Promise<void> {
  for (const family of families) {
    const v4 = family === 4;
    const text = [
      '*nat',
      ':DOCKER-PUBLISH - [0:0]',
      ':USER-DNAT - [0:0]',
      ':CNI-HOSTPORT-DNAT - [0:0]',
      '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-PUBLISH',
      `-A DOCKER-PUBLISH ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination ${v4 ? '172.17.0.2:80' : '[fd17::2]:80'}`,
      '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
      '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
      '-A CNI-HOSTPORT-DNAT -p tcp -m tcp --dport 2222 -j USER-DNAT',
      `-A USER-DNAT -p tcp -j DNAT --to-destination ${v4 ? '10.251.0.9:22' : '[fd77:251::9]:22'}`,
      `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"${lab.network}\\" id: \\"imposter\\"" -m multiport --dports 2223 -j USER-DNAT`,
      'COMMIT',
      '',
    ].join('\n');
    await restore(lab.host, lab.toolchain, family, text);
  }
}

/**
 * A tiny TCP echo server inside `ns` answering every connection with
 * `reply`, exiting by itself after `lifetimeMs` (and killed by `stop`).
 */
export class EchoServer {
  private constructor(private readonly child: ChildProcess) {}

  static async start(nsName: string, port: number, reply: string, lifetimeMs = 90_000): Promise<EchoServer> {
    const code = `const s=require('net').createServer(c=>c.end(${JSON.stringify(reply)})).listen(${port},'0.0.0.0',()=>console.log('up'));setTimeout(()=>process.exit(0),${lifetimeMs}).unref();process.on('SIGTERM',()=>process.exit(0));`;
    const child = spawn(IP, ['netns', 'exec', nsName, NODE, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: SYSTEM_PATH } });
    const [chunk] = (await Promise.race([once(child.stdout as NodeJS.ReadableStream, 'data'), once(child, 'exit').then(() => [undefined])])) as [Buffer | undefined];
    if (!chunk?.toString().includes('up')) throw new Error(`echo server in ${nsName} did not start`);
    return new EchoServer(child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    await exited;
  }
}

/**
 * Connect from the lab's host namespace to `host:port` and return what the
 * server sent, or `ERR:<code>` (refused, unreachable, timed out) within
 * `timeoutMs`.
 */
export async function connectFromHost(lab: Lab, host: string, port: number, timeoutMs = 3000): Promise<string> {
  const code = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d='';s.setTimeout(${timeoutMs},()=>{console.log('ERR:TIMEOUT');process.exit(0)});s.on('data',b=>d+=b);s.on('end',()=>{console.log(d);process.exit(0)});s.on('error',e=>{console.log('ERR:'+e.code);process.exit(0)});`;
  const r = await nsExec(lab.host, NODE, ['-e', code], { timeoutMs: timeoutMs + 5000 });
  return r.stdout.trim();
}
