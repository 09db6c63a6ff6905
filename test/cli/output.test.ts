import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeJsonDocument } from '../../src/cli/output.js';

/** sweep --json at 100,000 rows is written in pieces; the bytes must be JSON.stringify's. */
describe('writeJsonDocument', () => {
  it('writes exactly JSON.stringify(doc, null, 2) plus a newline, in pieces', () => {
    // Strings with U+2028, which JSON.stringify leaves raw, among the rest.
    const json = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant({ ips: ['a\u2028b'], n: 1 }));
    fc.assert(
      fc.property(fc.array(json, { maxLength: 2500 }), fc.dictionary(fc.string({ minLength: 1 }).filter((k) => k !== 'orphans' && !/^\d+$/.test(k)), json, { maxKeys: 4 }), (items, rest) => {
        const pieces: string[] = [];
        writeJsonDocument((t) => pieces.push(t), 'orphans', items, rest);
        expect(pieces.join('')).toBe(`${JSON.stringify({ orphans: items, ...rest }, null, 2)}\n`);
      }),
      { numRuns: 60 },
    );
  });
});
