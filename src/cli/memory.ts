import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A full garbage collection, now. Node offers it only behind --expose-gc,
 * which a CNI plugin or a DaemonSet's command line cannot be relied on to
 * pass, so the flag is set here and `gc` is taken from a fresh context (V8
 * installs it in contexts made after the flag).
 *
 * Why at all: sweep's memory limit counts node and iptables-restore
 * together, and at 100,000 leaked setups the restore alone takes 320 MiB.
 * V8 collects lazily, so without this the survey's garbage (the parsed
 * table, 300 MiB and more) would stay mapped while the restore runs.
 */
let gc: (() => void) | undefined;
export function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    const found: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    gc = typeof found === 'function' ? (found as () => void) : () => {};
  }
  // Twice: what the first round frees can hold the last reference to more (a save's 40 MiB of bytes).
  gc();
  gc();
}
