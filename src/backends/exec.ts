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
}

export interface ExecOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
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

/** A Runner backed by execa, loaded on first use so verbs that spawn nothing never pay for it. */
export function execaRunner(path: string): Runner {
  return async (file, args, opts = {}) => {
    const { execa } = await import('execa');
    const r = await execa(file, [...args], {
      reject: false,
      input: opts.input ?? '',
      timeout: opts.timeoutMs ?? 60_000,
      stripFinalNewline: false,
      // C locale: error texts are matched below, and must not be translated.
      env: { PATH: path, LC_ALL: 'C', ...lockFileEnv() },
      extendEnv: false,
      maxBuffer: 512 * 1024 * 1024,
    });
    const message = r.message ?? '';
    const notFound = (r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined && /ENOENT/.test(message));
    return {
      exitCode: r.exitCode,
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
      stderr: typeof r.stderr === 'string' && r.stderr !== '' ? r.stderr : notFound ? message : '',
      notFound,
      timedOut: r.timedOut,
    };
  };
}
