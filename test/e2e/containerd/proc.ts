import { execa } from 'execa';

/** What one child process did. Never a rejection: callers decide what a failure means. */
export interface ProcResult {
  readonly command: string;
  /** undefined when the process was killed (timeout) or never started. */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly ms: number;
}

export interface ProcOptions {
  readonly input?: string;
  /** The child's whole environment; nothing else is inherited. */
  readonly env?: Readonly<Record<string, string>>;
  /** Every process here is bounded; 30 s unless said otherwise. */
  readonly timeoutMs?: number;
}

/** Run a process to completion (or its timeout); a non-zero exit is reported, not thrown. */
export async function run(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  const started = performance.now();
  const r = await execa(file, [...args], {
    reject: false,
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 30_000,
    forceKillAfterDelay: 2_000,
    stripFinalNewline: false,
    ...(opts.env ? { env: { ...opts.env }, extendEnv: false } : {}),
  });
  const failedToStart = r.exitCode === undefined && !r.isTerminated;
  return {
    command: [file, ...args].join(' '),
    exitCode: r.exitCode,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' && r.stderr !== '' ? r.stderr : failedToStart ? (r.message ?? '') : '',
    timedOut: r.timedOut,
    ms: Math.round(performance.now() - started),
  };
}

export function describe(r: ProcResult): string {
  const how = r.timedOut ? 'timed out' : `exit ${r.exitCode ?? '?'}`;
  return `\`${r.command}\` ${how} after ${r.ms} ms\n--- stdout\n${r.stdout.trimEnd()}\n--- stderr\n${r.stderr.trimEnd()}`;
}

/** Run a process that must succeed; throws with its output otherwise. */
export async function mustRun(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) throw new Error(describe(r));
  return r.stdout;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
