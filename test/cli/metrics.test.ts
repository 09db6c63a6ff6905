import { execFileSync, spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderMetrics, writeMetricsFile, type SweepSummary } from '../../src/cli/metrics.js';
import { ROOT } from './support.js';

const summary: SweepSummary = {
  finishedAtMs: 1_780_000_000_500,
  durationMs: 1250,
  applied: true,
  errors: 0,
  counts: [
    { backend: 'iptables-nft', network: 'bridge', found: 3, removed: 3, kept: 2 },
    { backend: 'nft', network: 'containerd-net', found: 1, removed: 0, kept: 0 },
    { backend: 'iptables-nft', network: 'bridge', found: 1, removed: 1, kept: 0 },
  ],
};

/**
 * From Debian's prometheus package: `make deps` unpacks it to dist/tools (or links the installed one),
 * and `make test` sets MJ_REQUIRE_REAL_TOOLS so this cannot be skipped there.
 */
const PROMTOOL = [join(ROOT, 'dist/tools/promtool'), '/usr/bin/promtool'].find((p) => existsSync(p)) ?? 'promtool';
const promtool = spawnSync(PROMTOOL, ['--version']).status === 0;
const required = process.env.MJ_REQUIRE_REAL_TOOLS === '1';

function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('renderMetrics', () => {
  it('writes one gauge family per figure, rows per backend and network, duplicates summed', () => {
    const text = renderMetrics(summary);
    expect(text).toContain('masq_janitor_sweep_orphans_found{backend="iptables-nft",network="bridge"} 4\n');
    expect(text).toContain('masq_janitor_sweep_orphans_removed{backend="iptables-nft",network="bridge"} 4\n');
    expect(text).toContain('masq_janitor_sweep_attachments_kept{backend="iptables-nft",network="bridge"} 2\n');
    expect(text).toContain('masq_janitor_sweep_orphans_found{backend="nft",network="containerd-net"} 1\n');
    expect(text).toContain('masq_janitor_sweep_errors 0\n');
    expect(text).toContain('masq_janitor_sweep_applied 1\n');
    expect(text).toContain('masq_janitor_sweep_last_run_timestamp_seconds 1780000000.5\n');
    expect(text).toContain('masq_janitor_sweep_last_run_duration_seconds 1.25\n');
    expect(text.match(/^# TYPE /gm)).toHaveLength(7);
    expect(text.split('\n').filter((l) => l.startsWith('masq_janitor_sweep_orphans_found'))).toHaveLength(2);
  });

  it('escapes label values as the exposition format requires', () => {
    const text = renderMetrics({ ...summary, counts: [{ backend: 'nft', network: 'a"b\\c\nd', found: 1, removed: 1, kept: 0 }] });
    expect(text).toContain('network="a\\"b\\\\c\\nd"} 1\n');
  });

  it.skipIf(!promtool && !required)('passes the real parser: promtool check metrics (Debian prometheus)', () => {
    expect(promtool, 'promtool missing: make promtool').toBe(true);
    for (const s of [summary, { ...summary, counts: [], applied: false, errors: 2 }]) {
      const r = promtoolCheck(renderMetrics(s));
      expect(r, r.output).toEqual({ status: 0, output: '' });
    }
    // The parser is not a rubber stamp: an unescaped newline in a label value, or a family
    // declared twice, fails.
    expect(promtoolCheck('x{network="a\n"} 1\n').status).not.toBe(0);
    expect(promtoolCheck(renderMetrics(summary) + renderMetrics(summary)).status).not.toBe(0);
  });

  it.skipIf(!promtool && !required)('passes the real parser for any network names and counts', () => {
    const counts = fc.array(
      fc.record({
        backend: fc.constantFrom('iptables-nft', 'iptables-legacy', 'nft'),
        network: fc.string({ minLength: 1, maxLength: 12, unit: 'binary' }),
        found: fc.nat(1e6),
        removed: fc.nat(1e6),
        kept: fc.nat(1e6),
      }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(counts, fc.nat(1e7), (c, ms) => {
        const r = promtoolCheck(renderMetrics({ ...summary, counts: c, durationMs: ms }));
        expect(r, r.output).toEqual({ status: 0, output: '' });
      }),
      { numRuns: 25 },
    );
  });
});

describe('writeMetricsFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mj-metrics-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces the file in one rename, mode 0644, leaving no temp file', async () => {
    const p = join(dir, 'masq-janitor.prom');
    await writeFile(p, 'old\n');
    const ino = (await stat(p)).ino;
    expect(await writeMetricsFile(p, 'new\n')).toEqual({ ok: true, value: undefined });
    expect(await readFile(p, 'utf8')).toBe('new\n');
    const st = await stat(p);
    expect(st.ino).not.toBe(ino);
    expect(st.mode & 0o777).toBe(0o644);
    expect(await readdir(dir)).toEqual(['masq-janitor.prom']);
  });

  it('replaces a symlink at the path instead of writing through it', async () => {
    const victim = join(dir, 'victim');
    await writeFile(victim, 'keep\n');
    const p = join(dir, 'm.prom');
    await symlink(victim, p);
    expect((await writeMetricsFile(p, 'x 1\n')).ok).toBe(true);
    expect((await lstat(p)).isFile()).toBe(true);
    expect(await readFile(victim, 'utf8')).toBe('keep\n');
  });

  it('reports a directory it cannot write, and leaves nothing behind', async () => {
    const r = await writeMetricsFile(join(dir, 'missing', 'm.prom'), 'x 1\n');
    expect(r.ok).toBe(false);
    await mkdir(join(dir, 'is-a-dir.prom'));
    const r2 = await writeMetricsFile(join(dir, 'is-a-dir.prom'), 'x 1\n');
    expect(r2.ok).toBe(false);
    expect(await readdir(dir)).toEqual(['is-a-dir.prom']);
  });

  it('writes a file promtool accepts', { skip: !promtool && !required }, async () => {
    const p = join(dir, 'masq-janitor.prom');
    expect((await writeMetricsFile(p, renderMetrics(summary))).ok).toBe(true);
    expect(execFileSync('sh', ['-c', '"$0" check metrics < "$1" 2>&1; echo "rc=$?"', PROMTOOL, p], { encoding: 'utf8' })).toBe('rc=0\n');
  });
});
