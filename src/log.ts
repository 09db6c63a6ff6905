import { closeSync, constants, fstatSync, openSync, statfsSync } from 'node:fs';
import type { LogLevel } from './cni/config.js';

/**
 * Logs never touch stdout (it is the CNI protocol). pino is loaded only
 * when a message is actually due: most invocations log nothing, and every
 * millisecond of startup is paid on each container start and stop.
 */

type Level = Exclude<LogLevel, 'silent'>;
const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  /** Write everything queued; call before exit. */
  flush(): Promise<void>;
}

export interface LogTarget {
  readonly logFile: string | undefined;
  readonly logLevel: LogLevel;
}

interface Entry {
  readonly level: Level;
  readonly obj: object;
  readonly msg: string;
  readonly time: number;
}

/** stderr writer for problems of the logger itself; never throws. */
export type Complain = (line: string) => void;

export function createLogger(target: LogTarget, base: object, complain: Complain): Logger {
  const queue: Entry[] = [];
  const push = (level: Level) => (obj: object, msg: string) => {
    if (RANK[level] >= RANK[target.logLevel]) queue.push({ level, obj, msg, time: Date.now() });
  };
  return {
    debug: push('debug'),
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    async flush() {
      if (queue.length === 0) return;
      const entries = queue.splice(0);
      const { pino } = await import('pino');
      const dest = openDestination(pino, target.logFile, complain);
      const log = pino({ level: target.logLevel, base, timestamp: false }, dest);
      for (const e of entries) log[e.level]({ time: e.time, ...e.obj }, e.msg);
      dest.flushSync();
      if (target.logFile && (dest as { fd?: number }).fd !== 2) dest.end();
    },
  };
}

type Pino = typeof import('pino').pino;

function openDestination(pino: Pino, file: string | undefined, complain: Complain): ReturnType<Pino['destination']> {
  if (file) {
    const opened = openLogFile(file);
    if (typeof opened === 'number') return pino.destination({ fd: opened, sync: true });
    complain(`masq-janitor: not logging to ${file}: ${opened}; logging to stderr`);
  }
  return pino.destination({ fd: 2, sync: true });
}

/**
 * Whoever can write the log's directory can swap the name for anything
 * between a check and an open, so there is one open, and the checks are
 * on the descriptor it gave:
 * - O_NOFOLLOW: no symlink (`/dev/stdout`, `/proc/self/fd/1`, or a link
 *   making root append to, or create, a file of the attacker's choosing);
 * - O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of
 *   blocking DEL forever; node adds O_CLOEXEC to every open itself;
 * - fstat: only a regular file, never a FIFO, socket or device;
 * - statfs: procfs and sysfs files (/proc/sys/*) are "regular" too, and
 *   appending to them changes the kernel, not a log.
 * Returns the descriptor, or why the file is not used.
 */
export function openLogFile(file: string): number | string {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = openSync(file, flags, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ELOOP' ? 'it is a symbolic link' : code === 'ENXIO' ? 'it is a FIFO without a reader' : (e as Error).message;
  }
  const refusal = unsafeDescriptor(fd);
  if (refusal === undefined) return fd;
  closeSync(fd);
  return refusal;
}

/** Pseudo file systems whose "regular files" are kernel knobs (statfs f_type, linux/magic.h). */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x63677270, 'cgroup2'],
  [0x27e0eb, 'cgroup'],
  [0x62656570, 'configfs'],
  [0xcafe4a11, 'bpffs'],
  [0xde5e81e4, 'efivarfs'],
  [0x6165676c, 'pstore'],
  [0xf97cff8c, 'selinuxfs'],
]);

function unsafeDescriptor(fd: number): string | undefined {
  // With stdout or stderr closed, open() can hand out 1 or 2: log lines would then share the CNI stdout.
  if (fd <= 2) return 'it was opened as a standard stream';
  const st = fstatSync(fd);
  if (!st.isFile()) return 'not a regular file';
  // node has no fstatfs; /proc/self/fd/N names exactly the open file, whatever its path now points to.
  let type: number;
  try {
    type = statfsSync(`/proc/self/fd/${fd}`).type;
  } catch (e) {
    return `cannot tell its file system: ${(e as Error).message}`;
  }
  const pseudo = PSEUDO_FS.get(type);
  return pseudo === undefined ? undefined : `not a file on a disk (${pseudo})`;
}

/** A logger that drops everything: for verbs that have nothing to say. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  async flush() {},
};
