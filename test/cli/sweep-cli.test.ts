import { describe, expect, it } from 'vitest';
import { sweep } from '../../src/cli/sweep.js';

/** Issue 10 case 7: `--settle` above 2^31 ms returned at once (setTimeout overflows to 1 ms). */
describe('sweep --settle', () => {
  it.each(['2147484', '1e9', '-1.5x', 'abc', '3601'])('refuses %s with a clear usage error before touching anything', async (v) => {
    const errs: string[] = [];
    const { stdio } = await import('../../src/cli/output.js');
    const orig = stdio.err;
    (stdio as { err: (t: string) => void }).err = (t) => void errs.push(t);
    try {
      expect(await sweep([`--settle=${v}`, '--state-dir', '/nonexistent'])).toBe(2);
    } finally {
      (stdio as { err: (t: string) => void }).err = orig;
    }
    expect(errs.join('')).toMatch(/--settle takes 0 to 3600 seconds/);
  });
});
