import { spawn } from 'node:child_process';

/**
 * The one door to child processes. Everything that runs a tool goes through
 * a Runner, so tests can record exactly what would reach iptables or nft.
 */

export interface ExecResult {
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** The binary was not found on PATH. */
  readonly notFound: boolean;
  readonly timedOut: boolean;
  /** stdout as bytes, when asked for with `stdoutBytes` (then `stdout` is empty). */
  readonly bytes?: Buffer;
}

export interface ExecOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Return stdout as bytes: a whole-table save is parsed line by line, never held as one string. */
  readonly stdoutBytes?: boolean;
}

export type Runner = (file: string, args: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

/** Where root's tools live when the runtime hands us an empty PATH. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function effectivePath(env: Readonly<Record<string, string | undefined>>): string {
  return env.PATH && env.PATH.length > 0 ? env.PATH : DEFAULT_PATH;
}

/** iptables honours XTABLES_LOCKFILE; keep it if the runtime set one (rootless setups, tests). */
function lockFileEnv(): Record<string, string> {
  const f = process.env.XTABLES_LOCKFILE;
  return f ? { XTABLES_LOCKFILE: f } : {};
}

/** What a tool may print before it is stopped: a whole-table save at 100,000 chains is about 40 MiB. */
const MAX_OUTPUT = 512 * 1024 * 1024;
/** After the timeout's SIGTERM, a tool that is still there gets SIGKILL this much later. */
const KILL_GRACE_MS = 5_000;

/**
 * A Runner on node:child_process. execa was measured here (make bench, issue 12): loading it and its
 * per-call promise and stream plumbing cost about 40 ms of main-thread time in a DEL that spawns four
 * tools, 40% of the work above Node's own start-up, and that main thread is what spawns the next tool.
 * A DEL needs only input, two captured outputs, a timeout and "not found", so it gets just that.
 */
export function spawnRunner(path: string): Runner {
  // C locale: error texts are matched by the callers, and must not be translated.
  const env = { PATH: path, LC_ALL: 'C', ...lockFileEnv() };
  return (file, args, opts = {}) =>
    new Promise<ExecResult>((resolve) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let overflow = false;
      let timedOut = false;
      let spawnError: NodeJS.ErrnoException | undefined;
      let settled = false;
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(file, [...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (e) {
        // Arguments Node refuses to pass (a NUL byte): the tool never ran.
        resolve({ exitCode: undefined, stdout: '', stderr: `${file}: ${(e as Error).message}`, notFound: false, timedOut: false });
        return;
      }
      const stop = (): void => {
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
      };
      const timer = setTimeout(() => {
        timedOut = true;
        stop();
      }, opts.timeoutMs ?? 60_000);
      const collect = (into: Buffer[]) => (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_OUTPUT) into.push(chunk);
        else if (!overflow) {
          overflow = true;
          stop();
        }
      };
      const finish = (exitCode: number | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const notFound = spawnError?.code === 'ENOENT';
        const stderr = Buffer.concat(err).toString('utf8');
        const why = spawnError !== undefined ? `${file}: ${spawnError.message}` : overflow ? `${file}: output over ${MAX_OUTPUT} bytes, stopped` : '';
        const bytes = Buffer.concat(out);
        // Node keeps the ChildProcess (its native handle is a GC root) for a while after it ends, and with
        // it these listeners and whatever they reach: this call's result, a 40 MiB save. Let go of both.
        out.length = 0;
        err.length = 0;
        child.removeAllListeners();
        child.stdout?.removeAllListeners('data');
        child.stderr?.removeAllListeners('data');
        child.on('error', () => {});
        const result = { exitCode: overflow ? undefined : exitCode, stderr: stderr !== '' ? stderr : why, notFound, timedOut };
        resolve(opts.stdoutBytes === true ? { ...result, stdout: '', bytes } : { ...result, stdout: bytes.toString('utf8') });
      };
      child.stdout?.on('data', collect(out));
      child.stderr?.on('data', collect(err));
      // A tool that exits without reading its input (a missing table, a usage error) closes the pipe first.
      child.stdin?.on('error', () => {});
      child.on('error', (e: NodeJS.ErrnoException) => {
        spawnError = e;
        // A failed spawn never starts, so no 'close' may follow; a kill error of a live child is not an end.
        if (child.pid === undefined) finish(undefined);
      });
      child.on('close', (code) => finish(code ?? undefined));
      child.stdin?.end(opts.input ?? '');
    });
}
