import type { ExecResult, Runner } from '../exec.js';

/**
 * One nft process for the listings a DEL makes at once.
 *
 * A DEL lists three nft tables that are usually absent (bridge's masquerade
 * table, portmap's ip and ip6 tables), and each `nft` process costs a fork of
 * the plugin and nft's own start-up, about 12 ms beside 10,000 iptables-nft
 * chains. `nft -j -i` runs every line of its input as its own command and goes
 * on after a failed one; `nft -f` would fail all three for one missing table.
 *
 * The answer is split back by content: each JSON document names the table it
 * lists, each error block echoes its command. Anything that cannot be
 * attributed that way (another nft build, a warning, a crash) makes every
 * caller run its own listing, exactly as without this.
 */
export function coalescingNftLists(run: Runner): Runner {
  let pending: Pending[] = [];
  // A Runner that rejects (an internal error) rejects every caller, as it would have without batching.
  const call = (args: readonly string[], opts: Parameters<Runner>[2]): Promise<ExecResult> => Promise.resolve().then(() => run('nft', args, opts));
  const forward = (p: Pending, r: Promise<ExecResult>): void => void r.then(p.resolve, p.reject);
  const flush = (batch: readonly Pending[]): void => {
    if (batch.length === 1) return forward(batch[0] as Pending, call(batch[0]!.args, batch[0]!.opts));
    const timeoutMs = Math.max(...batch.map((p) => p.opts?.timeoutMs ?? 60_000));
    call(['-j', '-i'], { input: batch.map((p) => `${p.command}\n`).join(''), timeoutMs }).then(
      (r) => {
        const split = r.notFound ? batch.map(() => r) : attribute(batch, r);
        batch.forEach((p, i) => forward(p, split?.[i] !== undefined ? Promise.resolve(split[i] as ExecResult) : call(p.args, p.opts)));
      },
      (e: unknown) => batch.forEach((p) => p.reject(e)),
    );
  };
  return (file, args, opts) => {
    const target = listed(file, args);
    if (target === undefined) return run(file, args, opts);
    return new Promise<ExecResult>((resolve, reject) => {
      if (pending.length === 0)
        setImmediate(() => {
          const batch = pending;
          pending = [];
          flush(batch);
        });
      pending.push({ args, opts, command: args.slice(1).join(' '), target, resolve, reject });
    });
  };
}

interface Pending {
  readonly args: readonly string[];
  readonly opts: Parameters<Runner>[2];
  /** The line given to `nft -i`. */
  readonly command: string;
  /** family and table, as the listing's JSON names them. */
  readonly target: string;
  readonly resolve: (r: ExecResult) => void;
  readonly reject: (e: unknown) => void;
}

/** Names nft prints bare in a command line: the only ones batched, so no quoting can differ. */
const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);

/** `nft -j list table|chain <family> <table> [<chain>]` with plain names: its table key, else undefined. */
function listed(file: string, args: readonly string[]): string | undefined {
  if (file !== 'nft' || args[0] !== '-j' || args[1] !== 'list') return undefined;
  const [, , kind, family, table, chain, ...extra] = args;
  if (extra.length > 0 || family === undefined || !FAMILIES.has(family) || table === undefined || !NAME.test(table)) return undefined;
  if (kind === 'table' && chain === undefined) return `${family} ${table}`;
  if (kind === 'chain' && chain !== undefined && NAME.test(chain)) return `${family} ${table}`;
  return undefined;
}

/** Each caller's own result out of the batched one, or undefined when any part cannot be attributed. */
function attribute(batch: readonly Pending[], r: ExecResult): ExecResult[] | undefined {
  if (r.exitCode !== 0 || r.timedOut) return undefined;
  const byTarget = new Map(batch.map((p, i) => [p.target, i]));
  if (byTarget.size !== batch.length) return undefined;
  const out: (ExecResult | undefined)[] = batch.map(() => undefined);
  for (const line of r.stdout.split('\n')) {
    if (line.trim() === '') continue;
    const target = documentTarget(line);
    const i = target === undefined ? undefined : byTarget.get(target);
    if (i === undefined || out[i] !== undefined) return undefined;
    out[i] = { exitCode: 0, stdout: `${line}\n`, stderr: '', notFound: false, timedOut: false };
  }
  // Error blocks: "Error: ...", the command echoed, a line of carets.
  const lines = r.stderr.split('\n');
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k] as string;
    if (line.trim() === '') continue;
    if (!line.startsWith('Error: ')) return undefined;
    const i = batch.findIndex((p) => p.command === lines[k + 1]);
    if (i < 0 || out[i] !== undefined || !/^\s*\^+\s*$/.test(lines[k + 2] ?? '')) return undefined;
    out[i] = { exitCode: 1, stdout: '', stderr: `${lines.slice(k, k + 3).join('\n')}\n`, notFound: false, timedOut: false };
    k += 2;
  }
  return out.every((x) => x !== undefined) ? (out as ExecResult[]) : undefined;
}

/** The "family table" a listing's JSON document is about, if it names exactly one. */
function documentTarget(line: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined;
  }
  const items = (doc as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(items)) return undefined;
  const targets = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'object' || item === null) return undefined;
    for (const [kind, v] of Object.entries(item as Record<string, unknown>)) {
      if (kind === 'metainfo' || typeof v !== 'object' || v === null) continue;
      const o = v as { family?: unknown; name?: unknown; table?: unknown };
      const table = kind === 'table' ? o.name : o.table;
      if (typeof o.family !== 'string' || typeof table !== 'string') return undefined;
      targets.add(`${o.family} ${table}`);
    }
  }
  return targets.size === 1 ? [...targets][0] : undefined;
}
