import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closest, describeParseError } from '../../src/cli/usage.js';
import { ensureBundle, ROOT } from './support.js';

/** The operator CLI as an operator meets it: the built bundle, its stdout and stderr. */

const run = promisify(execFile);
let bundle: string;
let dir: string;
let version: string;

beforeAll(async () => {
  bundle = await ensureBundle();
  dir = await mkdtemp(join(tmpdir(), 'mj-cli-'));
  version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function janitor(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [bundle, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

describe('help', () => {
  it.each(['sweep', 'install', 'uninstall'])('help %s gives that command\'s help, not the top-level one', async (cmd) => {
    const r = await janitor('help', cmd);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^usage: masq-janitor ${cmd} `));
    expect(r.out).toBe((await janitor(cmd, '--help')).out);
  });

  it('help of an unknown command is one line and a hint', async () => {
    const r = await janitor('help', 'swep');
    expect(r).toEqual({ code: 2, out: '', err: `masq-janitor: unknown command "swep" (did you mean sweep?)\nRun 'masq-janitor --help' for the commands.\n` });
  });
});

describe('usage errors', () => {
  it('are one line plus a hint, with "did you mean"', async () => {
    const r = await janitor('install', '--dry-runn');
    expect(r).toEqual({ code: 2, out: '', err: `masq-janitor install: unknown option --dry-runn (did you mean --dry-run?)\nRun 'masq-janitor help install' for its options.\n` });
    const u = await janitor('uninstall', '--conf-dir');
    expect(u.err).toBe(`masq-janitor uninstall: option --conf-dir needs a value\nRun 'masq-janitor help uninstall' for its options.\n`);
    for (const proto of ['constructor', '__proto__', 'toString']) expect((await janitor(proto)).code, proto).toBe(2);
    expect((await janitor('help', 'constructor')).code).toBe(2);
    expect((await janitor('instal')).err).toBe(`masq-janitor: unknown command "instal" (did you mean install?)\nRun 'masq-janitor --help' for the commands.\n`);
  });

  it('suggest the option an operator most likely meant', () => {
    expect(closest('aply', ['apply', 'network', 'json'])).toBe('apply');
    expect(closest('net', ['apply', 'network'])).toBe('network');
    expect(closest('zzzz', ['apply', 'network'])).toBeUndefined();
    expect(describeParseError({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION', message: "Unknown option '--aply'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- \"--aply\"" }, { apply: { type: 'boolean' } })).toBe(
      'unknown option --aply (did you mean --apply?)',
    );
  });
});

describe('version', () => {
  it('comes from package.json, and the no-argument banner shows it', async () => {
    expect(await janitor('--version')).toEqual({ code: 0, out: `masq-janitor ${version}\n`, err: '' });
    const banner = await janitor();
    expect(banner.code).toBe(0);
    expect(banner.out).toBe('');
    expect(banner.err.split('\n')[0]).toBe(`CNI masq-janitor plugin ${version}`);
    expect((await janitor('--help')).out.split('\n')[0]).toBe(`masq-janitor ${version}`);
  });
});

describe('install --json', () => {
  it('prints one JSON document: entries per path, messages, exit code', async () => {
    const r = await janitor('install', '--json', '--dry-run', '--skip-binary', '--conf-dir', join(ROOT, 'examples/original'));
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe('');
    const doc = JSON.parse(r.out) as { command: string; exitCode: number; entries: { path: string; result: string }[]; messages: string[] };
    expect(doc.command).toBe('install');
    expect(doc.exitCode).toBe(0);
    expect(doc.entries).toContainEqual({ path: join(ROOT, 'examples/original/87-podman-bridge.conflist'), result: 'would add (after bridge with ipMasq: true)' });
    expect(doc.entries).toHaveLength(4);
  });

  it('a usage error stays a usage error', async () => {
    const r = await janitor('install', '--json', '--bogus');
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown option --bogus');
  });
});
