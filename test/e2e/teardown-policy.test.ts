import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, readFile, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { Conflist, JsonObject, PluginConf } from '../support/conflist.js';
import { UPSTREAM_CNI_DIR } from '../support/guard.js';
import { removeNetns } from '../support/netns.js';
import { variantPath } from '../support/xtables.js';
import { addNetworkList, delNetworkList, explain, type CniHost, type DelOutcome } from './support/cni.js';
import { e2eSuite, expectDelOk, expectNoMasq } from './support/expect.js';
import { IFNAME, JANITOR_DIR, withLab, type Container, type Lab } from './support/lab.js';

/**
 * Issue 10: installing, misconfiguring or removing masq-janitor can never
 * block a container's teardown. Each case runs a conflist as libcni does,
 * with the Debian bridge and host-local, and shows that bridge's DEL runs
 * and the container's IP is released (host-local's reservation file gone).
 * Each has a control showing the failure the change prevents.
 */

e2eSuite();

const BUNDLE = join(JANITOR_DIR, 'masq-janitor');
const exec = promisify(execFile);

/** host-local's reservations: one file per address under <dataDir>/<network>/. */
async function reservations(lab: Lab): Promise<string[]> {
  const files = await readdir(join(lab.tmp, 'ipam', lab.network)).catch(() => []);
  return files.filter((f) => /^[\d.]+$|:/.test(f));
}

/** libcni's runtime: the lab's host namespace, a PATH and a CNI_PATH of our choosing. */
function runtime(lab: Lab, cniPath: string, path = lab.toolchain.path): CniHost {
  return { ns: lab.host, toolchain: { ...lab.toolchain, path }, cniPath };
}

function withJanitor(list: Conflist, janitor: PluginConf): Conflist {
  return { ...list, plugins: [...list.plugins.filter((p) => p.type !== 'masq-janitor'), janitor] };
}

async function started(lab: Lab, host: CniHost, list: Conflist): Promise<{ ctr: Container; result: JsonObject }> {
  const ctr = await lab.container();
  const out = await addNetworkList(host, list, { containerId: ctr.id, netns: ctr.ns.path, ifname: IFNAME });
  if (out.failure || !out.result) throw new Error(`ADD failed:\n${explain(out)}`);
  expect(await reservations(lab), 'ADD reserved one address').toHaveLength(1);
  return { ctr, result: out.result };
}

/** DEL as nerdctl/ctr send it: CNI_NETNS="" (the task's netns is gone), the cached result as prevResult. */
async function stopped(lab: Lab, host: CniHost, list: Conflist, c: { ctr: Container; result: JsonObject }): Promise<DelOutcome> {
  await removeNetns(c.ctr.ns);
  return delNetworkList(host, list, { containerId: c.ctr.id, netns: '', ifname: IFNAME }, { cachedResult: c.result });
}

function expectBridgeReleased(out: DelOutcome): void {
  expectDelOk(out);
  expect(out.calls.map((c) => `${c.plugin} ${c.exitCode}`), explain(out)).toEqual(['masq-janitor 0', 'bridge 0']);
}

/** A copy of the bundle whose node only the operator's shell finds (nvm, volta...). */
async function nvmBundle(lab: Lab): Promise<{ script: string; operatorPath: string }> {
  const nvm = join(lab.tmp, 'nvm', 'bin');
  await mkdir(nvm, { recursive: true });
  await symlink(process.execPath, join(nvm, 'node-nvm'));
  const text = await readFile(BUNDLE, 'utf8');
  const dir = join(lab.tmp, 'build');
  await mkdir(dir);
  const script = join(dir, 'masq-janitor');
  await writeFile(script, text.replace(/^#!.*\n/, '#!/usr/bin/env node-nvm\n'));
  await chmod(script, 0o755);
  return { script, operatorPath: `${nvm}:${variantPath(lab.toolchain.variant)}` };
}

async function cli(args: readonly string[], path: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(process.execPath, [BUNDLE, ...args], { env: { PATH: path } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('issue 10: bridge DEL always runs and the IP is released (iptables-nft, Debian bridge + host-local)', () => {
  it('an invalid janitor key (a typo added after the container started): cleanup with the defaults, exit 0, bridge releases the IP', () =>
    withLab('nft', async (lab) => {
      const host = lab.cni;
      const list = lab.bridgeList();
      const c = await started(lab, host, list);
      const typo = withJanitor(list, { type: 'masq-janitor', logfile: join(lab.tmp, 'mj.log') });
      const out = await stopped(lab, host, typo, c);
      expectBridgeReleased(out);
      expect(out.calls[0]?.stderr).toMatch(/unknown masq-janitor key "logfile"/);
      expect(await reservations(lab)).toEqual([]);
      expectNoMasq(lab, await lab.snapshot(), c.ctr.id);
      // Control: with a valid "strict": true the same typo fails DEL, and bridge never runs.
      const c2 = await started(lab, host, list);
      const strict = await stopped(lab, host, withJanitor(list, { type: 'masq-janitor', strict: true, logfile: '/x' }), c2);
      expect(strict.failure?.plugin).toBe('masq-janitor');
      expect(strict.calls.map((x) => x.plugin)).toEqual(['masq-janitor']);
    }));

  it('a janitor internal error: said on stderr, exit 0, bridge releases the IP', () =>
    withLab('nft', async (lab) => {
      // The fault is asked for through a variable only tests set; the wrapper stands where the plugin would.
      const bin = join(lab.tmp, 'faulty-bin');
      await mkdir(bin);
      await writeFile(join(bin, 'masq-janitor'), `#!/bin/sh\nMASQ_JANITOR_TEST_FAULT=DEL exec ${process.execPath} ${BUNDLE} "$@"\n`);
      await chmod(join(bin, 'masq-janitor'), 0o755);
      const host = runtime(lab, `${UPSTREAM_CNI_DIR}:${bin}`);
      const list = lab.bridgeList();
      const c = await started(lab, host, list);
      const out = await stopped(lab, host, list, c);
      expectBridgeReleased(out);
      expect(out.calls[0]?.stderr).toMatch(/internal error/);
      expect(out.calls[0]?.stdout).toBe('');
      expect(await reservations(lab)).toEqual([]);
    }));

  it('the script bundle where the runtime PATH has no node: install refuses and changes nothing, so bridge still releases the IP', () =>
    withLab('nft', async (lab) => {
      const { script, operatorPath } = await nvmBundle(lab);
      const conf = join(lab.tmp, 'net.d');
      const bin = join(lab.tmp, 'bin');
      await mkdir(conf);
      await mkdir(bin);
      const file = join(conf, '10-lab.conflist');
      const plain = lab.bridgeList({ janitor: false });
      await writeFile(file, JSON.stringify(plain));
      // The runtime: systemd's PATH for its service, which has no node-nvm.
      const host = runtime(lab, `${UPSTREAM_CNI_DIR}:${bin}`, variantPath(lab.toolchain.variant));

      const r = await cli(['install', '--script', '--from', script, '--conf-dir', conf, '--bin-dir', bin], operatorPath);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/node-nvm.*No such file or directory/);
      expect(await readdir(bin)).toEqual([]);
      const onDisk = JSON.parse(await readFile(file, 'utf8')) as Conflist;
      expect(onDisk).toEqual(plain);
      const c = await started(lab, host, onDisk);
      const out = await stopped(lab, host, onDisk, c);
      expectDelOk(out);
      expect(out.calls.map((x) => `${x.plugin} ${x.exitCode}`)).toEqual(['bridge 0']);
      expect(await reservations(lab)).toEqual([]);

      // Control: what README step 1 did (copy it by hand, append the janitor): every DEL fails at the janitor (exit 127).
      await copyFile(script, join(bin, 'masq-janitor'));
      await chmod(join(bin, 'masq-janitor'), 0o755);
      const named = withJanitor(plain, { type: 'masq-janitor' });
      const c2 = await addNetworkList(runtime(lab, `${UPSTREAM_CNI_DIR}:${bin}`, variantPath(lab.toolchain.variant)), lab.bridgeList({ janitor: false }), {
        containerId: 'default-control',
        netns: (await lab.container('default-control')).ns.path,
        ifname: IFNAME,
      });
      expect(c2.failure).toBeUndefined();
      const broken = await delNetworkList(host, named, { containerId: 'default-control', netns: '', ifname: IFNAME }, { cachedResult: c2.result });
      expect(broken.failure?.plugin).toBe('masq-janitor');
      expect(broken.failure?.exitCode).toBe(127);
      expect(broken.calls.map((x) => x.plugin)).toEqual(['masq-janitor']);
      expect(await reservations(lab)).toHaveLength(1);
    }));

  it('uninstall --remove-binary while a cached config names the janitor: the binary stays, so the DEL from the cache still reaches bridge', () =>
    withLab('nft', async (lab) => {
      const conf = join(lab.tmp, 'net.d');
      const bin = join(lab.tmp, 'bin');
      const state = join(lab.tmp, 'state');
      await mkdir(conf);
      await mkdir(bin);
      await mkdir(join(state, 'results'), { recursive: true });
      await copyFile(BUNDLE, join(bin, 'masq-janitor'));
      await chmod(join(bin, 'masq-janitor'), 0o755);
      const host = runtime(lab, `${UPSTREAM_CNI_DIR}:${bin}`);
      // Exactly what install appends.
      const list = withJanitor(lab.bridgeList({ janitor: false }), { type: 'masq-janitor' });
      const file = join(conf, '10-lab.conflist');
      const bytes = JSON.stringify(list);
      await writeFile(file, bytes);
      const c = await started(lab, host, list);
      // What libcni caches at ADD (cacheAdd): the list's bytes, base64, in field `config`.
      const entry = join(state, 'results', `${lab.network}-${c.ctr.id}-${IFNAME}`);
      await writeFile(entry, JSON.stringify({ kind: 'cniCacheV1', containerId: c.ctr.id, config: Buffer.from(bytes).toString('base64'), ifName: IFNAME, networkName: lab.network, result: c.result }));

      const r = await cli(['uninstall', '--conf-dir', conf, '--bin-dir', bin, '--state-dir', state, '--remove-binary'], lab.toolchain.path);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain(entry);
      expect(r.stderr).toMatch(/remove or restart those containers/);
      expect(await readdir(bin)).toEqual(['masq-janitor']);
      // The file on disk no longer names it; the teardown uses the cached config, which does.
      expect(((JSON.parse(await readFile(file, 'utf8')) as Conflist).plugins).map((p) => p.type)).toEqual(['bridge']);
      const cached = JSON.parse(Buffer.from((JSON.parse(await readFile(entry, 'utf8')) as { config: string }).config, 'base64').toString('utf8')) as Conflist;
      const out = await stopped(lab, host, cached, c);
      expectBridgeReleased(out);
      expect(await reservations(lab)).toEqual([]);

      // Control: had the binary gone, the cached DEL fails before bridge and the IP stays reserved.
      const c2 = await started(lab, host, list);
      await unlink(join(bin, 'masq-janitor'));
      const broken = await stopped(lab, host, cached, c2);
      expect(broken.failure?.plugin).toBe('masq-janitor');
      expect(broken.calls.map((x) => x.plugin)).toEqual(['masq-janitor']);
      expect(await reservations(lab)).toHaveLength(1);
    }));
});
