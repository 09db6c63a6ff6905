import { describe, expect, it } from 'vitest';
import type { ExecResult } from '../../../src/backends/exec.js';
import { coalescingNftLists } from '../../../src/backends/nft/listings.js';
import { fakeRunner } from '../../support/fake-runner.js';

/**
 * DEL's three nft listings go to one `nft -j -i` process (issue 9's bench
 * row: two fewer processes per DEL). Each caller must get exactly what its
 * own listing would have answered, or the listing itself.
 */

const MASQ = ['-j', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks'];
const HP4 = ['-j', 'list', 'table', 'ip', 'cni_hostport'];
const HP6 = ['-j', 'list', 'table', 'ip6', 'cni_hostport'];
const META = { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } };
const masqDoc = JSON.stringify({ nftables: [META, { chain: { family: 'inet', table: 'cni_plugins_masquerade', name: 'masq_checks', handle: 1 } }] });
const hp4Doc = JSON.stringify({ nftables: [META, { table: { family: 'ip', name: 'cni_hostport', handle: 3 } }, { chain: { family: 'ip', table: 'cni_hostport', name: 'hostports', handle: 1 } }] });
const missing = (cmd: string): string => `Error: No such file or directory\n${cmd}\n${' '.repeat(cmd.lastIndexOf(' ') + 1)}${'^'.repeat(cmd.length - cmd.lastIndexOf(' ') - 1)}\n`;

describe('coalescingNftLists', () => {
  it('runs the listings of one turn as one nft -j -i, and gives each caller its own document or error', async () => {
    const inner = fakeRunner((file, args) =>
      args[1] === '-i' ? { stdout: `${hp4Doc}\n${masqDoc}\n`, stderr: missing('list table ip6 cni_hostport') } : { exitCode: 99, stderr: 'not expected' },
    );
    const run = coalescingNftLists(inner);
    const [m, h4, h6] = await Promise.all([run('nft', MASQ), run('nft', HP4), run('nft', HP6)]);
    expect(inner.calls).toEqual([{ file: 'nft', args: ['-j', '-i'], input: 'list chain inet cni_plugins_masquerade masq_checks\nlist table ip cni_hostport\nlist table ip6 cni_hostport\n' }]);
    expect(m).toMatchObject({ exitCode: 0, stdout: `${masqDoc}\n` });
    expect(h4).toMatchObject({ exitCode: 0, stdout: `${hp4Doc}\n` });
    expect(h6).toMatchObject({ exitCode: 1, stdout: '' });
    expect(h6?.stderr).toMatch(/No such file or directory/);
  });

  it('a lone listing, any other nft command and other tools are run as they are', async () => {
    const inner = fakeRunner();
    const run = coalescingNftLists(inner);
    await run('nft', MASQ);
    await run('nft', ['-f', '-']);
    await Promise.all([run('iptables', ['-S']), run('nft', ['-j', 'list', 'ruleset'])]);
    expect(inner.calls.map((c) => c.args)).toEqual([MASQ, ['-f', '-'], ['-S'], ['-j', 'list', 'ruleset']]);
  });

  const unattributable: [string, Partial<ExecResult>][] = [
    ['a warning on stderr', { stdout: `${masqDoc}\n`, stderr: `Warning: something new\n${missing('list table ip cni_hostport')}` }],
    ['a document that names two tables', { stdout: `${JSON.stringify({ nftables: [META, { table: { family: 'ip', name: 'cni_hostport' } }, { table: { family: 'ip6', name: 'cni_hostport' } }] })}\n` }],
    ['a line that is not JSON', { stdout: 'nft> \n' }],
    ['a command with no answer at all', { stdout: `${masqDoc}\n` }],
    ['two answers for one command', { stdout: `${masqDoc}\n${masqDoc}\n`, stderr: missing('list table ip cni_hostport') }],
    ['an exit code', { exitCode: 1, stderr: 'Error: interactive CLI not supported in this build\n' }],
  ];
  for (const [what, answer] of unattributable)
    it(`falls back to one listing per caller on ${what}`, async () => {
      const inner = fakeRunner((file, args) => (args[1] === '-i' ? answer : { stdout: `own ${args.join(' ')}` }));
      const run = coalescingNftLists(inner);
      const [m, h4] = await Promise.all([run('nft', MASQ), run('nft', HP4)]);
      expect(inner.calls.map((c) => c.args)).toEqual([['-j', '-i'], MASQ, HP4]);
      expect(m?.stdout).toBe(`own ${MASQ.join(' ')}`);
      expect(h4?.stdout).toBe(`own ${HP4.join(' ')}`);
    });

  it('a missing nft is missing for every caller, with no second try', async () => {
    const inner = fakeRunner(() => ({ exitCode: undefined, notFound: true, stderr: 'nft: not found' }));
    const run = coalescingNftLists(inner);
    const rs = await Promise.all([run('nft', MASQ), run('nft', HP4)]);
    expect(rs.every((r) => r.notFound)).toBe(true);
    expect(inner.calls).toHaveLength(1);
  });

  it('an internal error (a Runner that rejects) reaches every caller, as without batching', async () => {
    const run = coalescingNftLists(async () => {
      throw new Error('boom');
    });
    const rs = await Promise.allSettled([run('nft', MASQ), run('nft', HP4)]);
    expect(rs.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('names nft would print quoted are never batched (the echoed command would differ)', async () => {
    const inner = fakeRunner();
    const run = coalescingNftLists(inner);
    const odd = ['-j', 'list', 'table', 'ip', 'a"b'];
    await Promise.all([run('nft', odd), run('nft', HP4)]);
    expect(inner.calls.map((c) => c.args)).toEqual([odd, HP4]);
  });
});
