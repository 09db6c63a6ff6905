import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod/mini';
import '../cni/zod.js';
import { canonicalIp } from '../address.js';

/**
 * What the host still records as attached: libcni's result cache and
 * host-local's reservations, per interface, with their addresses where the
 * record says. Any doubt (an entry that cannot be read as what it should
 * be) keeps every attachment it could stand for.
 *
 * Entries are opened without following links and without blocking, only
 * regular files are read, at most MAX_ENTRY bytes, and their contents are
 * never echoed (a 0600 file in the wrong place may be a secret). Reading is
 * linear in the number of entries; every lookup is O(1) (prefix lookups,
 * for comments nft cut short, O(log n)).
 */

export interface RecordedInterface {
  readonly ifname: string | undefined;
  /** Canonical addresses; undefined when the record does not say. */
  readonly ips: readonly string[] | undefined;
}

export interface Records {
  /** Interfaces recorded for this container on this network ([] when none). */
  interfaces(network: string, containerId: string): readonly RecordedInterface[];
  /** Is this container on this network recorded at all, or named by an entry we could not read? */
  has(network: string, containerId: string): boolean;
  /** An unreadable entry may stand for this container on this network. */
  doubtful(network: string, containerId: string): boolean;
  /** For nft comments cut at 128 characters: is any recorded (or doubtful) ID of this network starting so? */
  hasPrefix(network: string, containerIdPrefix: string): boolean;
  /** Networks any record names. */
  readonly networks: ReadonlySet<string>;
  /** Every recorded (containerId, ifname) of a network. */
  pairs(network: string): Iterable<readonly [string, string | undefined]>;
  /** `<path>: <why>` for entries kept as doubtful; never their contents. */
  readonly problems: readonly string[];
  readonly counts: { readonly cache: number; readonly reservations: number };
}

/** A cache entry is a few KB; anything far larger is not one (or is /dev/zero behind a link). */
export const MAX_ENTRY = 1024 * 1024;

export type Entry = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly why: string };

/** Read one state-dir entry the safe way (see above); libuv adds O_CLOEXEC to every open. */
export function readEntry(path: string, max = MAX_ENTRY): Entry {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, why: code === 'ELOOP' ? 'a symbolic link' : code ?? 'cannot open' };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, why: 'not a regular file' };
    if (st.size > max) return { ok: false, why: `larger than ${max} bytes` };
    const buf = Buffer.allocUnsafe(Math.min(max, st.size) + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > max) return { ok: false, why: `larger than ${max} bytes` };
      if (n === buf.length) break;
    }
    return { ok: true, text: buf.subarray(0, n).toString('utf8') };
  } catch (e) {
    return { ok: false, why: (e as NodeJS.ErrnoException).code ?? 'unreadable' };
  } finally {
    closeSync(fd);
  }
}

const CacheFile = z.looseObject({
  kind: z.literal('cniCacheV1'),
  containerId: z.string(),
  networkName: z.string(),
  ifName: z.optional(z.string()),
  result: z.optional(z.looseObject({ ips: z.optional(z.array(z.looseObject({ address: z.string() }))) })),
});

function listDir(dir: string): { names: string[]; why?: string } {
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory()) return { names: [], why: 'not a directory' };
    return { names: readdirSync(dir) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { names: [] };
    return { names: [], why: (e as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
}

/** A state dir holding neither results/ nor networks/ is a wrong path, not a host where nothing runs. */
export function looksLikeStateDir(stateDir: string): boolean {
  return ['results', 'networks'].some((d) => {
    try {
      return lstatSync(join(stateDir, d)).isDirectory();
    } catch {
      return false;
    }
  });
}

const pairKey = (network: string, containerId: string): string => `${network}\u0000${containerId}`;

function ipsOf(result: z.infer<typeof CacheFile>['result']): string[] | undefined {
  const list = result?.ips;
  if (list === undefined) return undefined;
  const out: string[] = [];
  for (const e of list) {
    const ip = canonicalIp(e.address.split('/')[0] ?? '');
    if (ip === undefined) return undefined;
    out.push(ip);
  }
  return out;
}

/** First index in sorted `xs` whose value is >= `s`. */
function lowerBound(xs: readonly string[], s: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((xs[mid] as string) < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function anyStartsWith(sorted: readonly string[], prefix: string): boolean {
  const at = sorted[lowerBound(sorted, prefix)];
  return at !== undefined && at.startsWith(prefix);
}

export interface ReadOptions {
  /** Skip host-local's reservations (DEL looks only at the cache entries it needs). */
  readonly reservations?: boolean;
}

export function readRecords(stateDir: string, opts: ReadOptions = {}): Records {
  const byPair = new Map<string, RecordedInterface[]>();
  const networks = new Set<string>();
  const ids = new Map<string, string[]>();
  // Cache file names `<net>-<id>-<ifname>` are ambiguous: an unreadable one stands for every split of its name.
  const doubtPrefixes = new Set<string>();
  const doubtNames: string[] = [];
  const doubtNetworks = new Set<string>();
  const problems: string[] = [];
  const record = (network: string, containerId: string, iface: RecordedInterface): void => {
    const k = pairKey(network, containerId);
    const list = byPair.get(k);
    if (list) list.push(iface);
    else {
      byPair.set(k, [iface]);
      const l = ids.get(network);
      if (l) l.push(containerId);
      else ids.set(network, [containerId]);
    }
    networks.add(network);
  };
  const doubt = (name: string, where: string, why: string): void => {
    problems.push(`${where}: ${why}`);
    doubtNames.push(name);
    for (let i = name.indexOf('-'); i >= 0; i = name.indexOf('-', i + 1)) doubtPrefixes.add(name.slice(0, i + 1));
  };

  let cache = 0;
  const resultsDir = join(stateDir, 'results');
  const results = listDir(resultsDir);
  if (results.why) problems.push(`${resultsDir}: ${results.why}`);
  for (const name of results.names) {
    const file = join(resultsDir, name);
    const entry = readEntry(file);
    if (!entry.ok) {
      doubt(name, file, entry.why);
      continue;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(entry.text);
    } catch {
      doubt(name, file, 'not JSON');
      continue;
    }
    const parsed = CacheFile.safeParse(doc);
    if (!parsed.success) {
      doubt(name, file, 'not a cniCacheV1 entry');
      continue;
    }
    record(parsed.data.networkName, parsed.data.containerId, { ifname: parsed.data.ifName, ips: ipsOf(parsed.data.result) });
    cache++;
  }

  let reservations = 0;
  const networksDir = join(stateDir, 'networks');
  const nets = opts.reservations === false ? { names: [] } : listDir(networksDir);
  if (nets.why) problems.push(`${networksDir}: ${nets.why}`);
  for (const network of nets.names) {
    const dir = join(networksDir, network);
    const listing = listDir(dir);
    if (listing.why) {
      // We cannot tell whose addresses this network holds: keep all of it.
      problems.push(`${dir}: ${listing.why}`);
      doubtNetworks.add(network);
      continue;
    }
    for (const name of listing.names) {
      const ip = canonicalIp(name);
      if (ip === undefined) continue; // lock, last_reserved_ip.N
      const file = join(dir, name);
      const entry = readEntry(file, 4096);
      const [id = '', ifname] = entry.ok ? entry.text.split(/\r?\n/).map((s) => s.trim()) : [];
      if (!entry.ok || id === '') {
        problems.push(`${file}: ${entry.ok ? 'empty reservation' : entry.why}`);
        doubtNetworks.add(network);
        continue;
      }
      record(network, id, { ifname: ifname === '' ? undefined : ifname, ips: [ip] });
      reservations++;
    }
  }

  const sortedDoubts = doubtNames.sort();
  const sortedIds = new Map([...ids].map(([n, l]) => [n, l.sort()]));
  const doubtful = (network: string, containerId: string): boolean => doubtNetworks.has(network) || doubtPrefixes.has(`${network}-${containerId}-`);
  return {
    interfaces: (network, containerId) => byPair.get(pairKey(network, containerId)) ?? [],
    has: (network, containerId) => byPair.has(pairKey(network, containerId)) || doubtful(network, containerId),
    doubtful,
    hasPrefix: (network, prefix) => doubtNetworks.has(network) || anyStartsWith(sortedIds.get(network) ?? [], prefix) || anyStartsWith(sortedDoubts, `${network}-${prefix}`),
    networks,
    *pairs(network) {
      for (const id of ids.get(network) ?? []) for (const i of byPair.get(pairKey(network, id)) ?? []) yield [id, i.ifname] as const;
    },
    problems,
    counts: { cache, reservations },
  };
}

/**
 * DEL's look at libcni's cache: only the entries named `<net>-<id>-*`,
 * checked against what they say inside. An entry we cannot read counts as a
 * live interface of unknown addresses.
 */
export function cachedInterfaces(stateDir: string, network: string, containerId: string): RecordedInterface[] {
  const dir = join(stateDir, 'results');
  const prefix = `${network}-${containerId}-`;
  const out: RecordedInterface[] = [];
  for (const name of listDir(dir).names) {
    if (!name.startsWith(prefix)) continue;
    const entry = readEntry(join(dir, name));
    let doc: unknown;
    try {
      doc = entry.ok ? JSON.parse(entry.text) : undefined;
    } catch {
      doc = undefined;
    }
    const parsed = CacheFile.safeParse(doc);
    if (!parsed.success) {
      out.push({ ifname: name.slice(prefix.length), ips: undefined });
      continue;
    }
    if (parsed.data.networkName !== network || parsed.data.containerId !== containerId) continue;
    out.push({ ifname: parsed.data.ifName ?? name.slice(prefix.length), ips: ipsOf(parsed.data.result) });
  }
  return out;
}
