import { describe, expect, it } from 'vitest';
import { spawnRunner } from '../../src/backends/exec.js';

/**
 * The Runner every verb and sweep spawn tools through (node:child_process,
 * since execa cost a DEL about 40 ms: issue 12). It must keep the contract
 * the backends read: input on stdin, both outputs whole, the exit code,
 * "not found" and a timeout, and never reject.
 */

const run = spawnRunner('/usr/sbin:/usr/bin:/sbin:/bin');

describe('spawnRunner', () => {
  it('passes the input, returns both outputs and the exit code', async () => {
    const r = await run('sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'in\n' });
    expect(r).toEqual({ exitCode: 3, stdout: 'in\n', stderr: 'err\n', notFound: false, timedOut: false });
  });

  it('gives the tool only PATH, LC_ALL=C and XTABLES_LOCKFILE: no locale or operator environment leaks in', async () => {
    const r = await run('sh', ['-c', 'env | sort'], {});
    const names = r.stdout.trim().split('\n').map((l) => l.split('=')[0]).filter((n) => n !== 'PWD' && n !== 'SHLVL' && n !== '_');
    expect(names.filter((n) => n !== 'XTABLES_LOCKFILE')).toEqual(['LC_ALL', 'PATH']);
    expect(r.stdout).toContain('LC_ALL=C\n');
  });

  it('keeps a multi-byte character that arrives split across two reads', async () => {
    // "é" is 0xC3 0xA9: the first byte, a pause, the second.
    const r = await run('sh', ['-c', "printf '\\303'; sleep 0.2; printf '\\251\\n'"], {});
    expect(r.stdout).toBe('é\n');
  });

  it('reports a missing binary as notFound, without throwing', async () => {
    const r = await run('no-such-tool-masq-janitor', ['x'], {});
    expect(r.notFound).toBe(true);
    expect(r.exitCode).toBeUndefined();
    expect(r.stderr).toMatch(/ENOENT/);
  });

  it('stops a tool at the timeout and says so', async () => {
    const t0 = Date.now();
    const r = await run('sleep', ['30'], { timeoutMs: 200 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('survives a tool that exits without reading a large input (EPIPE on its stdin)', async () => {
    const r = await run('true', [], { input: 'x'.repeat(8 * 1024 * 1024) });
    expect(r.exitCode).toBe(0);
  });

  it('returns a failed result for an argument Node refuses to pass (a NUL byte), never a rejection', async () => {
    const r = await run('echo', ['a\0b'], {});
    expect(r.exitCode).toBeUndefined();
    expect(r.notFound).toBe(false);
    expect(r.stderr).toMatch(/null bytes|NUL|\\u0000/i);
  });

  it('gives stdout as bytes when asked (saveNat), with the text left empty', async () => {
    const r = await run('printf', ['a\\303\\251\\n'], { stdoutBytes: true });
    expect(r.stdout).toBe('');
    expect(r.bytes?.toString('utf8')).toBe('aé\n');
  });

  it('reads big outputs whole (a whole-table save)', async () => {
    const r = await run('sh', ['-c', 'head -c 20000000 /dev/zero | tr "\\0" a'], {});
    expect(r.stdout.length).toBe(20_000_000);
  });
});
