import { readFileSync } from 'node:fs';
import type { ExecOptions, ExecResult, Runner } from '../../src/backends/exec.js';

export interface Call {
  readonly file: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
}

type Responder = (file: string, args: readonly string[], input: string | undefined) => Partial<ExecResult> | undefined;

/** A Runner that records every call and answers from `respond` (default: success, empty output). */
export function fakeRunner(respond: Responder = () => undefined): Runner & { calls: Call[] } {
  const calls: Call[] = [];
  const run = async (file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
    // nft reads its batch from a file (see backends/nft/run.ts): record it as the input.
    const input = file === 'nft' && args[0] === '-f' && args[1] !== undefined && args[1] !== '-' ? readFileSync(args[1], 'utf8') : opts.input;
    calls.push({ file, args, input });
    const r = respond(file, args, input) ?? {};
    return { exitCode: 0, stdout: '', stderr: '', notFound: false, timedOut: false, ...r };
  };
  return Object.assign(run, { calls });
}
