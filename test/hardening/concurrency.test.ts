import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printFigures, recordFigures } from './support/figures.js';
import { JANITOR } from '../support/guard.js';
import { createNetns, nsExec, randomHex, removeAllNetns, removeNetns, type Netns } from '../support/netns.js';
import { pool, SYSTEM_PATH } from '../support/proc.js';
import { loadNft, restore, snapshot, type Tables } from '../support/xtables.js';
import { lineDiff, rootMentions } from './support/host.js';
import { bridgeState, chainOf } from './support/ref.js';

/**
 * Concurrency with the real Debian bridge + host-local (containernetworking-plugins
 * 1.1.1, /usr/lib/cni) and dist/masq-janitor, run the way libcni runs a
 * conflist: ADD bridge then janitor (given bridge's result as prevResult);
 * DEL janitor then bridge, both given the final ADD result. Everything runs
 * inside a throwaway "host" namespace that already holds 2,000 other
 * networks' CNI chains. The janitor is strict, so any cleanup failure is a
 * DEL failure.
 */

const CONTAINERS = 50;
const DOUBLE_DEL = 8;
const LIMIT = 10;
const FOREIGN_CHAINS = 2000;
const NETWORK = `mjh-conc-${randomHex(2)}`;
const BRIDGE = `mjc${randomHex(2)}`;
const CNI_PATH = `/usr/lib/cni:${dirname(JANITOR)}`;
const PATH = `${SYSTEM_PATH}:${dirname(process.execPath)}`;

let tmp = '';
let host: Netns;
let pristine: Tables;
const figures = { pluginCalls: 0, maxInFlight: 0, adds: 0, dels: 0, doubleDels: 0, bridgeDoubleDelRaces: 0, delFailures: 0, addFailures: 0, leakedChains: 0, leakedRules: 0, foreignTouched: 0, ipamLeft: 0, janitorWarnings: 0, seconds: 0 };
let inFlight = 0;

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function conflist(): { cniVersion: string; name: string; plugins: JsonObject[] } {
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.123.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(tmp, 'ipam') },
      },
      { type: 'masq-janitor', strict: true, lockWait: 30, logFile: join(tmp, 'janitor.log'), logLevel: 'warn' },
    ],
  };
}

interface Call {
  readonly plugin: string;
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

async function invoke(command: 'ADD' | 'DEL', index: number, containerId: string, netns: string, prevResult: JsonObject | undefined): Promise<Call> {
  const list = conflist();
  const plugin = list.plugins[index] as JsonObject;
  const stdin = JSON.stringify({ ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prevResult ? { prevResult } : {}) });
  const type = String(plugin.type);
  const file = type === 'masq-janitor' ? JANITOR : `/usr/lib/cni/${type}`;
  inFlight++;
  figures.maxInFlight = Math.max(figures.maxInFlight, inFlight);
  figures.pluginCalls++;
  try {
    const r = await nsExec(host, file, [], {
      input: stdin,
      timeoutMs: 120_000,
      env: { PATH, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_ARGS: '', CNI_PATH },
    });
    return { plugin: type, command, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  } finally {
    inFlight--;
  }
}

/** libcni AddNetworkList: plugins in order, each given the previous result. */
async function addList(containerId: string, netns: string): Promise<{ result: JsonObject | undefined; failure: string | undefined }> {
  let prev: JsonObject | undefined;
  for (let i = 0; i < 2; i++) {
    const c = await invoke('ADD', i, containerId, netns, prev);
    if (c.exitCode !== 0) return { result: undefined, failure: `ADD ${c.plugin} exit ${c.exitCode}: ${c.stdout} ${c.stderr.slice(0, 300)}` };
    prev = JSON.parse(c.stdout) as JsonObject;
  }
  return { result: prev, failure: undefined };
}

/** libcni DelNetworkList: plugins in reverse, each given the cached final ADD result; stops at the first failure. */
async function delList(containerId: string, netns: string, cached: JsonObject | undefined): Promise<string | undefined> {
  for (let i = 1; i >= 0; i--) {
    const c = await invoke('DEL', i, containerId, netns, cached);
    if (c.exitCode !== 0) return `DEL ${c.plugin} exit ${c.exitCode}: ${c.stdout} ${c.stderr.slice(0, 300)}`;
  }
  return undefined;
}

/** Other networks' CNI state, 2,000 attachments in bridge's exact shape, loaded with one restore. */
function foreignLoad(): string {
  const declares: string[] = [':KUBE-POSTROUTING - [0:0]', ':DOCKER - [0:0]'];
  const rules: string[] = ['-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING', '-A POSTROUTING -s 192.168.55.0/24 -j MASQUERADE', '-A DOCKER -i docker0 -j RETURN'];
  for (let i = 0; i < FOREIGN_CHAINS; i++) {
    const s = bridgeState(4, `other-${i % 7}`, `ctr-${i}`, `10.200.${i >> 8}.${i & 255}`, '10.200.0.0/16');
    declares.push(s.declare);
    rules.push(s.jump, ...s.rules);
  }
  // The same container IDs this test uses, on another network: they must survive every DEL here.
  for (let i = 0; i < CONTAINERS; i++) {
    const s = bridgeState(4, 'other-shared', containerId(i), `10.201.0.${i + 2}`, '10.201.0.0/24');
    declares.push(s.declare);
    rules.push(s.jump, ...s.rules);
  }
  return ['*nat', ...declares, ...rules, 'COMMIT', '*filter', '-A FORWARD -s 10.200.0.0/16 -j ACCEPT', 'COMMIT', ''].join('\n');
}

const ids = Array.from({ length: CONTAINERS + DOUBLE_DEL }, () => randomHex(8));
const containerId = (i: number): string => `default-${ids[i]}`;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mjh-conc-'));
  host = await createNetns('mjh-conc-host');
  await nsExec(host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await restore(host, SYSTEM_PATH, 4, foreignLoad());
  await loadNft(host, 'table inet cni_plugins_masquerade {\n chain masq_checks {\n  ip saddr 10.200.0.9 masquerade comment "user rule"\n }\n}\n');
  pristine = await snapshot(host, SYSTEM_PATH);
  expect(pristine.v4.split('\n').filter((l) => /^:CNI-[0-9a-f]{24} /.test(l)).length).toBe(FOREIGN_CHAINS + CONTAINERS);
}, 120_000);

afterAll(async () => {
  await removeAllNetns();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  const f = {
    'containers (ADD bridge+janitor, DEL janitor+bridge)': figures.adds,
    'foreign CNI chains present (other networks, one restore)': FOREIGN_CHAINS + CONTAINERS,
    'DEL chains run (half CNI_NETNS="" after the netns is gone, half alive)': figures.dels,
    'same-container DELs run twice concurrently': figures.doubleDels,
    "bridge's own race in a concurrent double DEL (netns alive; not counted as a failure)": figures.bridgeDoubleDelRaces,
    'plugin invocations (concurrent operations)': figures.pluginCalls,
    'most plugin processes in flight at once': figures.maxInFlight,
    'ADD failures': figures.addFailures,
    'DEL failures (strict janitor: any cleanup failure counts)': figures.delFailures,
    'leaked chains': figures.leakedChains,
    'leaked rules': figures.leakedRules,
    'foreign rules touched': figures.foreignTouched,
    'IPAM reservations left': figures.ipamLeft,
    'janitor log lines at warn or worse': figures.janitorWarnings,
    'wall time (s)': figures.seconds.toFixed(1),
  };
  printFigures('concurrency', f);
  await recordFigures('concurrency', f);
});

describe(`concurrency: ${CONTAINERS} containers through bridge + host-local + masq-janitor, ${LIMIT} at a time, ${FOREIGN_CHAINS} foreign chains present`, () => {
  it('concurrent ADD/DEL (half with the netns gone and CNI_NETNS="", half alive) and double DELs: no leak, no DEL failure, no foreign rule touched, IPAM empty', async () => {
    const t0 = performance.now();
    const failures: string[] = [];
    const containers = await pool(Array.from({ length: CONTAINERS + DOUBLE_DEL }, (_, i) => i), LIMIT, async (i) => createNetns(`mjh-cc${i}`));

    // Phase 1: every container's ADD then DEL, LIMIT lifecycles at a time, so ADDs and DELs of different containers interleave.
    const doubles: { i: number; result: JsonObject }[] = [];
    await pool(Array.from({ length: CONTAINERS + DOUBLE_DEL }, (_, i) => i), LIMIT, async (i) => {
      const ns = containers[i] as Netns;
      const add = await addList(containerId(i), ns.path);
      figures.adds++;
      if (!add.result) {
        figures.addFailures++;
        failures.push(`container ${i}: ${add.failure ?? '?'}`);
        return;
      }
      if (i >= CONTAINERS) {
        doubles.push({ i, result: add.result });
        return;
      }
      const gone = i % 2 === 0;
      if (gone) await removeNetns(ns);
      const failure = await delList(containerId(i), gone ? '' : ns.path, add.result);
      figures.dels++;
      if (failure) {
        figures.delFailures++;
        failures.push(`container ${i} (${gone ? 'netns gone, CNI_NETNS=""' : 'netns alive'}): ${failure}`);
      }
    });

    // Phase 2: the same container DEL'd twice at the same time (as two runtimes, or a retry racing the first try).
    await pool(doubles, LIMIT, async ({ i, result }) => {
      const ns = containers[i] as Netns;
      const gone = i % 2 === 0;
      if (gone) await removeNetns(ns);
      const both = await Promise.all([delList(containerId(i), gone ? '' : ns.path, result), delList(containerId(i), gone ? '' : ns.path, result)]);
      figures.dels += 2;
      figures.doubleDels++;
      for (const f of both) {
        // bridge's own race, not the janitor's: two bridge DELs in a live netns both find eth0, one deletes it and
        // the other's delete fails (upstream DelLinkByNameAddr). The janitor ran first in both and succeeded.
        if (f && !gone && /DEL bridge exit 1: .*failed to delete \\?"eth0\\?": no such device/s.test(f)) {
          figures.bridgeDoubleDelRaces++;
          continue;
        }
        if (f) {
          figures.delFailures++;
          failures.push(`double DEL of container ${i} (${gone ? 'netns gone' : 'netns alive'}): ${f}`);
        }
      }
    });
    figures.seconds = (performance.now() - t0) / 1000;
    for (const ns of containers) await removeNetns(ns);

    // Tables: exactly what they were before any container (every janitor/bridge change undone, nothing foreign touched).
    const after = await snapshot(host, SYSTEM_PATH);
    const ours = (t: string): string[] => t.split('\n').filter((l) => ids.some((id) => l.includes(`id: \\"default-${id}\\"`) && l.includes(`name: \\"${NETWORK}\\"`)));
    figures.leakedRules = ours(after.v4).length + ours(after.v6).length;
    figures.leakedChains = ids.filter((_, i) => after.v4.includes(`:${chainOf(NETWORK, containerId(i))} `) || after.v6.includes(`:${chainOf(NETWORK, containerId(i))} `)).length;
    const pristineLines = new Set([...pristine.v4.split('\n'), ...pristine.v6.split('\n')]);
    const afterLines = new Set([...after.v4.split('\n'), ...after.v6.split('\n')]);
    figures.foreignTouched = [...pristineLines].filter((l) => !afterLines.has(l)).length;

    // IPAM: host-local keeps one file per reserved IP; none may be left.
    const ipamDir = join(tmp, 'ipam', NETWORK);
    const left = existsSync(ipamDir) ? readdirSync(ipamDir).filter((f) => isIP(f) !== 0) : [];
    figures.ipamLeft = left.length;

    const log = existsSync(join(tmp, 'janitor.log')) ? readFileSync(join(tmp, 'janitor.log'), 'utf8') : '';
    const warnings = log.split('\n').filter((l) => /"level":(4|5|6)\d/.test(l));
    figures.janitorWarnings = warnings.length;

    expect(failures, failures.join('\n')).toEqual([]);
    for (const k of ['v4', 'v6', 'nft'] as const) expect(after[k], `${k} differs from the state before any container:\n${lineDiff(pristine[k], after[k])}`).toBe(pristine[k]);
    expect(figures.leakedChains).toBe(0);
    expect(figures.leakedRules).toBe(0);
    expect(left, `IPAM reservations left in ${ipamDir}`).toEqual([]);
    expect(warnings, 'janitor warnings').toEqual([]);
    expect(figures.adds).toBe(CONTAINERS + DOUBLE_DEL);
  }, 240_000);

  it('control: the same harness without masq-janitor sees the leak (bridge 1.1.1, netns gone, CNI_NETNS="")', async () => {
    const before = await snapshot(host, SYSTEM_PATH);
    const id = `default-control-${randomHex(4)}`;
    const ns = await createNetns('mjh-cc-ctl');
    const add = await invoke('ADD', 0, id, ns.path, undefined);
    expect(add.exitCode, add.stderr).toBe(0);
    await removeNetns(ns);
    const del = await invoke('DEL', 0, id, '', JSON.parse(add.stdout) as JsonObject);
    expect(del.exitCode, del.stderr).toBe(0);
    const after = await snapshot(host, SYSTEM_PATH);
    const chain = chainOf(NETWORK, id);
    expect(after.v4, 'bridge alone leaves the chain behind').toContain(`:${chain} `);
    // Clean the control's leak with the janitor itself, then the tables are as before.
    const janitorDel = await invoke('DEL', 1, id, '', JSON.parse(add.stdout) as JsonObject);
    expect(janitorDel.exitCode, janitorDel.stdout).toBe(0);
    const cleaned = await snapshot(host, SYSTEM_PATH);
    expect(cleaned.v4, lineDiff(before.v4, cleaned.v4)).toBe(before.v4);
  }, 60_000);

  it('the root network namespace never saw any of this', async () => {
    expect(await rootMentions()).toEqual([]);
  });
});
