import { writeAll } from '../write-all.js';

/**
 * Where an operator command prints. Commands take an Io so tests can read
 * what an operator would see; the real one writes synchronously, like
 * cli.ts, so nothing is lost when the process exits right after.
 */
export interface Io {
  /** The report: one line per file, and suggested replacement files. */
  out(text: string): void;
  /** Errors and notes. */
  err(text: string): void;
}

export const stdio: Io = {
  out: (text) => writeAll(1, text),
  err: (text) => writeAll(2, text),
};

/**
 * `JSON.stringify({ [key]: items, ...rest }, null, 2) + '\n'`, byte for byte,
 * written in pieces: a sweep's 100,000 rows never become one 30 MiB string
 * (and its bytes) beside everything else it holds.
 */
// Not /^/gm: a multiline regexp also starts lines after U+2028, which JSON.stringify leaves raw in strings.
const indent = (json: string): string => `    ${json.split('\n').join('\n    ')}`;

export function writeJsonDocument(write: (text: string) => void, key: string, items: readonly unknown[], rest: Readonly<Record<string, unknown>>): void {
  const BATCH = 1000;
  write(`{\n  ${JSON.stringify(key)}: [`);
  for (let i = 0; i < items.length; i += BATCH) {
    let text = '';
    for (let j = i; j < Math.min(i + BATCH, items.length); j++) text += `${j === 0 ? '\n' : ',\n'}${indent(JSON.stringify(items[j], null, 2))}`;
    write(text);
  }
  write(items.length > 0 ? '\n  ]' : ']');
  const tail = JSON.stringify(rest, null, 2);
  write(tail === '{}' ? '\n}\n' : `,\n${tail.slice(2)}\n`);
}
