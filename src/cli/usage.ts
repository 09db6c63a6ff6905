import type { Io } from './output.js';

/**
 * Usage errors for the operator commands: one line saying what is wrong,
 * one line saying what to do, never a help dump (the dump pushed the one
 * useful line off a pod log's screen). Shared by install, uninstall, sweep
 * and check.
 */

/** Options as node:util parseArgs declares them; only the names matter here. */
export type OptionTable = Readonly<Record<string, { readonly type: 'string' | 'boolean'; readonly short?: string }>>;

/** Edit distance, for "did you mean". Inputs are option names: a few dozen characters. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length] as number;
}

/** The closest candidate, if it is close enough to be a typo (or the word is a prefix of it). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 3 ? 0.5 : distance(word, c);
    if (best === undefined || d < best.d) best = { c, d };
  }
  return best !== undefined && best.d <= Math.max(1, Math.min(3, Math.floor(word.length / 3))) ? best.c : undefined;
}

const hintFor = (word: string, options: OptionTable): string => {
  const name = word.replace(/^-+/, '').split('=')[0] ?? '';
  const match = closest(name, Object.keys(options));
  return match === undefined ? '' : ` (did you mean --${match}?)`;
};

/**
 * One line from what parseArgs threw. Its messages run to three lines and
 * suggest `--` quoting that has nothing to do with the usual mistake.
 */
export function describeParseError(e: unknown, options: OptionTable): string {
  const err = e as { code?: string; message?: string };
  const msg = err.message ?? String(e);
  const quoted = /'([^']+)'/.exec(msg)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted}${hintFor(quoted, options)}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const opt = quoted.split(' ')[0] ?? quoted;
      return /argument missing/.test(msg) ? `option ${opt} needs a value` : `option ${opt} takes no value`;
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${quoted}`;
    default:
      return msg.split('\n')[0] ?? msg;
  }
}

/** Print a usage error the shared way; returns the exit status for it (2). */
export function usageError(io: Io, cmd: string, line: string): number {
  io.err(`masq-janitor ${cmd}: ${line}\nRun 'masq-janitor help ${cmd}' for its options.\n`);
  return 2;
}

/** One entry of `--json` output: what a command reported about one path. */
export interface JsonEntry {
  readonly path: string;
  readonly result: string;
}

export interface JsonReport {
  readonly command: string;
  readonly exitCode: number;
  readonly entries: readonly JsonEntry[];
  /** Errors and notes, as they would have gone to stderr. */
  readonly messages: readonly string[];
}

/**
 * An Io that collects a command's line-per-path report (`<path>: <result>`)
 * for `--json`, and writes one JSON document to the real Io at the end.
 * The text report stays the single source of what happened; --json only
 * changes how it is printed.
 */
export function jsonCollector(command: string): Io & { readonly report: (exitCode: number) => JsonReport } {
  const entries: JsonEntry[] = [];
  const messages: string[] = [];
  const split = (text: string): void => {
    // A replacement conflist printed after "...:\n" belongs to its entry.
    const at = text.indexOf(': ');
    if (at <= 0) {
      messages.push(text.trimEnd());
      return;
    }
    entries.push({ path: text.slice(0, at), result: text.slice(at + 2).replace(/\n$/, '') });
  };
  return {
    out: split,
    err: (text) => {
      for (const line of text.split('\n')) if (line !== '') messages.push(line);
    },
    report: (exitCode) => ({ command, exitCode, entries, messages }),
  };
}
