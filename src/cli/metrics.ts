import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fail, ok, type Result } from '../cni/errors.js';

/**
 * `sweep --metrics-file PATH`: one sweep's outcome as a Prometheus textfile
 * for node_exporter's textfile collector. Every value is about the LAST
 * run (gauges), not a running total: the file is rewritten by each sweep,
 * and a counter that restarts at every write would read as resets.
 */

/** What one sweep saw and did on one backend for one network. */
export interface SweepCounts {
  /** `iptables-nft`, `iptables-legacy` or `nft`. */
  readonly backend: string;
  /** The CNI network name the leaked state belongs to. */
  readonly network: string;
  /** Orphaned attachments found (their container is gone). */
  readonly found: number;
  /** Of those, removed (0 on a dry run). */
  readonly removed: number;
  /** Attachments whose container still exists, left alone. */
  readonly kept: number;
}

export interface SweepSummary {
  /** When the run ended, in milliseconds since the epoch (Date.now()). */
  readonly finishedAtMs: number;
  readonly durationMs: number;
  /** true for `--apply`; a dry run only finds. */
  readonly applied: boolean;
  readonly counts: readonly SweepCounts[];
  /** Errors the run reported (a backend that failed, a transaction refused, ...). */
  readonly errors: number;
}

const PREFIX = 'masq_janitor_sweep';

/** The text exposition format escapes only these three in label values. */
const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** Go's strconv.FormatFloat as Prometheus writes it; integers stay integers. */
const num = (n: number): string => (Number.isFinite(n) ? String(n) : Number.isNaN(n) ? 'NaN' : n > 0 ? '+Inf' : '-Inf');

interface Family {
  readonly name: string;
  readonly help: string;
  readonly samples: readonly { readonly labels: string; readonly value: number }[];
}

function family(name: string, help: string, samples: Family['samples']): Family {
  return { name: `${PREFIX}_${name}`, help, samples };
}

/**
 * The textfile. Rows repeating a (backend, network) pair are summed: a
 * series may appear once per scrape, and promtool rejects duplicates.
 */
export function renderMetrics(summary: SweepSummary): string {
  const byKey = new Map<string, { backend: string; network: string; found: number; removed: number; kept: number }>();
  for (const c of summary.counts) {
    const key = JSON.stringify([c.backend, c.network]);
    const row = byKey.get(key) ?? { backend: c.backend, network: c.network, found: 0, removed: 0, kept: 0 };
    row.found += c.found;
    row.removed += c.removed;
    row.kept += c.kept;
    byKey.set(key, row);
  }
  const rows = [...byKey.values()].sort((a, b) => (a.backend === b.backend ? (a.network < b.network ? -1 : 1) : a.backend < b.backend ? -1 : 1));
  const labels = (r: { backend: string; network: string }): string => `{backend="${escapeLabel(r.backend)}",network="${escapeLabel(r.network)}"}`;
  const per = (pick: (r: (typeof rows)[number]) => number): Family['samples'] => rows.map((r) => ({ labels: labels(r), value: pick(r) }));
  const families: Family[] = [
    family('orphans_found', 'Orphaned attachments (leaked masquerade state) the last sweep found.', per((r) => r.found)),
    family('orphans_removed', 'Orphaned attachments the last sweep removed (0 on a dry run).', per((r) => r.removed)),
    family('attachments_kept', 'Attachments of live containers the last sweep left alone.', per((r) => r.kept)),
    family('errors', 'Errors the last sweep reported; 0 when it completed cleanly.', [{ labels: '', value: summary.errors }]),
    family('applied', '1 if the last sweep ran with --apply, 0 for a dry run.', [{ labels: '', value: summary.applied ? 1 : 0 }]),
    family('last_run_timestamp_seconds', 'When the last sweep finished, in seconds since the Unix epoch.', [{ labels: '', value: summary.finishedAtMs / 1000 }]),
    family('last_run_duration_seconds', 'How long the last sweep took, in seconds.', [{ labels: '', value: summary.durationMs / 1000 }]),
  ];
  let out = '';
  for (const f of families) {
    out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} gauge\n`;
    for (const s of f.samples) out += `${f.name}${s.labels} ${num(s.value)}\n`;
  }
  return out;
}

export interface MetricsFileError {
  readonly message: string;
}

/**
 * Replace `path` with `text` so a scrape sees the old file or the new one,
 * never a torn one: write a temp file in the same directory (a dot name
 * not ending in .prom, which the collector ignores), fsync, rename. The
 * temp file is created with O_EXCL|O_NOFOLLOW: a link planted under its
 * name is refused, not written through. rename replaces a link at `path`
 * itself rather than its target.
 */
export async function writeMetricsFile(path: string, text: string): Promise<Result<void, MetricsFileError>> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    await fh.writeFile(text);
    // The umask may have narrowed it; the collector runs as another user.
    await fh.chmod(0o644);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
    return ok(undefined);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    return fail({ message: `${path}: ${(e as Error).message}` });
  }
}
