import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Conflist, JsonObject } from '../../support/conflist.js';
import { nsExec } from '../../support/netns.js';
import { describeProc, type ProcResult } from '../../support/proc.js';
import { VARIANTS, type Tables } from '../../support/xtables.js';
import { e2eSuite, expectForeignIntact } from '../support/expect.js';
import { explain } from '../support/cni.js';
import { masqState } from '../support/iptables.js';
import { IFNAME, JANITOR_DIR, withLab, type Container, type Lab } from '../support/lab.js';
import { addWithPorts, delWithPorts, dnatState, installForeignDnat, NO_DNAT, withPortmap, type PortMapping } from './support.js';

/**
 * GC and sweep with hostport state, on a host made by the real Debian bridge + portmap: orphans that leaked
 * masquerade and hostport state (DEL with CNI_NETNS="" and no portMappings),
 * masquerade only (no ports published), hostport only (bridge cleaned up with
 * the netns alive, portmap returned at once), and live, recorded containers,
 * one of them publishing the same host port as an orphan.
 */

e2eSuite();

const tcp = (hostPort: number): PortMapping[] => [{ hostPort, containerPort: 80, protocol: 'tcp' }];

interface World {
  readonly list: Conflist;
  readonly stateDir: string;
  /** masquerade + hostport, hostport only, masquerade only */
  readonly orphans: { both: Container; hostportOnly: Container; masqOnly: Container };
  /** Recorded: `same` publishes the orphan `both`'s host port 8080. */
  readonly live: { same: Container; other: Container };
  readonly before: Tables;
}

/** libcni's result cache entry for a live attachment: the record sweep trusts. */
function cache(lab: Lab, stateDir: string, list: Conflist, c: Container, result: JsonObject): void {
  const config = Buffer.from(JSON.stringify(list)).toString('base64');
  const entry = { kind: 'cniCacheV1', containerId: c.id, config, ifName: IFNAME, networkName: list.name, netns: c.ns.path, cniArgs: null, result };
  writeFileSync(join(stateDir, 'results', `${list.name}-${c.id}-${IFNAME}`), JSON.stringify(entry));
}

async function world(lab: Lab): Promise<World> {
  await installForeignDnat(lab, [4, 6]);
  const list = withPortmap(lab.bridgeList({ janitor: false, dualStack: true }));
  const stateDir = join(lab.tmp, 'cni');
  mkdirSync(join(stateDir, 'results'), { recursive: true });
  const leak = async (ports: readonly PortMapping[] | undefined, mode: 'empty' | 'alive'): Promise<Container> => {
    const c = await lab.container();
    const r = await addWithPorts(lab, list, c, ports);
    const out = await delWithPorts(lab, list, c, mode, r, undefined);
    if (out.failure) throw new Error(`leak DEL failed at ${out.failure.plugin}`);
    return c;
  };
  const both = await leak(tcp(8080), 'empty');
  const hostportOnly = await leak(tcp(9090), 'alive');
  const masqOnly = await leak(undefined, 'empty');
  const same = await lab.container();
  cache(lab, stateDir, list, same, await addWithPorts(lab, list, same, tcp(8080)));
  const other = await lab.container();
  cache(lab, stateDir, list, other, await addWithPorts(lab, list, other, tcp(7070)));
  return { list, stateDir, orphans: { both, hostportOnly, masqOnly }, live: { same, other }, before: await lab.snapshot() };
}

/** Scoped to the lab's network: the lab's foreign rules of another network have no records here, by design. */
function sweep(lab: Lab, args: readonly string[]): Promise<ProcResult> {
  return nsExec(lab.host, 'env', ['-i', `PATH=${lab.toolchain.path}`, join(JANITOR_DIR, 'masq-janitor'), 'sweep', '--network', lab.network, ...args]);
}

function gc(lab: Lab, valid: readonly Container[]): Promise<ProcResult> {
  const conf = { cniVersion: '1.1.0', name: lab.network, type: 'masq-janitor', 'cni.dev/valid-attachments': valid.map((c) => ({ containerID: c.id, ifname: IFNAME })) };
  return nsExec(lab.host, join(JANITOR_DIR, 'masq-janitor'), [], {
    input: JSON.stringify(conf),
    env: { PATH: lab.toolchain.path, CNI_COMMAND: 'GC', CNI_CONTAINERID: '', CNI_NETNS: '', CNI_IFNAME: '', CNI_ARGS: '', CNI_PATH: lab.cni.cniPath },
  });
}

interface ConflictJson {
  family: number;
  proto: string;
  port: number;
  holders: { where: string; network?: string; containerId?: string; recorded: boolean; destination: string }[];
}

/** Everything of the orphans is gone, in both families; every live container's state is as it was. */
function expectOnlyOrphansGone(lab: Lab, w: World, after: Tables): void {
  for (const f of ['v4', 'v6'] as const) {
    for (const c of Object.values(w.orphans)) {
      expect(dnatState(after[f], lab.network, c.id), `${c.id} hostport (${f})`).toEqual(NO_DNAT);
      expect(masqState(after[f], lab.network, c.id), `${c.id} masquerade (${f})`).toEqual({ chainDeclared: false, jumps: [], chainRules: [] });
    }
    for (const c of Object.values(w.live)) {
      expect(dnatState(after[f], lab.network, c.id), `${c.id} hostport (${f})`).toEqual(dnatState(w.before[f], lab.network, c.id));
      expect(masqState(after[f], lab.network, c.id), `${c.id} masquerade (${f})`).toEqual(masqState(w.before[f], lab.network, c.id));
    }
    // portmap's shared chains stay.
    for (const shared of [':CNI-HOSTPORT-DNAT ', ':CNI-HOSTPORT-SETMARK ', ':CNI-HOSTPORT-MASQ ']) expect(after[f]).toContain(shared);
  }
  expectForeignIntact(lab, after);
}

describe.each(VARIANTS)('iptables-%s: sweep and GC with hostport and masquerade orphans', (variant) => {
  it('the scene: each orphan leaked what it should', () =>
    withLab(variant, async (lab) => {
      const w = await world(lab);
      expect(dnatState(w.before.v4, lab.network, w.orphans.both.id).entries).toHaveLength(1);
      expect(masqState(w.before.v4, lab.network, w.orphans.both.id).chainDeclared).toBe(true);
      expect(dnatState(w.before.v4, lab.network, w.orphans.hostportOnly.id).entries).toHaveLength(1);
      expect(masqState(w.before.v4, lab.network, w.orphans.hostportOnly.id).chainDeclared).toBe(false);
      expect(dnatState(w.before.v4, lab.network, w.orphans.masqOnly.id)).toEqual(NO_DNAT);
    }));

  it('sweep dry run: reports the stale port 8080 (orphaned vs recorded) in --json and text, changes nothing, exits 1', () =>
    withLab(variant, async (lab) => {
      const w = await world(lab);
      const r = await sweep(lab, ['--json', '--state-dir', w.stateDir]);
      expect(r.exitCode, describeProc(r)).toBe(1);
      const report = JSON.parse(r.stdout) as { portConflicts: ConflictJson[]; orphans: { containerId: string }[] };
      const c8080 = report.portConflicts.filter((c) => c.port === 8080 && c.proto === 'tcp' && c.family === 4);
      expect(c8080).toHaveLength(1);
      const holders = (c8080[0] as ConflictJson).holders.map((h) => `${h.containerId}=${h.recorded ? 'recorded' : 'orphaned'}`).sort();
      expect(holders).toEqual([`${w.orphans.both.id}=orphaned`, `${w.live.same.id}=recorded`].sort());
      expect(report.portConflicts.some((c) => c.port === 7070 || c.port === 9090)).toBe(false);
      expect(new Set(report.orphans.map((o) => o.containerId))).toEqual(new Set(Object.values(w.orphans).map((c) => c.id)));

      const text = await sweep(lab, ['--state-dir', w.stateDir]);
      expect(text.exitCode, describeProc(text)).toBe(1);
      expect(text.stdout).toMatch(/8080\/tcp \(v4\)/);
      expect(text.stdout).toContain('orphaned');
      expect(await lab.snapshot()).toEqual(w.before);
    }));

  it('sweep --apply: everything orphaned goes (both kinds, both families), nothing recorded is touched; then nothing is left to report', () =>
    withLab(variant, async (lab) => {
      const w = await world(lab);
      const r = await sweep(lab, ['--apply', '--json', '--state-dir', w.stateDir]);
      expect(r.exitCode, describeProc(r)).toBe(0);
      expectOnlyOrphansGone(lab, w, await lab.snapshot());
      const again = await sweep(lab, ['--json', '--state-dir', w.stateDir]);
      expect(again.exitCode, describeProc(again)).toBe(0);
      expect((JSON.parse(again.stdout) as { portConflicts: unknown[] }).portConflicts).toEqual([]);
    }));

  it('GC with the live containers valid: the same result', () =>
    withLab(variant, async (lab) => {
      const w = await world(lab);
      const r = await gc(lab, Object.values(w.live));
      expect({ exitCode: r.exitCode, stdout: r.stdout }, describeProc(r)).toEqual({ exitCode: 0, stdout: '' });
      expectOnlyOrphansGone(lab, w, await lab.snapshot());
    }));

  it('after sweep --apply, a live container still DELs cleanly with portmap', () =>
    withLab(variant, async (lab) => {
      const w = await world(lab);
      expect((await sweep(lab, ['--apply', '--state-dir', w.stateDir])).exitCode).toBe(0);
      const out = await delWithPorts(lab, w.list, w.live.same, 'alive', undefined, tcp(8080));
      expect(out.failure, explain(out)).toBeUndefined();
      expect(dnatState((await lab.snapshot()).v4, lab.network, w.live.same.id)).toEqual(NO_DNAT);
    }));
});
