import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { ensureBundle } from './cli/support.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mj-log-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Log one line to `file`; returns what was said about the log file itself. */
async function logTo(file: string): Promise<string[]> {
  const said: string[] = [];
  const log = createLogger({ logFile: file, logLevel: 'info' }, { plugin: 'masq-janitor' }, (l) => void said.push(l));
  log.info({}, 'hello');
  await log.flush();
  return said;
}

describe('logFile (case 4: opened once, without following links or blocking, regular files on a disk only)', () => {
  it('appends to a regular file, and creates a missing one with mode 0600', async () => {
    const f = join(dir, 'mj.log');
    writeFileSync(f, 'old\n');
    expect(await logTo(f)).toEqual([]);
    expect(readFileSync(f, 'utf8')).toMatch(/^old\n.*"msg":"hello"/);
    const g = join(dir, 'new.log');
    expect(await logTo(g)).toEqual([]);
    expect(lstatSync(g).mode & 0o777).toBe(0o600);
  });

  it('never follows a symlink: neither to an existing file nor to a name it would create', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'secret\n');
    symlinkSync(victim, join(dir, 'link.log'));
    symlinkSync(join(dir, 'created-by-root'), join(dir, 'dangling.log'));
    expect((await logTo(join(dir, 'link.log'))).join()).toMatch(/logging to stderr/);
    expect((await logTo(join(dir, 'dangling.log'))).join()).toMatch(/logging to stderr/);
    expect(readFileSync(victim, 'utf8')).toBe('secret\n');
    expect(existsSync(join(dir, 'created-by-root'))).toBe(false);
  });

  it('a FIFO without a reader neither blocks nor is used', async () => {
    const fifo = join(dir, 'fifo.log');
    execFileSync('mkfifo', [fifo]);
    expect((await logTo(fifo)).join()).toMatch(/logging to stderr/);
  }, 5_000);

  it('refuses /proc/sys files (regular per fstat, but not a disk) and devices', async () => {
    // Writable by root; opening it changes nothing, only a write would.
    const knob = '/proc/sys/kernel/domainname';
    const before = readFileSync(knob, 'utf8');
    expect((await logTo(knob)).join()).toMatch(/not a file on a disk \(procfs\); logging to stderr/);
    expect(readFileSync(knob, 'utf8')).toBe(before);
    expect((await logTo('/dev/null')).join()).toMatch(/not a regular file.*logging to stderr/);
  });

  it('/dev/stdout and /proc/self/fd/1 never get a log line: the CNI stdout stays empty on DEL (the bundle, as a runtime runs it)', async () => {
    const bundle = await ensureBundle();
    for (const logFile of ['/dev/stdout', '/proc/self/fd/1']) {
      // No tools on PATH: cleanup fails at once and logs an error, touching nothing.
      const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'masq-janitor', logFile, logLevel: 'info' });
      const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_NETNS: '', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', PATH: '/nonexistent' };
      const r = spawnSync(process.execPath, [bundle], { input: stdin, env, encoding: 'utf8', timeout: 20_000 });
      expect([r.status, r.stdout], r.stderr).toEqual([0, '']);
      expect(r.stderr).toMatch(/logging to stderr/);
    }
  }, 30_000);
});
