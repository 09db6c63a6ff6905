import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The same CNI protocol smoke tests against both shipped forms: the script
 * bundle `dist/masq-janitor` (needs node on the host) and the Node single
 * executable `dist/standalone/masq-janitor` (does not). Every invocation runs
 * inside a throwaway network namespace with an EMPTY environment apart from
 * the CNI_* variables, the way `env -i` would: no PATH, so no node on PATH.
 * DEL and GC touch the nat tables, so they must never run in the root netns.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPT = `${ROOT}/dist/masq-janitor`;
const STANDALONE = `${ROOT}/dist/standalone/masq-janitor`;
const IP = '/usr/sbin/ip';
const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
/** What Node prints when a SEA is built without disableExperimentalSEAWarning. */
const SEA_WARNING = /ExperimentalWarning|single executable application/i;

interface Proc {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}): Promise<Proc> {
  return new Promise((done, failed) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', failed);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // a child that exits before reading stdin is not our failure
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * `make standalone` when the executable is missing or older than the bundle.
 * node_modules is the caller's business (`make test` runs `deps` first; an
 * `npm ci` under a running vitest would delete it), hence `-o`; an existing
 * bundle is taken as it is, so a test run never rebuilds what other test
 * files are executing.
 */
async function ensureStandalone(): Promise<void> {
  if (existsSync(STANDALONE)) {
    if (existsSync(SCRIPT) && statSync(STANDALONE).mtimeMs >= statSync(SCRIPT).mtimeMs) return;
    rmSync(STANDALONE); // stale: built from an older bundle
  }
  const args = ['-o', 'node_modules/.installed', ...(existsSync(SCRIPT) ? ['-o', 'dist/masq-janitor'] : []), 'standalone'];
  const r = await run('make', args, { cwd: ROOT });
  if (r.code !== 0) throw new Error(`make ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
}

let netns: string | undefined;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the standalone smoke tests need root (they run DEL and GC inside a throwaway netns)');
  await ensureStandalone();
  const name = `mjt-sea-${randomBytes(4).toString('hex')}`;
  const r = await run(IP, ['netns', 'add', name]);
  if (r.code !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  netns = name;
}, 300_000);

afterAll(async () => {
  if (netns !== undefined) await run(IP, ['netns', 'del', netns]);
});

/** One plugin invocation inside the netns, with exactly `env` as its environment. */
async function plugin(binary: string, env: Record<string, string>, stdin: string): Promise<Proc> {
  if (netns === undefined) throw new Error('no netns');
  const r = await run(IP, ['netns', 'exec', netns, binary], { env, input: stdin });
  expect(r.stderr).not.toMatch(SEA_WARNING);
  return r;
}

const NET = 'smoke-net';
const CID = 'default-smoke1';
const CONTAINER = { CNI_CONTAINERID: CID, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
/** ADD and CHECK require a netns path; the plugin never opens it for them. */
const NETNS_PATH = '/var/run/netns/mjt-sea-not-opened';

const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '6e:2f:1c:aa:bb:01' },
    { name: 'vethab12cd34', mac: '6e:2f:1c:aa:bb:02' },
    { name: 'eth0', mac: '6e:2f:1c:aa:bb:03', sandbox: NETNS_PATH },
  ],
  ips: [{ address: '10.4.0.7/24', gateway: '10.4.0.1', interface: 2 }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};
const conf = (extra: Record<string, unknown> = {}, version = '1.0.0'): string =>
  JSON.stringify({ cniVersion: version, name: NET, type: 'masq-janitor', ...extra });

const errorKeys = (o: Record<string, unknown>): string[] => Object.keys(o).sort();

const builds = [
  ['script bundle', SCRIPT],
  ['standalone executable', STANDALONE],
] as const;

describe.each(builds)('%s', (_label, binary) => {
  it('VERSION with an empty environment', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify({ cniVersion: '1.1.0', supportedVersions: SUPPORTED })}\n`);
    expect(r.stderr).toBe('');
  });

  it('ADD passes prevResult through, stamped with the config version', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'ADD', CNI_NETNS: NETNS_PATH, ...CONTAINER }, conf({ prevResult }));
    expect(r.code).toBe(0);
    const { cniVersion: _v, ...rest } = prevResult;
    expect(r.stdout).toBe(`${JSON.stringify({ cniVersion: '1.0.0', ...rest })}\n`);
  });

  it('ADD without prevResult is an invalid config (code 7)', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'ADD', CNI_NETNS: NETNS_PATH, ...CONTAINER }, conf());
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ cniVersion: '1.0.0', code: 7 });
    expect(out.msg).toMatch(/prevResult/);
    expect(errorKeys(out)).toEqual(['cniVersion', 'code', 'details', 'msg']);
    expect(r.stdout.endsWith('}\n') && r.stdout.indexOf('\n') === r.stdout.length - 1).toBe(true);
  });

  it('CHECK with a sound prevResult succeeds silently', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'CHECK', CNI_NETNS: NETNS_PATH, ...CONTAINER }, conf({ prevResult }));
    expect(r).toMatchObject({ code: 0, stdout: '' });
  });

  it('STATUS finds its tools on the default PATH', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'STATUS' }, conf({}, '1.1.0'));
    expect(r).toMatchObject({ code: 0, stdout: '' });
  });

  it('GC with nothing to collect succeeds silently', async () => {
    const gcConf = conf({ 'cni.dev/valid-attachments': [{ containerID: CID, ifname: 'eth0' }] }, '1.1.0');
    const r = await plugin(binary, { CNI_COMMAND: 'GC', CNI_PATH: '/usr/lib/cni' }, gcConf);
    expect(r).toMatchObject({ code: 0, stdout: '' });
  });

  it('DEL with an empty netns and nothing to clean succeeds silently and leaves no chain', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'DEL', CNI_NETNS: '', ...CONTAINER }, conf({ prevResult }));
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    for (const save of ['/usr/sbin/iptables-save', '/usr/sbin/ip6tables-save']) {
      const listed = await run(IP, ['netns', 'exec', netns as string, save, '-t', 'nat']);
      expect(listed.code).toBe(0);
      expect(listed.stdout).not.toMatch(/CNI-/);
    }
  });

  it('DEL with an empty netns removes a leaked chain and its jump', async () => {
    // What bridge's ipMasq leaves behind when its DEL gets CNI_NETNS="" (containernetworking/plugins#810).
    const cid = `default-leak-${randomBytes(3).toString('hex')}`;
    const chain = 'CNI-' + createHash('sha512').update(NET + cid).digest('hex').slice(0, 24);
    const comment = JSON.stringify(`name: "${NET}" id: "${cid}"`);
    const setup = [
      '*nat',
      `:${chain} - [0:0]`,
      `-A POSTROUTING -s 10.4.0.7/32 -m comment --comment ${comment} -j ${chain}`,
      `-A ${chain} -d 10.4.0.0/24 -m comment --comment ${comment} -j ACCEPT`,
      `-A ${chain} ! -d 224.0.0.0/4 -m comment --comment ${comment} -j MASQUERADE`,
      'COMMIT',
      '',
    ].join('\n');
    const load = await run(IP, ['netns', 'exec', netns as string, '/usr/sbin/iptables-restore', '--noflush'], { input: setup });
    expect(load.code, load.stderr).toBe(0);
    const r = await plugin(binary, { CNI_COMMAND: 'DEL', CNI_NETNS: '', ...CONTAINER, CNI_CONTAINERID: cid }, conf({ prevResult }));
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const listed = await run(IP, ['netns', 'exec', netns as string, '/usr/sbin/iptables-save', '-t', 'nat']);
    expect(listed.stdout).not.toContain(chain);
  });

  it('an unknown CNI_COMMAND is an invalid environment (code 4)', async () => {
    const r = await plugin(binary, { CNI_COMMAND: 'BOGUS', ...CONTAINER }, conf());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${JSON.stringify({ cniVersion: '1.0.0', code: 4, msg: 'unknown CNI_COMMAND: "BOGUS"', details: '' })}\n`);
  });
});

describe('both builds', () => {
  it('answer every verb with byte-identical stdout and exit codes', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}'],
      [{ CNI_COMMAND: 'ADD', CNI_NETNS: NETNS_PATH, ...CONTAINER }, conf({ prevResult })],
      [{ CNI_COMMAND: 'ADD', CNI_NETNS: NETNS_PATH, ...CONTAINER }, conf()],
      [{ CNI_COMMAND: 'ADD', CNI_NETNS: NETNS_PATH, ...CONTAINER }, '{not json'],
      [{ CNI_COMMAND: 'DEL', CNI_NETNS: '', ...CONTAINER }, conf({ prevResult }, '0.2.0')],
      [{ CNI_COMMAND: 'BOGUS' }, conf()],
    ];
    for (const [env, stdin] of cases) {
      const a = await plugin(SCRIPT, env, stdin);
      const b = await plugin(STANDALONE, env, stdin);
      expect({ code: b.code, stdout: b.stdout }, `${env.CNI_COMMAND} ${stdin}`).toEqual({ code: a.code, stdout: a.stdout });
    }
  });

  it('the bundle keeps no import(): inside a SEA built with useCodeCache it throws ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING', () => {
    // esbuild inlines import() of bundled modules, but keeps `import('node:x')` of builtins as a real import().
    expect(readFileSync(SCRIPT, 'utf8')).not.toMatch(/\bimport\(/);
  });

  it('the standalone executable runs without node anywhere on PATH', async () => {
    const r = await plugin(STANDALONE, { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' }, '{"cniVersion":"1.0.0"}');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED })}\n`);
    expect(r.stderr).toBe('');
  });
});
