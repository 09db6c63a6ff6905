import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fail, ok, type Result } from '../cni/errors.js';

/**
 * Where k3s's containerd runs CNI plugins from, and reads their configs.
 * k3s writes containerd's config itself, so that file is the authority:
 * - since k3s PR #10868 (2024-09, backported to 1.28-1.31) its cni section
 *   says bin_dir = /var/lib/rancher/k3s/data/cni (a stable dir; data/current
 *   is re-pointed on every upgrade, so anything put there vanishes);
 * - older k3s said data/current/bin;
 * - with --flannel-backend=none the template writes no cni section at all,
 *   and containerd falls back to /etc/cni/net.d and /opt/cni/bin.
 * Without the file (k3s never started), the data dirs decide.
 *
 * Every path is read under `root`, so tests point it at a throwaway tree
 * and the DaemonSet at the host's root mounted in the pod.
 */

export const K3S_DATA = '/var/lib/rancher/k3s';
export const K3S_CONTAINERD_CONFIG = `${K3S_DATA}/agent/etc/containerd/config.toml`;
export const K3S_CONF_DIR = `${K3S_DATA}/agent/etc/cni/net.d`;
export const K3S_BIN_DIR = `${K3S_DATA}/data/cni`;
export const K3S_OLD_BIN_DIR = `${K3S_DATA}/data/current/bin`;

export type K3sSource =
  /** bin_dir and conf_dir read from k3s's containerd config.toml. */
  | 'containerd-config'
  /** config.toml without a cni section: --flannel-backend=none. */
  | 'flannel-backend-none'
  /** No config.toml yet: the static dir of current k3s exists. */
  | 'data-cni'
  /** No config.toml, no data/cni: k3s from before PR #10868. */
  | 'data-current';

export interface K3sLayout {
  /** Host paths (not under `root`): what containerd on the node uses. */
  readonly binDir: string;
  readonly confDir: string;
  readonly source: K3sSource;
  /** One line for the operator: where the paths came from. */
  readonly why: string;
}

/** The config is a few KB; anything larger (or not a regular file) is not k3s's. */
const MAX_CONFIG = 1 << 20;

async function readSmallFile(path: string): Promise<string | undefined> {
  // lstat + O_NOFOLLOW: a FIFO would block, /dev/zero would never end, a link may point anywhere.
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile() || st.size > MAX_CONFIG) return undefined;
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!fh) return undefined;
  try {
    const buf = Buffer.alloc(MAX_CONFIG);
    const { bytesRead } = await fh.read(buf, 0, MAX_CONFIG, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

const isDir = async (path: string): Promise<boolean> => (await lstat(path).catch(() => undefined))?.isDirectory() ?? false;

/** A TOML basic or literal string, as k3s's template writes them (no escapes in paths). */
const tomlString = String.raw`"((?:[^"\\]|\\.)*)"|'([^']*)'`;

export interface CniSection {
  readonly binDir: string | undefined;
  readonly confDir: string | undefined;
}

/**
 * The cni table of a containerd config: `[plugins."io.containerd.grpc.v1.cri".cni]`
 * (config version 2) or `[plugins.'io.containerd.cri.v1.runtime'.cni]`
 * (version 3, containerd 2), with bin_dir (or the first of bin_dirs) and
 * conf_dir. undefined when there is no such table. Only the shapes k3s's
 * template produces are read; it is not a TOML parser.
 */
export function cniSection(toml: string): CniSection | undefined {
  let inCni = false;
  let found = false;
  let binDir: string | undefined;
  let confDir: string | undefined;
  const str = (m: RegExpExecArray | null, at: number): string | undefined => (m ? (m[at] ?? m[at + 1]) : undefined);
  for (const raw of toml.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inCni = /^\[\s*plugins\s*\.\s*("io\.containerd\.grpc\.v1\.cri"|'io\.containerd\.grpc\.v1\.cri'|cri|"io\.containerd\.cri\.v1\.runtime"|'io\.containerd\.cri\.v1\.runtime')\s*\.\s*cni\s*\]$/.test(line);
      found ||= inCni;
      continue;
    }
    if (!inCni) continue;
    const bin = new RegExp(String.raw`^bin_dir\s*=\s*(?:${tomlString})`).exec(line);
    if (bin) binDir = str(bin, 1);
    const bins = new RegExp(String.raw`^bin_dirs\s*=\s*\[\s*(?:${tomlString})`).exec(line);
    if (bins && binDir === undefined) binDir = str(bins, 1);
    const conf = new RegExp(String.raw`^conf_dir\s*=\s*(?:${tomlString})`).exec(line);
    if (conf) confDir = str(conf, 1);
  }
  return found ? { binDir, confDir } : undefined;
}

/** containerd's own defaults, used when its config names no cni dirs. */
const CONTAINERD_BIN_DIR = '/opt/cni/bin';
const CONTAINERD_CONF_DIR = '/etc/cni/net.d';

/** The k3s layout under `root`, or undefined when this is not a k3s node. */
export async function detectK3s(root: string): Promise<K3sLayout | undefined> {
  if (!(await isDir(join(root, K3S_DATA)))) return undefined;
  const toml = await readSmallFile(join(root, K3S_CONTAINERD_CONFIG));
  if (toml !== undefined) {
    const cni = cniSection(toml);
    if (cni === undefined) {
      return {
        binDir: CONTAINERD_BIN_DIR,
        confDir: CONTAINERD_CONF_DIR,
        source: 'flannel-backend-none',
        why: `${K3S_CONTAINERD_CONFIG} has no cni section (k3s --flannel-backend=none): containerd uses its defaults`,
      };
    }
    return {
      binDir: cni.binDir ?? CONTAINERD_BIN_DIR,
      confDir: cni.confDir ?? CONTAINERD_CONF_DIR,
      source: 'containerd-config',
      why: `bin_dir and conf_dir of ${K3S_CONTAINERD_CONFIG}`,
    };
  }
  if (await isDir(join(root, K3S_BIN_DIR))) {
    return { binDir: K3S_BIN_DIR, confDir: K3S_CONF_DIR, source: 'data-cni', why: `no ${K3S_CONTAINERD_CONFIG} yet; ${K3S_BIN_DIR} exists (k3s with PR #10868)` };
  }
  return {
    binDir: K3S_OLD_BIN_DIR,
    confDir: K3S_CONF_DIR,
    source: 'data-current',
    why: `no ${K3S_CONTAINERD_CONFIG} yet and no ${K3S_BIN_DIR}: k3s from before PR #10868 (data/current is re-pointed on upgrade: run install again after each one)`,
  };
}

/**
 * What install says on k3s when it added the janitor nowhere: stock k3s
 * runs flannel, whose bridge delegate has ipMasq false (flannel does its
 * own masquerading), so bridge has nothing to leak.
 */
export function k3sNothingToDo(layout: K3sLayout): string {
  return (
    `k3s: nothing to do: stock k3s runs flannel, which masquerades itself (its bridge delegate has ipMasq: false), so bridge leaks no masquerade rules.\n` +
    `masq-janitor applies on k3s only to your own bridge or ptp network lists with "ipMasq": true in ${layout.confDir}` +
    `${layout.source === 'flannel-backend-none' ? '' : ' (with --flannel-backend=none: /etc/cni/net.d)'}; install again once one is there.\n`
  );
}

/** The options install and uninstall take for this, as their help shows them. */
export const RUNTIME_HELP = `  --runtime NAME   k3s: take the dirs from k3s's containerd config (found by
                   itself when neither --conf-dir nor --bin-dir nor FILEs are given)
  --root DIR       read the node's paths under DIR (a pod with the host's / at /host)
`;

export interface NodeDirs {
  /** Where to work: under --root. */
  readonly confDir: string;
  readonly binDir: string;
  /** Set when the dirs are k3s's. */
  readonly k3s: K3sLayout | undefined;
  /** What to tell the operator about how the dirs were chosen. */
  readonly note: string | undefined;
}

/**
 * The dirs install and uninstall work on: given ones win; otherwise k3s's
 * when this is a k3s node (or --runtime k3s insists), else the defaults.
 */
export async function nodeDirs(
  v: { readonly 'conf-dir'?: string | undefined; readonly 'bin-dir'?: string | undefined; readonly runtime?: string | undefined; readonly root?: string | undefined },
  hasFiles: boolean,
  defaultConf: string,
  defaultBin: string,
): Promise<Result<NodeDirs, string>> {
  const root = resolve(v.root ?? '/');
  if (v.runtime !== undefined && v.runtime !== 'k3s') return fail(`unknown --runtime ${JSON.stringify(v.runtime)} (did you mean k3s?)`);
  const explicit = v['conf-dir'] !== undefined || v['bin-dir'] !== undefined || hasFiles;
  const layout = v.runtime === 'k3s' || !explicit ? await detectK3s(root) : undefined;
  if (v.runtime === 'k3s' && layout === undefined) return fail(`--runtime k3s, but there is no ${join(root, K3S_DATA)}`);
  const conf = v['conf-dir'] !== undefined ? resolve(v['conf-dir']) : join(root, layout?.confDir ?? defaultConf);
  const bin = v['bin-dir'] !== undefined ? resolve(v['bin-dir']) : join(root, layout?.binDir ?? defaultBin);
  const note = layout ? `k3s: using conf dir ${layout.confDir} and bin dir ${layout.binDir} (${layout.why})\n` : undefined;
  return ok({ confDir: conf, binDir: bin, k3s: layout, note });
}
