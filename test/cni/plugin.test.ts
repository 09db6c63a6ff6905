import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ensureBundle } from '../cli/support.js';
import { runPlugin } from '../../src/cni/plugin.js';
import { chainName } from '../../src/identity.js';
import { fakeRunner } from '../support/fake-runner.js';

const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cni0', mac: 'aa' }, { name: 'eth0', mac: 'bb', sandbox: '/x' }],
  ips: [{ address: '10.4.0.2/24', gateway: '10.4.0.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: { nameservers: ['10.4.0.1'] },
  custom: 'kept',
};
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'bridge', type: 'masq-janitor', prevResult, ...extra });
const env = (verb: string, extra: Record<string, string> = {}) => ({ CNI_COMMAND: verb, CNI_CONTAINERID: 'default-c1', CNI_NETNS: '', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', PATH: '/nonexistent', ...extra });
const quiet = { complain: () => {} };

describe('plugin protocol', () => {
  it('VERSION lists the supported versions', async () => {
    const out = await runPlugin({ env: { CNI_COMMAND: 'VERSION' }, stdin: '{"cniVersion":"1.1.0"}' });
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('ADD prints prevResult unchanged, in the config version', async () => {
    const run = fakeRunner();
    const out = await runPlugin({ env: env('ADD', { CNI_NETNS: '/var/run/netns/c1' }), stdin: conf() }, { run, ...quiet });
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(prevResult);
    expect(run.calls).toEqual([]);
  });

  it('ADD without prevResult is code 7 telling how to chain', async () => {
    const out = await runPlugin({ env: env('ADD', { CNI_NETNS: '/x' }), stdin: conf({ prevResult: undefined }) }, quiet);
    const e = JSON.parse(out.stdout);
    expect(out.exitCode).toBe(1);
    expect(e).toMatchObject({ cniVersion: '1.0.0', code: 7 });
    expect(e.msg).toMatch(/chained after bridge or ptp/);
  });

  it('CHECK passes with a valid prevResult, code 7 without', async () => {
    expect((await runPlugin({ env: env('CHECK', { CNI_NETNS: '/x' }), stdin: conf() }, quiet)).exitCode).toBe(0);
    const bad = await runPlugin({ env: env('CHECK', { CNI_NETNS: '/x' }), stdin: conf({ prevResult: { ips: [{ address: 'nope' }] } }) }, quiet);
    expect(JSON.parse(bad.stdout).code).toBe(7);
  });

  it('GC succeeds with no output', async () => {
    const out = await runPlugin({ env: { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, stdin: conf({ cniVersion: '1.1.0', prevResult: undefined }) }, { run: fakeRunner(), ...quiet });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
  });

  it('STATUS is code 50 naming what is missing', async () => {
    const out = await runPlugin({ env: { CNI_COMMAND: 'STATUS', PATH: '/nonexistent' }, stdin: conf({ cniVersion: '1.1.0' }) }, quiet);
    const e = JSON.parse(out.stdout);
    expect(e.code).toBe(50);
    expect(e.msg).toContain('iptables-restore');
  });

  const chain = chainName({ network: 'bridge', containerId: 'default-c1' });
  const jump = `-A POSTROUTING -s 10.4.0.2/32 -m comment --comment "name: \\"bridge\\" id: \\"default-c1\\"" -j ${chain}`;
  const answers = (file: string, args: readonly string[]) =>
    file === 'iptables' && args.includes('POSTROUTING')
      ? { stdout: `-P POSTROUTING ACCEPT\n${jump}\n` }
      : file === 'ip6tables' && args.includes(chain)
        ? { exitCode: 1, stderr: 'iptables: No chain/target/match by that name.' }
        : file === 'nft'
          ? { exitCode: 1, stderr: 'Error: No such file or directory' }
          : undefined;
  const table = () => fakeRunner(answers);
  const expectedBatch = `*nat\n:${chain} - [0:0]\n-D ${jump.slice(3)}\n-X ${chain}\nCOMMIT\n`;

  it('DEL with an empty netns and prevResult removes jump, rules and chain in ONE process per family', async () => {
    const run = table();
    // The masquerade fast path alone; what hostports (the default) adds is pinned in the next test.
    const out = await runPlugin({ env: env('DEL'), stdin: conf({ hostports: false }) }, { run, ...quiet });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    // v4: the planned batch alone. v6 (no IP in prevResult): a listing and an existence check, and no transaction that would create anything.
    // v4: the planned batch alone. v6: prevResult gives no IPv6 address, so nothing of this interface's can be there.
    // nft: the masquerade backend's chain (a missing table answers at once; listing the tables would not:
    // `nft -j list tables` fetches the whole ruleset, 350 ms beside 10,000 iptables-nft chains).
    expect(run.calls.map((c) => c.file).sort()).toEqual(['iptables-restore', 'nft']);
    const v4 = run.calls.find((c) => c.file === 'iptables-restore');
    expect(v4?.args).toEqual(['-w', '5', '--noflush']);
    // Planned without reading: bridge's rules by name, so -X fails on anything else the chain holds.
    const q = `"name: \\"bridge\\" id: \\"default-c1\\""`;
    expect(v4?.input).toBe(`*nat\n-D ${jump.slice(3)}\n-D ${chain} -d 10.4.0.0/24 -m comment --comment ${q} -j ACCEPT\n-D ${chain} ! -d 224.0.0.0/4 -m comment --comment ${q} -j MASQUERADE\n-X ${chain}\nCOMMIT\n`);
  });

  it('with hostports on (the default), the fast path lists nothing more: its one transaction also declares and deletes portmap\'s chains of this attachment; one nft listing per cni_hostport table', async () => {
    const run = table();
    const out = await runPlugin({ env: env('DEL'), stdin: conf() }, { run, ...quiet });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    const extra = run.calls.filter((c) => c.args.includes('CNI-HOSTPORT-DNAT') || c.args.includes('cni_hostport')).map((c) => `${c.file} ${c.args.slice(-3).join(' ')}`).sort();
    // IPv6 has no address in prevResult: not looked at.
    expect(extra).toEqual(['nft table ip cni_hostport', 'nft table ip6 cni_hostport'].sort());
    const restores = run.calls.filter((c) => c.file === 'iptables-restore');
    expect(restores).toHaveLength(1);
    expect(restores[0]?.input).toMatch(/^\*nat\n:CNI-DN-[0-9a-f]{21} - \[0:0\]\n:CNI-SN-[0-9a-f]{21} - \[0:0\]\n/);
  });

  it('DEL without prevResult reads POSTROUTING and its own chain (never the whole table), then removes in one transaction', async () => {
    const run = table();
    const out = await runPlugin({ env: env('DEL'), stdin: conf({ prevResult: undefined, hostports: false }) }, { run, ...quiet });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    expect(run.calls.map((c) => c.file).sort()).toEqual(['ip6tables', 'ip6tables', 'iptables', 'iptables', 'iptables-restore', 'nft']);
    expect(run.calls.find((c) => c.file === 'iptables-restore')?.input).toBe(expectedBatch);
  });

  it('DEL falls back to reading the table when the fast batch does not fit (a stale jump)', async () => {
    let batches = 0;
    const run = fakeRunner((file, args) => (file === 'iptables-restore' && batches++ === 0 ? { exitCode: 1, stderr: 'iptables-restore: line 4 failed' } : answers(file, args)));
    const out = await runPlugin({ env: env('DEL'), stdin: conf() }, { run, ...quiet });
    expect(out.exitCode).toBe(0);
    expect(run.calls.filter((c) => c.file === 'iptables-restore')).toHaveLength(2);
  });

  it('a chain another chain still enters (a reference POSTROUTING cannot show): the kernel refuses -X, the whole table is read, the chain stays whole', async () => {
    const user = `-A USER-MASQ -s 10.9.0.7/32 -j ${chain}`;
    let restores = 0;
    const run = fakeRunner((file, args) =>
      file.endsWith('restore') && restores++ === 0
        ? { exitCode: 4, stderr: `iptables-restore v1.8.9 (nf_tables): CHAIN_DEL failed (Device or resource busy): chain ${chain}` }
        : file === 'iptables-save'
          ? { stdout: `*nat\n:POSTROUTING ACCEPT [0:0]\n:USER-MASQ - [0:0]\n:${chain} - [0:0]\n${jump}\n${user}\nCOMMIT\n` }
          : answers(file, args),
    );
    const out = await runPlugin({ env: env('DEL'), stdin: conf({ prevResult: undefined, strict: true }) }, { run, ...quiet });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    const batches = run.calls.filter((c) => c.file === 'iptables-restore').map((c) => c.input);
    expect(batches).toEqual([expectedBatch, `*nat\n-D ${jump.slice(3)}\nCOMMIT\n`]);
  });

  it('DEL never fails because of cleanup unless strict; strict maps a held lock to 11 and the rest to 5', async () => {
    const lock = fakeRunner((file) => (file.endsWith('restore') ? { exitCode: 4, stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' } : undefined));
    expect(await runPlugin({ env: env('DEL'), stdin: conf() }, { run: lock, ...quiet })).toEqual({ exitCode: 0, stdout: '' });
    const strictLock = await runPlugin({ env: env('DEL'), stdin: conf({ strict: true }) }, { run: lock, ...quiet });
    expect(JSON.parse(strictLock.stdout).code).toBe(11);
    // Every batch fails: one transaction per table or nothing.
    const broken = fakeRunner((file, args) => (file.endsWith('restore') || !args.includes('-S') ? { exitCode: 1, stderr: 'iptables: Invalid argument.' } : undefined));
    const strictBroken = await runPlugin({ env: env('DEL'), stdin: conf({ strict: true }) }, { run: broken, ...quiet });
    expect(JSON.parse(strictBroken.stdout).code).toBe(5);
  });

  it('DEL with a network name it cannot trust touches nothing and exits 0 (bridge must still run); strict fails with 7', async () => {
    const run = fakeRunner();
    const lines: string[] = [];
    const out = await runPlugin({ env: env('DEL'), stdin: conf({ name: 'bad name' }) }, { run, complain: (l) => void lines.push(l) });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    expect(run.calls).toEqual([]);
    expect(lines.join('\n')).toMatch(/invalid network name/);
    const strict = await runPlugin({ env: env('DEL'), stdin: conf({ name: 'bad name', strict: true }) }, { run, ...quiet });
    expect(JSON.parse(strict.stdout).code).toBe(7);
  });

  it('DEL ignores a broken prevResult: it is never needed', async () => {
    const run = fakeRunner();
    const out = await runPlugin({ env: env('DEL'), stdin: conf({ prevResult: { ips: 'garbage' } }) }, { run, ...quiet });
    expect(out.exitCode).toBe(0);
    expect(run.calls.length).toBeGreaterThan(0);
  });

  it('errors carry the config version and all four fields', async () => {
    const out = await runPlugin({ env: env('ADD', { CNI_NETNS: '/x' }), stdin: conf({ cniVersion: '0.4.0', prevResult: undefined }) }, quiet);
    expect(Object.keys(JSON.parse(out.stdout))).toEqual(['cniVersion', 'code', 'msg', 'details']);
    expect(JSON.parse(out.stdout).cniVersion).toBe('0.4.0');
  });
});

describe('teardown policy: DEL and GC never fail because of the janitor itself unless strict', () => {
  const del = (stdin: string, extra: Record<string, string> = {}, run = fakeRunner()) => {
    const lines: string[] = [];
    return runPlugin({ env: env('DEL', extra), stdin }, { run, complain: (l) => void lines.push(l) }).then((out) => ({ out, lines, run }));
  };

  it.each([
    [{ logfile: '/tmp/x' }, 'logfile'],
    [{ logLevel: 'loud' }, 'logLevel'],
    [{ logFile: 'relative.log' }, 'logFile'],
    [{ lockWait: 'soon' }, 'lockWait'],
    [{ strict: 'yes' }, 'strict'],
    [{ strcit: true }, 'strcit'],
  ])('an invalid janitor key %j on DEL is logged on stderr, cleanup runs with the defaults, exit 0', async (extra, key) => {
    const { out, lines, run } = await del(conf(extra));
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    expect(lines.join('\n')).toContain(key);
    // The cleanup ran: the chain's batch reached iptables-restore.
    expect(run.calls.some((c) => c.file === 'iptables-restore')).toBe(true);
  });

  it('with a valid "strict": true, an invalid key still fails DEL with code 7', async () => {
    const { out } = await del(conf({ strict: true, logfile: '/tmp/x' }));
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout).code).toBe(7);
  });

  it('a cniVersion bridge accepts but the janitor does not (0.2.0, missing) still cleans up and exits 0', async () => {
    for (const stdin of [conf({ cniVersion: '0.2.0' }), JSON.stringify({ name: 'bridge', type: 'masq-janitor' })]) {
      const { out, run } = await del(stdin);
      expect(out).toEqual({ exitCode: 0, stdout: '' });
      expect(run.calls.length).toBeGreaterThan(0);
    }
  });

  it('a non-JSON stdin or an environment it cannot use on DEL: nothing touched, exit 0, said on stderr', async () => {
    for (const [stdin, extra] of [['{', {}], ['[]', {}], [conf(), { CNI_CONTAINERID: '' }]] as const) {
      const { out, lines, run } = await del(stdin, extra);
      expect(out).toEqual({ exitCode: 0, stdout: '' });
      expect(run.calls).toEqual([]);
      expect(lines.length).toBeGreaterThan(0);
    }
  });

  it('an unexpected internal error on DEL and GC is logged on stderr and exits 0; strict makes it code 999', async () => {
    const boom = fakeRunner(() => {
      throw new Error('boom');
    });
    const lines: string[] = [];
    const complain = (l: string) => void lines.push(l);
    expect(await runPlugin({ env: env('DEL'), stdin: conf() }, { run: boom, complain })).toEqual({ exitCode: 0, stdout: '' });
    const gcConf = conf({ cniVersion: '1.1.0', prevResult: undefined, 'cni.dev/valid-attachments': [] });
    expect(await runPlugin({ env: { CNI_COMMAND: 'GC', CNI_PATH: '/x' }, stdin: gcConf }, { run: boom, complain })).toEqual({ exitCode: 0, stdout: '' });
    expect(lines.filter((l) => l.includes('boom'))).toHaveLength(2);
    const strict = await runPlugin({ env: env('DEL'), stdin: conf({ strict: true }) }, { run: boom, ...quiet });
    expect(JSON.parse(strict.stdout).code).toBe(999);
  });

  it('ADD and CHECK still fail loudly on an invalid janitor key (code 7)', async () => {
    for (const verb of ['ADD', 'CHECK']) {
      const out = await runPlugin({ env: env(verb, { CNI_NETNS: '/x' }), stdin: conf({ logfile: '/tmp/x' }) }, quiet);
      expect(out.exitCode).toBe(1);
      expect(JSON.parse(out.stdout).code).toBe(7);
    }
  });
});

describe('teardown policy in the executable (main.ts): what fails before the plugin even runs', () => {
  it('DEL whose stdin cannot be read (over the 32 MiB bound) says so on stderr and exits 0; ADD still fails with code 5', async () => {
    const bundle = await ensureBundle();
    const input = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'masq-janitor', pad: 'x'.repeat(33 * 1024 * 1024) });
    const run = (verb: string) =>
      spawnSync(process.execPath, [bundle], { input, encoding: 'utf8', maxBuffer: 1 << 20, env: { ...env(verb, { CNI_NETNS: '/x' }), PATH: '/nonexistent' } });
    const del = run('DEL');
    expect([del.status, del.stdout]).toEqual([0, '']);
    expect(del.stderr).toMatch(/error reading stdin.*exit 0/);
    const add = run('ADD');
    expect(add.status).toBe(1);
    expect(JSON.parse(add.stdout).code).toBe(5);
  }, 60_000);
});

