import { execa } from 'execa';

/** What one child process did. Never a rejection: callers decide what a failure means. */
export interface ProcResult {
  readonly command: string;
  /** undefined when the process was killed or never started. */
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly ms: number;
}

export interface ProcOptions {
  readonly input?: string;
  /** The child's whole environment (nothing is inherited when this is set). */
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

export async function run(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  const t0 = performance.now();
  const r = await execa(file, [...args], {
    reject: false,
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 60_000,
    killSignal: 'SIGKILL',
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
    ...(opts.env ? { env: { ...opts.env }, extendEnv: false } : {}),
  });
  return {
    command: [file, ...args].join(' '),
    exitCode: r.exitCode,
    signal: r.signal ?? undefined,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' && r.stderr !== '' ? r.stderr : r.exitCode === undefined ? (r.message ?? '') : '',
    timedOut: r.timedOut,
    ms: performance.now() - t0,
  };
}

export async function mustRun(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) throw new Error(describe(r));
  return r.stdout;
}

export function describe(r: ProcResult): string {
  return `\`${r.command.slice(0, 300)}\` exited ${r.exitCode ?? r.signal ?? 'abnormally'}${r.timedOut ? ' (timed out)' : ''}\n--- stdout\n${r.stdout.slice(0, 4000)}\n--- stderr\n${r.stderr.slice(0, 4000)}`;
}

/** Run async jobs with at most `limit` in flight; results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
