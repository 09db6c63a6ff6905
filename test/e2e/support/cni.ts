import type { Conflist, JsonObject, PluginConf } from '../../support/conflist.js';
import { executable } from '../../support/guard.js';
import { nsExec, type Netns } from '../../support/netns.js';
import type { Toolchain } from '../../support/xtables.js';

/**
 * A small libcni (AddNetworkList / DelNetworkList) that runs every plugin
 * inside a throwaway "host" namespace:
 * - each plugin object gets libcni's injected `cniVersion` and `name`;
 * - ADD runs the plugins in order, each given the previous plugin's result
 *   as `prevResult` (the first gets none);
 * - DEL runs them in reverse, each given the final ADD result (libcni's
 *   cache), except for conflists below 0.4.0 or when the cache is gone;
 * - both stop at the first failing plugin and say which one it was.
 */

/** What the runtime passes for one attachment. */
export interface Attachment {
  readonly containerId: string;
  /** CNI_NETNS: a path, or '' as nerdctl/ctr/CRI send on DEL. */
  readonly netns: string;
  readonly ifname: string;
}

/** Where plugins run: the host namespace, its iptables variant and CNI_PATH. */
export interface CniHost {
  readonly ns: Netns;
  readonly toolchain: Toolchain;
  readonly cniPath: string;
}

export type Command = 'ADD' | 'DEL';

export interface PluginCall {
  readonly command: Command;
  readonly plugin: string;
  readonly stdin: string;
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PluginFailure {
  readonly command: Command;
  readonly plugin: string;
  /** Position in the conflist's `plugins`. */
  readonly index: number;
  readonly exitCode: number | undefined;
  /** The CNI error object the plugin printed, if it printed one. */
  readonly error: JsonObject | undefined;
  readonly stderr: string;
}

export interface AddOutcome {
  /** The final result (what libcni would cache), when every plugin succeeded. */
  readonly result: JsonObject | undefined;
  readonly failure: PluginFailure | undefined;
  readonly calls: readonly PluginCall[];
}

export interface DelOutcome {
  readonly failure: PluginFailure | undefined;
  readonly calls: readonly PluginCall[];
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseObject(text: string): JsonObject | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isJsonObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

async function invoke(host: CniHost, command: Command, list: Conflist, index: number, att: Attachment, prevResult: JsonObject | undefined): Promise<PluginCall> {
  const plugin = list.plugins[index] as PluginConf;
  const conf: JsonObject = { ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prevResult ? { prevResult } : {}) };
  const stdin = JSON.stringify(conf);
  const binary = resolvePlugin(host.cniPath, plugin.type);
  const r = await nsExec(host.ns, binary, [], {
    input: stdin,
    env: {
      PATH: host.toolchain.path,
      CNI_COMMAND: command,
      CNI_CONTAINERID: att.containerId,
      CNI_NETNS: att.netns,
      CNI_IFNAME: att.ifname,
      CNI_ARGS: '',
      CNI_PATH: host.cniPath,
    },
  });
  return { command, plugin: plugin.type, stdin, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** libcni's FindInPath: the first `<dir>/<type>` on CNI_PATH. */
function resolvePlugin(cniPath: string, type: string): string {
  return `${cniPathDirs(cniPath).find((d) => executable(`${d}/${type}`)) ?? '/nonexistent'}/${type}`;
}

const cniPathDirs = (p: string): string[] => p.split(':').filter((d) => d !== '');

function failureOf(call: PluginCall, index: number): PluginFailure {
  return { command: call.command, plugin: call.plugin, index, exitCode: call.exitCode, error: parseObject(call.stdout), stderr: call.stderr };
}

export async function addNetworkList(host: CniHost, list: Conflist, att: Attachment): Promise<AddOutcome> {
  const calls: PluginCall[] = [];
  let prev: JsonObject | undefined;
  for (let i = 0; i < list.plugins.length; i++) {
    const call = await invoke(host, 'ADD', list, i, att, prev);
    calls.push(call);
    const out = parseObject(call.stdout);
    if (call.exitCode !== 0 || out === undefined) return { result: undefined, failure: failureOf(call, i), calls };
    prev = out;
  }
  return { result: prev, failure: undefined, calls };
}

export interface DelOptions {
  /** The final ADD result, as libcni's cache holds it; undefined when the cache is gone. */
  readonly cachedResult: JsonObject | undefined;
}

export async function delNetworkList(host: CniHost, list: Conflist, att: Attachment, opts: DelOptions): Promise<DelOutcome> {
  const prevResult = versionAtLeast(list.cniVersion, '0.4.0') ? opts.cachedResult : undefined;
  const calls: PluginCall[] = [];
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const call = await invoke(host, 'DEL', list, i, att, prevResult);
    calls.push(call);
    if (call.exitCode !== 0) return { failure: failureOf(call, i), calls };
  }
  return { failure: undefined, calls };
}

/** Human-readable account of a list operation, for assertion messages. */
export function explain(outcome: { readonly calls: readonly PluginCall[] }): string {
  return outcome.calls
    .map((c) => `${c.command} ${c.plugin} -> exit ${c.exitCode ?? '?'}\n  stdin: ${c.stdin}\n  stdout: ${c.stdout.trim()}\n  stderr: ${c.stderr.trim()}`)
    .join('\n');
}
