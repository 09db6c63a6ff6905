import { describe, expect, it } from 'vitest';
import { gateNftListings } from '../../../src/backends/nft/tables.js';
import { fakeRunner } from '../../support/fake-runner.js';

/** DEL's three nft listings cost one process when none of the tables exists (most hosts). */
describe('gateNftListings', () => {
  const tables = (list: [string, string][]) => JSON.stringify({ nftables: [{ metainfo: {} }, ...list.map(([family, name]) => ({ table: { family, name, handle: 1 } }))] });

  it('answers a listing of an absent table as nft would, without a process; lists the tables once', async () => {
    const inner = fakeRunner((_f, args) => (args[2] === 'tables' ? { stdout: tables([['ip', 'nat']]) } : { stdout: '{"nftables":[]}' }));
    const run = gateNftListings(inner);
    const a = await run('nft', ['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']);
    const b = await run('nft', ['-j', 'list', 'table', 'ip', 'cni_hostport']);
    expect([a.exitCode, b.exitCode]).toEqual([1, 1]);
    expect(a.stderr).toMatch(/No such file or directory/);
    expect(inner.calls.map((c) => c.args.join(' '))).toEqual(['-j list tables']);
  });

  it('passes through what exists, what it cannot tell, and everything else', async () => {
    const inner = fakeRunner((_f, args) => (args[2] === 'tables' ? { stdout: tables([['inet', 'cni_plugins_masquerade']]) } : { stdout: '{"nftables":[]}' }));
    const run = gateNftListings(inner);
    await run('nft', ['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']);
    await run('nft', ['-a', 'list', 'ruleset']);
    expect(inner.calls.map((c) => c.args.slice(0, 3).join(' '))).toEqual(['-j list tables', '-j list chain', '-a list ruleset']);
    const broken = fakeRunner((_f, args) => (args[2] === 'tables' ? { exitCode: 1, stderr: 'Operation not permitted' } : {}));
    await gateNftListings(broken)('nft', ['-j', 'list', 'table', 'ip', 'cni_hostport']);
    expect(broken.calls).toHaveLength(2);
  });
});
