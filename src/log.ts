import { statSync } from 'node:fs';
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
    const refusal = unsafeLogFile(file);
    if (refusal) complain(`masq-janitor: not logging to ${file}: ${refusal}; logging to stderr`);
    else {
      try {
        return pino.destination({ dest: file, sync: true, append: true, mkdir: false });
      } catch (e) {
        complain(`masq-janitor: cannot write log file ${file}: ${(e as Error).message}; logging to stderr`);
      }
    }
  }
  return pino.destination({ fd: 2, sync: true });
}

/**
 * Only a regular file (or one still to be created) is a log file. Anything
 * else could be stdout (`/dev/stdout`, `/proc/self/fd/1`: log lines in the
 * CNI result) or a FIFO nobody reads (open blocks, and so would DEL).
 */
function unsafeLogFile(file: string): string | undefined {
  try {
    const st = statSync(file);
    return st.isFile() ? undefined : 'not a regular file';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : (e as Error).message;
  }
}

/** A logger that drops everything: for verbs that have nothing to say. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  async flush() {},
};
