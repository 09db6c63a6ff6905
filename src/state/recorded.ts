import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as z from 'zod/mini';
import '../cni/zod.js';

/**
 * What the host still records as attached: libcni's result cache and
 * host-local's reservations. Sweep removes only what neither knows. Any
 * doubt (a file it cannot read or parse) keeps the attachment.
 */

export interface Recorded {
  /** Is (network, containerId) recorded, for any interface? */
  has(network: string, containerId: string): boolean;
  /** For nft comments cut at 128 characters: is any recorded ID of this network starting so? */
  hasPrefix(network: string, containerIdPrefix: string): boolean;
  /** Files that could not be read as what they should be; they keep what they may name. */
  readonly doubtful: readonly string[];
  readonly counts: { readonly cache: number; readonly reservations: number };
}

const CacheFile = z.looseObject({ kind: z.literal('cniCacheV1'), containerId: z.string(), networkName: z.string(), ifName: z.optional(z.string()) });

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** A state dir holding neither results/ nor networks/ is a wrong path, not a host where nothing runs. */
export function looksLikeStateDir(stateDir: string): boolean {
  return ['results', 'networks'].some((d) => {
    try {
      return statSync(join(stateDir, d)).isDirectory();
    } catch {
      return false;
    }
  });
}

export function readRecorded(stateDir: string): Recorded {
  const pairs = new Set<string>();
  const ids = new Map<string, string[]>();
  const doubtfulNames: string[] = [];
  const doubtful: string[] = [];
  const add = (network: string, containerId: string): void => {
    pairs.add(`${network}\u0000${containerId}`);
    ids.set(network, [...(ids.get(network) ?? []), containerId]);
  };

  let cache = 0;
  const resultsDir = join(stateDir, 'results');
  for (const name of listDir(resultsDir)) {
    const file = join(resultsDir, name);
    try {
      const parsed = CacheFile.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      if (!parsed.success) throw new Error('not a cniCacheV1 entry');
      add(parsed.data.networkName, parsed.data.containerId);
      cache++;
    } catch (e) {
      // Named <net>-<cid>-<ifname>: the split is ambiguous, so the name keeps every attachment it could stand for.
      doubtfulNames.push(name);
      doubtful.push(`${file}: ${(e as Error).message}`);
    }
  }

  let reservations = 0;
  const networksDir = join(stateDir, 'networks');
  for (const network of listDir(networksDir)) {
    const dir = join(networksDir, network);
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch (e) {
      doubtful.push(`${dir}: ${(e as Error).message}`);
      doubtfulNames.push(`${network}-`);
      continue;
    }
    for (const name of listDir(dir)) {
      if (isIP(name) === 0) continue; // lock, last_reserved_ip.N
      try {
        const id = readFileSync(join(dir, name), 'utf8').split('\n')[0]?.trim() ?? '';
        if (id === '') throw new Error('empty reservation');
        add(network, id);
        reservations++;
      } catch (e) {
        doubtful.push(`${join(dir, name)}: ${(e as Error).message}`);
        doubtfulNames.push(`${network}-`); // keep the whole network: we cannot tell whose IP this is
      }
    }
  }

  return {
    has: (network, containerId) => pairs.has(`${network}\u0000${containerId}`) || doubtfulNames.some((n) => n.startsWith(`${network}-${containerId}-`) || n === `${network}-`),
    hasPrefix: (network, prefix) => (ids.get(network) ?? []).some((id) => id.startsWith(prefix)) || doubtfulNames.some((n) => n.startsWith(`${network}-${prefix}`) || n === `${network}-`),
    doubtful,
    counts: { cache, reservations },
  };
}
