import { describe, expect, it } from 'vitest';
import { applySelection, applyToTable, chunkSize, readHostState, type HostState, type TableState } from '../../src/apply/selection.js';
import { xtables } from '../../src/backends/xtables.js';
import { chainName, nftComment, type Attachment } from '../../src/identity.js';
import { planSelection } from '../../src/plan/iptables-plan.js';
import { parseSave } from '../../src/plan/iptables-save.js';
import { planNftGc, planNftSelection } from '../../src/plan/nft-plan.js';
import { parseNftListing, type NftRule } from '../../src/plan/nft-rules.js';
import { renderRestore } from '../../src/plan/restore-text.js';
import { fakeRunner, type Call } from '../support/fake-runner.js';
import { applyRestore, bridgeRules, toSave, type NatModel } from '../support/nat-model.js';

const att = (containerId: string, network = 'bridge'): Attachment => ({ network, containerId });
const A = att('c-a');
const B = att('c-b');
const C = att('c-c', 'podman');

function model(...as: Attachment[]): NatModel {
  const parts = as.map((a, i) => bridgeRules(a, `10.4.0.${i + 2}`, '10.4.0.0/24'));
  return { chains: parts.map((p) => p.chain), rules: parts.flatMap((p) => p.rules) };
}

function nftListing(entries: { handle: number; network: string; ifname: string; id: string }[]): string {
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      ...entries.map((e) => ({
        rule: { family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks', handle: e.handle, comment: nftComment(e.network, e.ifname, e.id), expr: [{ masquerade: null }] },
      })),
    ],
  });
}

const NO_TABLE = { exitCode: 1, stderr: 'Error: No such file or directory\nlist chain inet cni_plugins_masquerade masq_checks\n                ^^^^^^^^^^^^^^^^^^^^^^\n' };
const isRestore = (c: Call): boolean => c.file.endsWith('-restore');
const noop = (): void => {};

describe('chunkSize', () => {
  it('batches legacy big (it pays per batch) and iptables-nft small (deletes grow super-linearly)', () => {
    expect(chunkSize(xtables(4, 'legacy'))).toBe(20_000);
    expect(chunkSize(xtables(6, 'legacy'))).toBe(20_000);
    expect(chunkSize(xtables(4, 'nft'))).toBe(1_000);
    expect(chunkSize(xtables(4))).toBe(1_000);
  });
});

describe('readHostState', () => {
  it('reads the nft chain and every variant’s nat table', async () => {
    const m = model(A);
    const run = fakeRunner((file) => {
      if (file === 'nft') return { stdout: nftListing([{ handle: 4, network: 'bridge', ifname: 'eth0', id: 'c-a' }]) };
      if (file === 'iptables-legacy-save') return { stdout: toSave(m) };
      return { stdout: toSave({ chains: [], rules: [] }) };
    });
    const state = await readHostState(run, [xtables(4, 'nft'), xtables(4, 'legacy'), xtables(6, 'nft')]);
    expect(state.errors).toEqual([]);
    expect(state.tables.map((t) => t.xt.base)).toEqual(['iptables-nft', 'iptables-legacy', 'ip6tables-nft']);
    expect(state.tables[1]?.snapshot.chains.has(chainName(A))).toBe(true);
    expect(state.nft?.map((r) => r.handle)).toEqual([4]);
    expect(run.calls.map((c) => [c.file, ...c.args].join(' ')).sort()).toEqual([
      'ip6tables-nft-save -t nat',
      'iptables-legacy-save -t nat',
      'iptables-nft-save -t nat',
      'nft -j list chain inet cni_plugins_masquerade masq_checks',
    ]);
  });

  it('a missing nft table is no rules; a missing tool is silently nothing; a failing save is an error', async () => {
    const run = fakeRunner((file) => {
      if (file === 'nft') return NO_TABLE;
      if (file === 'ip6tables-legacy-save') return { exitCode: undefined, notFound: true, stderr: 'spawn ip6tables-legacy-save ENOENT' };
      if (file === 'iptables-legacy-save') return { exitCode: 1, stderr: 'iptables-legacy-save: something broke\n' };
      return { stdout: toSave({ chains: [], rules: [] }) };
    });
    const state = await readHostState(run, [xtables(4, 'nft'), xtables(4, 'legacy'), xtables(6, 'legacy')]);
    expect(state.nft).toEqual([]);
    expect(state.tables.map((t) => t.xt.base)).toEqual(['iptables-nft']);
    expect(state.errors).toHaveLength(1);
    expect(state.errors[0]).toMatch(/iptables-legacy.*exit 1/);
  });

  it('no nft binary leaves nft undefined without an error; unreadable nft output is an error', async () => {
    const missing = await readHostState(fakeRunner((file) => (file === 'nft' ? { exitCode: undefined, notFound: true } : undefined)), []);
    expect(missing.nft).toBeUndefined();
    expect(missing.errors).toEqual([]);
    const garbled = await readHostState(fakeRunner((file) => (file === 'nft' ? { stdout: '{"nftables": [' } : undefined)), []);
    expect(garbled.nft).toBeUndefined();
    expect(garbled.errors[0]).toMatch(/unreadable JSON/);
  });
});

describe('applyToTable', () => {
  const doomedA = (a: Attachment): boolean => a.containerId === 'c-a';

  it('applies the selection as one restore transaction with the lock wait', async () => {
    const m = model(A, B, C);
    const state: TableState = { xt: xtables(4, 'legacy'), snapshot: parseSave(toSave(m)) };
    const run = fakeRunner();
    const r = await applyToTable(run, state, doomedA, 7, noop);
    expect(r).toEqual({ ok: true, value: { table: 'iptables-legacy nat', jumps: 1, chains: 1, transactions: 1 } });
    expect(run.calls).toHaveLength(1);
    expect(run.calls[0]?.file).toBe('iptables-legacy-restore');
    expect(run.calls[0]?.args).toEqual(['-w', '7', '--noflush']);
    expect(run.calls[0]?.input).toBe(renderRestore(planSelection(state.snapshot, doomedA)));
    expect(applyRestore(m, run.calls[0]?.input ?? '')).toEqual({ chains: m.chains.filter((c) => c !== chainName(A)), rules: m.rules.filter((l) => !l.includes(chainName(A))) });
  });

  it('does nothing (no process) when nothing is selected', async () => {
    const run = fakeRunner();
    const r = await applyToTable(run, { xt: xtables(4), snapshot: parseSave(toSave(model(B))) }, doomedA, 5, noop);
    expect(r).toEqual({ ok: true, value: { table: 'iptables nat', jumps: 0, chains: 0, transactions: 0 } });
    expect(run.calls).toEqual([]);
  });

  it('a failed batch re-reads the table and re-plans what is left', async () => {
    const stale = model(A, B);
    const fresh = model(B); // someone removed A, added nothing: B is left, and still doomed
    let restores = 0;
    const run = fakeRunner((file) => {
      if (file.endsWith('-restore')) return ++restores === 1 ? { exitCode: 1, stderr: 'iptables-restore: line 4 failed\n' } : undefined;
      if (file.endsWith('-save')) return { stdout: toSave(fresh) };
      return undefined;
    });
    const progress: string[] = [];
    const r = await applyToTable(run, { xt: xtables(4, 'nft'), snapshot: parseSave(toSave(stale)) }, () => true, 5, (l) => progress.push(l));
    expect(r).toEqual({ ok: true, value: { table: 'iptables-nft nat', jumps: 1, chains: 1, transactions: 1 } });
    expect(run.calls.map((c) => c.file)).toEqual(['iptables-nft-restore', 'iptables-nft-save', 'iptables-nft-restore']);
    expect(run.calls[2]?.input).toContain(chainName(B));
    expect(run.calls[2]?.input).not.toContain(chainName(A));
    expect(progress.join('\n')).toMatch(/re-reading the table/);
  });

  it('gives up after three failed batches, with the last error', async () => {
    const run = fakeRunner((file) => (file.endsWith('-restore') ? { exitCode: 2, stderr: 'boom\n' } : { stdout: toSave(model(A)) }));
    const r = await applyToTable(run, { xt: xtables(4, 'nft'), snapshot: parseSave(toSave(model(A))) }, () => true, 5, noop);
    expect(r.ok).toBe(false);
    expect(run.calls.filter(isRestore)).toHaveLength(3);
  });

  it('a held xtables lock is not retried by re-reading', async () => {
    const run = fakeRunner((file) => (file.endsWith('-restore') ? { exitCode: 4, stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n' } : undefined));
    const r = await applyToTable(run, { xt: xtables(4, 'legacy'), snapshot: parseSave(toSave(model(A))) }, () => true, 5, noop);
    expect(r).toMatchObject({ ok: false, error: { kind: 'lock' } });
    expect(run.calls).toHaveLength(1);
  });

  it('splits a large iptables-nft selection into complete transactions and reports progress', async () => {
    const many = Array.from({ length: 2001 }, (_, i) => att(`c${i}`));
    const parts = many.map((a, i) => bridgeRules(a, `10.${Math.floor(i / 250)}.${i % 250}.2`, '10.0.0.0/8'));
    const m: NatModel = { chains: parts.map((p) => p.chain), rules: parts.flatMap((p) => p.rules) };
    const run = fakeRunner();
    const progress: string[] = [];
    const r = await applyToTable(run, { xt: xtables(4, 'nft'), snapshot: parseSave(toSave(m)) }, () => true, 5, (l) => progress.push(l));
    expect(r).toEqual({ ok: true, value: { table: 'iptables-nft nat', jumps: 2001, chains: 2001, transactions: 3 } });
    // One line announcing the table, then one per transaction.
    expect(progress[0]).toBe('iptables-nft nat: removing 2001 chains and 2001 jumps in 3 transactions');
    expect(progress).toHaveLength(4);
    // Applied in order, the transactions leave an empty table; each one is valid on its own.
    let cur = m;
    for (const c of run.calls) cur = applyRestore(cur, c.input ?? '');
    expect(cur).toEqual({ chains: [], rules: [] });
  });
});

describe('applySelection', () => {
  const nftState = (rules: NftRule[]): NftRule[] => rules;

  it('every table, then nft; one table failing does not stop the others', async () => {
    const m = model(A, C);
    const listing = nftListing([
      { handle: 4, network: 'bridge', ifname: 'eth0', id: 'c-a' },
      { handle: 5, network: 'podman', ifname: 'eth0', id: 'c-c' },
    ]);
    const state: HostState = {
      tables: [
        { xt: xtables(4, 'nft'), snapshot: parseSave(toSave(m)) },
        { xt: xtables(4, 'legacy'), snapshot: parseSave(toSave(m)) },
      ],
      nft: nftState(parseNftListing(listing)),
      errors: ['ip6tables-nft-save: earlier error'],
    };
    const run = fakeRunner((file) => {
      if (file === 'iptables-nft-restore') return { exitCode: 4, stderr: 'iptables-nft-restore: CHAIN_DEL failed (Device or resource busy)\n' };
      if (file === 'iptables-nft-save') return { stdout: toSave(m) };
      if (file === 'nft' && !run.calls.at(-1)?.args.includes('-f')) return { stdout: listing };
      return undefined;
    });
    const doomed = (a: Attachment): boolean => a.network === 'bridge';
    const out = await applySelection(run, state, doomed, (rules) => planNftGc(rules, 'bridge', []), 5);
    expect(out.tables).toEqual([{ table: 'iptables-legacy nat', jumps: 1, chains: 1, transactions: 1 }]);
    expect(out.nftRules).toBe(1);
    expect(out.errors[0]).toBe('ip6tables-nft-save: earlier error');
    expect(out.errors[1]).toMatch(/iptables-nft.*CHAIN_DEL failed/);
    const nftDelete = run.calls.find((c) => c.file === 'nft' && c.args.includes('-f'));
    expect(nftDelete?.input).toBe('delete rule inet cni_plugins_masquerade masq_checks handle 4\n');
  });

  it('never runs nft when its plan is empty, nor when there is no nft', async () => {
    const listing = nftListing([{ handle: 4, network: 'podman', ifname: 'eth0', id: 'c-c' }]);
    const run = fakeRunner();
    const out = await applySelection(run, { tables: [], nft: parseNftListing(listing), errors: [] }, () => true, (r) => planNftGc(r, 'bridge', []), 5);
    expect(out).toEqual({ tables: [], nftRules: 0, errors: [] });
    const out2 = await applySelection(run, { tables: [], nft: undefined, errors: [] }, () => true, (r) => planNftSelection(r, () => true), 5);
    expect(out2).toEqual({ tables: [], nftRules: 0, errors: [] });
    expect(run.calls).toEqual([]);
  });

  it('a handle that vanished between list and delete is re-listed and re-planned', async () => {
    const before = nftListing([
      { handle: 4, network: 'bridge', ifname: 'eth0', id: 'c-a' },
      { handle: 5, network: 'bridge', ifname: 'eth0', id: 'c-b' },
    ]);
    const after = nftListing([{ handle: 5, network: 'bridge', ifname: 'eth0', id: 'c-b' }]);
    // Handle 4 is already gone from the kernel; any listing taken now shows that.
    const run = fakeRunner((file, args, input) => {
      if (file !== 'nft') return undefined;
      if (args.includes('-f')) return input?.includes('handle 4') ? { exitCode: 1, stderr: "Error: Could not process rule: No such file or directory\ndelete rule inet cni_plugins_masquerade masq_checks handle 4\n" } : undefined;
      return { stdout: after };
    });
    const out = await applySelection(run, { tables: [], nft: parseNftListing(before), errors: [] }, () => true, (r) => planNftGc(r, 'bridge', []), 5);
    expect(out).toEqual({ tables: [], nftRules: 1, errors: [] });
    expect(run.calls.filter((c) => c.args.includes('-f')).map((c) => c.input)).toEqual([
      'delete rule inet cni_plugins_masquerade masq_checks handle 4\ndelete rule inet cni_plugins_masquerade masq_checks handle 5\n',
      'delete rule inet cni_plugins_masquerade masq_checks handle 5\n',
    ]);
  });
});
