import * as z from 'zod/mini';
import '../../cni/zod.js';
import type { ExecResult, Runner } from '../exec.js';

/**
 * DEL looks at three nft tables (the masquerade backend's, and portmap's
 * `ip`/`ip6 cni_hostport`), and most hosts have none of them. One
 * `nft -j list tables` answers for all three: a listing of a table that is
 * not there is answered from it, as nft itself would ("No such file or
 * directory"), without a process. Anything unexpected falls through to nft.
 * Held for one invocation only: a table of this attachment's state exists
 * before its DEL starts.
 */

const Tables = z.looseObject({ nftables: z.array(z.unknown()) });
const Table = z.looseObject({ table: z.looseObject({ family: z.string(), name: z.string() }) });

const ABSENT: ExecResult = { exitCode: 1, stdout: '', stderr: 'Error: No such file or directory (no such table, per nft -j list tables)\n', notFound: false, timedOut: false };

export function gateNftListings(run: Runner): Runner {
  let tables: Promise<ReadonlySet<string> | undefined> | undefined;
  const known = (): Promise<ReadonlySet<string> | undefined> =>
    (tables ??= (async () => {
      const r = await run('nft', ['-j', 'list', 'tables'], { timeoutMs: 60_000 });
      if (r.exitCode !== 0) return undefined;
      try {
        const doc = Tables.parse(JSON.parse(r.stdout));
        // A table list holds tables only: an answer with rules in it is not one, and proves nothing absent.
        if (doc.nftables.some((i) => typeof i === 'object' && i !== null && 'rule' in i)) return undefined;
        return new Set(doc.nftables.flatMap((i) => {
          const t = Table.safeParse(i);
          return t.success ? [`${t.data.table.family} ${t.data.table.name}`] : [];
        }));
      } catch {
        return undefined;
      }
    })());
  return async (file, args, opts) => {
    const listing = file === 'nft' && args[0] === '-j' && args[1] === 'list' && (args[2] === 'chain' || args[2] === 'table') && args.length >= 5;
    if (listing) {
      const set = await known();
      if (set !== undefined && !set.has(`${args[3] as string} ${args[4] as string}`)) return ABSENT;
    }
    return run(file, args, opts);
  };
}
