import { dirname } from 'node:path';
import { execa } from 'execa';

/**
 * Child processes for every suite that drives real tools: each one bounded by
 * a timeout, never a rejection (callers decide what a failure means).
 */

/** root's usual PATH: what a child gets when nothing else is said. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** This node, for running the janitor bundle directly. */
export const NODE = process.execPath;
/** Put on a child's PATH for the janitor's `#!/usr/bin/env node`. */
export const NODE_DIR = dirname(process.execPath);

/** What one child process did. */
export interface ProcResult {
  readonly command: string;
  /** undefined when the process was killed (timeout, signal) or never started. */
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  /** Wall time, whole milliseconds. */
  readonly ms: number;
}

export interface ProcOptions {
  readonly input?: string;
  /** The child's whole environment (nothing is inherited when this is set). */
  readonly env?: Readonly<Record<string, string>>;
  /** 60 s unless said otherwise; a child still running then is SIGKILLed. */
  readonly timeoutMs?: number;
}

/** Run a process to completion (or its timeout); a non-zero exit is reported, not thrown. */
export async function run(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  const started = performance.now();
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
    ms: Math.round(performance.now() - started),
  };
}

/** Run a process that must succeed; throws with its output otherwise. */
export async function mustRun(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) throw new Error(describeProc(r));
  return r.stdout;
}

/** A process's outcome for failure messages (long command lines and outputs cut). */
export function describeProc(r: ProcResult): string {
  const how = r.timedOut ? 'timed out' : `exited ${r.exitCode ?? r.signal ?? 'abnormally'}`;
  return `\`${r.command.slice(0, 300)}\` ${how} after ${r.ms} ms\n--- stdout\n${r.stdout.trimEnd().slice(0, 4000)}\n--- stderr\n${r.stderr.trimEnd().slice(0, 4000)}`;
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

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
