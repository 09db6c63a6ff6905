import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/cli/memory.js';

/**
 * sweep collects garbage before a big transaction, so that node and
 * iptables-restore do not hold the survey's garbage together (issue 12).
 */
describe('collectGarbage', () => {
  it('runs a real collection without --expose-gc on the command line, as often as asked', () => {
    let junk: { i: number; s: string }[] | undefined = Array.from({ length: 1_000_000 }, (_, i) => ({ i, s: `x${i}` }));
    const before = process.memoryUsage().heapUsed;
    expect(junk.length).toBe(1_000_000);
    junk = undefined;
    collectGarbage();
    collectGarbage();
    expect(process.memoryUsage().heapUsed).toBeLessThan(before - 30 * 1024 * 1024);
  });
});
