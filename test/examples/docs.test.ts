import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../cli/support.js';

/** The README's first screen and the docs it sends readers to. */

/** Written by other changes in flight; linked already. */
const PENDING = new Set(['docs/teardown-policy.md', 'docs/check.md', 'docs/hostports.md']);

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  return ['README.md', 'examples/k3s/README.md', ...docs];
}

describe('README.md', () => {
  it('answers, in order: what it fixes, whether you need it, how to get it, verify it, remove it', async () => {
    const text = await readFile(join(ROOT, 'README.md'), 'utf8');
    const order = ['**What it fixes.**', '**Do you need it?**', '**Get it.**', '**Verify it worked.**', '**Remove it.**'].map((h) => text.indexOf(h));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // "A first screen": all five before the table of contents.
    expect(text.indexOf('\n---\n')).toBeGreaterThan(order.at(-1) ?? 0);
    for (const must of ['nerdctl ≥ 2.1.3', 'ctr run --cni', 'Not after a plain reboot', 'Podman 4 on CNI', 'ptp', 'IPv6', 'nftables', 'leaks from before']) expect(text, must).toContain(must);
  });
});

describe('docs', () => {
  it('every relative link points at a file that exists (or one another change is adding)', async () => {
    for (const f of await markdownFiles()) {
      const text = await readFile(join(ROOT, f), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#:\s]+)(#[^)]*)?\)/g)) {
        const target = join(dirname(f), m[1] ?? '');
        if (PENDING.has(target)) continue;
        expect(existsSync(join(ROOT, target)), `${f} -> ${m[1]}`).toBe(true);
      }
    }
  });

  it('never points at the dir k3s no longer reads as the place to install', async () => {
    for (const f of await markdownFiles()) {
      const text = await readFile(join(ROOT, f), 'utf8');
      expect(text, f).not.toMatch(/--bin-dir \/var\/lib\/rancher\/k3s\/data\/current\/bin/);
      expect(text, f).not.toContain('INSTALL-SECTION.md');
    }
  });
});
