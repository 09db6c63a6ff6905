import { writeSync } from 'node:fs';

/**
 * Write all of `text` to a file descriptor, synchronously, so nothing is
 * lost when the process exits right after. writeSync may write part of a
 * buffer, or hit EAGAIN when the runtime handed us a non-blocking pipe.
 */
export function writeAll(fd: number, text: string): void {
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
