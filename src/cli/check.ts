import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BINARY_NAME } from './atomic-file.js';
import { DEFAULT_STATE_DIR, scanCache, type CacheScan } from './cni-cache.js';
import { configFiles } from './conf-dir.js';
import { describeProblem, janitorEntries, type EntryProblem } from './entries.js';
import { stdio, type Io } from './output.js';
import { probeVersion } from './probe.js';

/**
 * `masq-janitor check`: what on this node would make a container's
 * teardown fail because of masq-janitor (docs/check.md). It changes
 * nothing, so it can be a readiness probe:
 *   masq-janitor check --conf-dir <dir> --bin-dir <dir> --json
 */

const DEFAULT_CONF_DIR = '/etc/cni/net.d';
const DEFAULT_BIN_DIR = '/opt/cni/bin';

const HELP = `usage: masq-janitor check [options]

Reports what would break a container's teardown, and changes nothing:
- every masq-janitor entry of every network config in the conf dir, validated
  exactly as the plugin validates what libcni sends it (keys, types, cniVersion);
- whether <bin-dir>/masq-janitor answers CNI VERSION in the environments
  runtimes run plugins in (empty environment with systemd's default PATH;
  no PATH at all, as podman's conmon cleanup);
- the libcni cache entries (<state-dir>/results/*) whose ADD-time config
  names masq-janitor: their DEL needs the binary.

options:
  --conf-dir DIR   the CNI conf dir (default ${DEFAULT_CONF_DIR})
  --bin-dir DIRS   a CNI plugin dir (default ${DEFAULT_BIN_DIR}); repeat it, or give a
                   list separated by ":" or ",", for every dir the runtimes search
  --state-dir DIR  libcni's cache dir (default ${DEFAULT_STATE_DIR})
  --json           one JSON document on stdout (see docs/check.md)
  -h, --help       this text

Exit status: 0 nothing found that would break a teardown, 1 something would
(each problem is listed), 2 usage error.
`;

export interface ConfigReport {
  readonly path: string;
  readonly entries: number;
  readonly problems: readonly EntryProblem[];
}

export interface BinaryReport {
  readonly binDir: string;
  readonly path: string;
  readonly present: boolean;
  readonly answersVersion: boolean;
  readonly problem: string | null;
}

export interface CheckReport {
  readonly ok: boolean;
  /** One line for each thing that would break a teardown; empty when ok. */
  readonly problems: readonly string[];
  readonly confDir: string;
  readonly configs: readonly ConfigReport[];
  readonly binaries: readonly BinaryReport[];
  readonly cache: {
    readonly stateDir: string;
    readonly naming: readonly string[];
    readonly unreadable: readonly { readonly path: string; readonly why: string }[];
    readonly error: string | null;
  };
}

export async function check(argv: string[], io: Io = stdio): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        'conf-dir': { type: 'string' },
        'bin-dir': { type: 'string', multiple: true },
        'state-dir': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    io.err(`masq-janitor check: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    io.out(HELP);
    return 0;
  }
  const binDirs = [...new Set((v['bin-dir'] ?? [DEFAULT_BIN_DIR]).flatMap((d) => d.split(/[:,]/)).filter((d) => d !== '').map((d) => resolve(d)))];
  const report = await inspect(resolve(v['conf-dir'] ?? DEFAULT_CONF_DIR), binDirs, resolve(v['state-dir'] ?? DEFAULT_STATE_DIR));
  io.out(v.json ? JSON.stringify(report, null, 2) + '\n' : text(report));
  return report.ok ? 0 : 1;
}

export async function inspect(confDir: string, binDirs: readonly string[], stateDir: string): Promise<CheckReport> {
  const problems: string[] = [];
  const configs: ConfigReport[] = [];
  const files = await configFiles(confDir);
  if (!files.ok) problems.push(`cannot read the conf dir ${confDir}: ${files.error}`);
  for (const path of files.ok ? files.value : []) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    // A file libcni cannot load either is not the janitor's to judge; one that names it is.
    const entries = text === undefined ? undefined : janitorEntries(text);
    if (entries === undefined) continue;
    configs.push({ path, entries: entries.entries, problems: entries.problems });
    for (const p of entries.problems) problems.push(`${path}: ${describeProblem(p)}: every ADD on this network fails, and DEL runs with the defaults`);
  }
  const binaries: BinaryReport[] = [];
  for (const binDir of binDirs) binaries.push(await binary(binDir));
  for (const b of binaries) if (b.present && !b.answersVersion) problems.push(`${b.path}: ${b.problem ?? 'does not answer CNI VERSION'}`);
  const cache: CacheScan = await scanCache(stateDir);
  const namedBy = [...configs.filter((c) => c.entries > 0).map((c) => c.path), ...cache.naming];
  if (namedBy.length > 0 && !binaries.some((b) => b.answersVersion)) {
    problems.push(`masq-janitor is named by ${namedBy.join(', ')} but no bin dir has a working masq-janitor (${binDirs.join(', ')}): those DELs fail before bridge releases the IP`);
  }
  return {
    ok: problems.length === 0,
    problems,
    confDir,
    configs,
    binaries,
    cache: { stateDir, naming: cache.naming, unreadable: cache.unreadable, error: cache.error ?? null },
  };
}

async function binary(binDir: string): Promise<BinaryReport> {
  const path = join(binDir, BINARY_NAME);
  const st = await stat(path).catch(() => undefined);
  if (st === undefined) return { binDir, path, present: false, answersVersion: false, problem: null };
  if (!st.isFile()) return { binDir, path, present: true, answersVersion: false, problem: 'not a regular file' };
  const bad = await probeVersion(path);
  return { binDir, path, present: true, answersVersion: bad === undefined, problem: bad ?? null };
}

function text(r: CheckReport): string {
  const lines: string[] = [];
  for (const c of r.configs) if (c.entries > 0) lines.push(`${c.path}: ${c.problems.length === 0 ? `${c.entries} masq-janitor entr${c.entries === 1 ? 'y' : 'ies'}, valid` : c.problems.map(describeProblem).join('; ')}`);
  for (const b of r.binaries) lines.push(`${b.path}: ${!b.present ? 'absent' : b.answersVersion ? 'answers CNI VERSION as runtimes run it' : `broken: ${b.problem ?? ''}`}`);
  lines.push(`${r.cache.stateDir}/results: ${r.cache.naming.length} cached config(s) name masq-janitor${r.cache.unreadable.length ? `, ${r.cache.unreadable.length} unreadable` : ''}`);
  for (const p of r.cache.naming) lines.push(`  ${p}`);
  for (const u of r.cache.unreadable) lines.push(`  ${u.path}: unreadable (${u.why})`);
  lines.push(r.ok ? 'ok: nothing found that would break a teardown' : `${r.problems.length} problem(s):`);
  for (const p of r.problems) lines.push(`  ${p}`);
  return lines.join('\n') + '\n';
}
