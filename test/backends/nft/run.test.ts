import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyNft } from '../../../src/backends/nft/run.js';
import { fakeRunner } from '../../support/fake-runner.js';

/**
 * Issue 10 case 7: a SIGKILL or SIGTERM during `nft -f` left the temp batch
 * directory behind. The batch file is now unlinked before nft starts (nft
 * reads it through our descriptor), and leftovers of a killed run are
 * removed by the next one.
 */

const parent = join(tmpdir(), 'masq-janitor');
const deadPid = (): number => {
  // A pid that is not running: the highest pid_max value is never handed out at once.
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  for (let p = max - 1; p > 1; p--) if (!existsSync(`/proc/${p}`)) return p;
  throw new Error('no free pid');
};

describe('nft batch files', () => {
  it('are gone before nft runs: nft reads the batch through /proc/<pid>/fd/<n>, nothing is left on disk at any point', async () => {
    let onDisk: string[] = ['not looked'];
    let seen = '';
    const run = fakeRunner((file, args) => {
      if (file === 'nft' && args[0] === '-f') {
        onDisk = existsSync(parent) ? readdirSync(parent).filter((n) => n.startsWith(`masq-janitor-nft-${process.pid}-`)) : [];
        seen = readFileSync(args[1] as string, 'utf8');
      }
      return undefined;
    });
    const r = await applyNft(run, 'delete rule inet cni_plugins_masquerade masq_checks handle 7\n');
    expect(r.ok).toBe(true);
    expect(run.calls[0]?.args[1]).toMatch(new RegExp(`^/proc/${process.pid}/fd/\\d+$`));
    expect(seen).toBe('delete rule inet cni_plugins_masquerade masq_checks handle 7\n');
    expect(onDisk).toEqual([]);
  });

  it("a killed run's leftover (its pid no longer alive) is removed by the next run; a live process's is not", async () => {
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    const dead = join(parent, `masq-janitor-nft-${deadPid()}-AbC123`);
    const live = join(parent, `masq-janitor-nft-${process.ppid}-XyZ789`);
    for (const d of [dead, live]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'batch.nft'), 'delete rule inet cni_plugins_masquerade masq_checks handle 1\n');
    }
    try {
      const r = await applyNft(fakeRunner(), 'delete rule inet cni_plugins_masquerade masq_checks handle 7\n');
      expect(r.ok).toBe(true);
      expect(existsSync(dead)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      rmSync(dead, { recursive: true, force: true });
      rmSync(live, { recursive: true, force: true });
    }
  });
});
