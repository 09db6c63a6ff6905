import { execa } from 'execa';

/** What one child process did. Never a rejection: callers decide what a failure means. */
export interface ProcResult {
  readonly command: string;
  /** undefined when the process was killed or never started. */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ProcOptions {
  readonly input?: string;
  /** The child's whole environment (nothing is inherited when this is set). */
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

/** Run a process to completion; a non-zero exit is reported, not thrown. */
export async function run(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  const r = await execa(file, [...args], {
    reject: false,
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 60_000,
    stripFinalNewline: false,
    ...(opts.env ? { env: { ...opts.env }, extendEnv: false } : {}),
  });
  const failedToStart = r.exitCode === undefined && !r.isTerminated;
  return {
    command: [file, ...args].join(' '),
    exitCode: r.exitCode,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' && r.stderr !== '' ? r.stderr : failedToStart ? (r.message ?? '') : '',
  };
}

/** Run a process that must succeed; throws with its output otherwise. */
export async function mustRun(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) throw new Error(describeFailure(r));
  return r.stdout;
}

export function describeFailure(r: ProcResult): string {
  return `\`${r.command}\` exited ${r.exitCode ?? 'abnormally'}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
