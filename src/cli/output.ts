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
