import { writeSync } from 'node:fs';

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

/** writeSync may write part of a buffer, or hit EAGAIN on a non-blocking pipe. */
function writeAll(fd: number, text: string): void {
  const data = Buffer.from(text);
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

export const stdio: Io = {
  out: (text) => writeAll(1, text),
  err: (text) => writeAll(2, text),
};
