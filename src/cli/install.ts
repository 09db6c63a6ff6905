import { open, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKUP_SUFFIX, BINARY_NAME, installBinary, readSnapshot, removeBinary, replaceWithBackup, type BinaryAction } from './atomic-file.js';
import { DEFAULT_STATE_DIR, scanCache } from './cni-cache.js';
import { configFiles } from './conf-dir.js';
import { describeProblem, janitorEntries } from './entries.js';
import { nodeDirs, k3sNothingToDo, RUNTIME_HELP } from './k3s.js';
import { describeParseError, jsonCollector, usageError } from './usage.js';
import { kindOfFile, planInstall, planUninstall, type FileKind } from './conflist-edit.js';
import { stdio, type Io } from './output.js';
import { probeVersion } from './probe.js';
import { lockConfDir } from './runtime-locks.js';
import { installSource } from './self-exe.js';

/**
 * `masq-janitor install` and `uninstall`: the operator's way to put the
 * janitor after bridge/ptp in a runtime's network lists, and to take it
 * out again. Deciding the new text is conflist-edit.ts; writing it without
 * a torn or half-visible file is atomic-file.ts.
 */

/** What containerd, CRI-O, Podman and nerdctl use when nothing is configured. */
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_BIN_DIR = '/opt/cni/bin';

const INSTALL_HELP = `usage: masq-janitor install [options] [FILE...]

Copies masq-janitor into the CNI bin dir, then appends {"type": "masq-janitor"}
as the last plugin of each network list in the conf dir that has a bridge or
ptp plugin with "ipMasq": true, or of each FILE named. Running it again
changes nothing. Each edited file is replaced atomically, keeps its mode and
owner, and its content from before the first install is kept as
<file>${BACKUP_SUFFIX}. Only the entry's bytes are inserted: the rest of the
file keeps its formatting.
A .conf file holds one plugin and cannot chain: install prints the .conflist
that would replace it and changes nothing. A masq-janitor entry already
present is validated as the plugin would; an invalid one is an error.
Edits run under the locks nerdctl and podman write conflists under, and a
file a runtime rewrote meanwhile is put back and reported, never lost.

options:
  --conf-dir DIR   the CNI conf dir (default ${DEFAULT_CONF_DIR}): its *.conf, *.conflist
                   and *.json, and the *.conflist of its subdirectories (nerdctl's
                   per-namespace networks). Not together with FILEs.
  --bin-dir DIR    the CNI plugin dir (default ${DEFAULT_BIN_DIR})
  --from FILE      the masq-janitor file to copy (default: the standalone single
                   executable: the running one, or dist/standalone/masq-janitor
                   beside the running bundle)
  --script         allow installing a Node script (the bundle, dist/masq-janitor).
                   It runs with whatever node the runtime's PATH finds, so it is
                   installed only if it answers CNI VERSION in the environments
                   runtimes give plugins (systemd's default PATH; no PATH at all)
  --skip-binary    leave the bin dir alone; only edit configs
  --dry-run        print what would change; change nothing
${RUNTIME_HELP}  --json           print the report as one JSON document on stdout
  -h, --help       this text

Prints one line per file: added, already present, or skipped with the reason.
Exit status 1 if any file could not be handled, 2 on a usage error.
`;

const UNINSTALL_HELP = `usage: masq-janitor uninstall [options] [FILE...]

Removes the {"type": "masq-janitor"} entry that install appended from each
network list in the conf dir, or from each FILE named. An entry with settings
added by hand (logLevel, ...) is not install's and stays. Exactly the bytes
install inserted are removed, atomically; <file>${BACKUP_SUFFIX} is deleted
once the file is byte-identical to it again.

options:
  --conf-dir DIR    the CNI conf dir (default ${DEFAULT_CONF_DIR}); not together with FILEs
  --bin-dir DIR     the CNI plugin dir (default ${DEFAULT_BIN_DIR})
  --remove-binary   also delete <bin-dir>/masq-janitor, once no scanned config and no
                    libcni cache entry (<state-dir>/results/*) names it: runtimes tear
                    containers down with the config cached at their start, and a DEL
                    that cannot find the plugin never reaches bridge (the IP leaks).
                    Needs the conf dir scan, so not together with FILEs
  --state-dir DIR   libcni's cache dir (default ${DEFAULT_STATE_DIR})
  --dry-run         print what would change; change nothing
${RUNTIME_HELP}  --json            print the report as one JSON document on stdout
  -h, --help        this text
`;

const COMMON = {
  'conf-dir': { type: 'string' },
  'bin-dir': { type: 'string' },
  'dry-run': { type: 'boolean' },
  runtime: { type: 'string' },
  root: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const INSTALL_OPTIONS = { ...COMMON, from: { type: 'string' }, script: { type: 'boolean' }, 'skip-binary': { type: 'boolean' } } as const;
const UNINSTALL_OPTIONS = { ...COMMON, 'remove-binary': { type: 'boolean' }, 'state-dir': { type: 'string' } } as const;

type Parsed<T> = { ok: true; values: T; files: string[] } | { ok: false; code: number };

function parse<O extends typeof INSTALL_OPTIONS | typeof UNINSTALL_OPTIONS>(
  cmd: string,
  argv: string[],
  options: O,
  help: string,
  io: Io,
): Parsed<ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values']> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    return { ok: false, code: usageError(io, cmd, describeParseError(e, options)) };
  }
  const values = parsed.values as { help?: boolean; 'conf-dir'?: string };
  if (values.help) {
    io.out(help);
    return { ok: false, code: 0 };
  }
  if (values['conf-dir'] !== undefined && parsed.positionals.length > 0) {
    return { ok: false, code: usageError(io, cmd, 'give either --conf-dir or FILEs, not both') };
  }
  return { ok: true, values: parsed.values, files: parsed.positionals };
}

interface Target {
  /** Absolute path, as shown in the report. */
  readonly path: string;
  readonly named: boolean;
}

/** The FILEs named, or the configs of the conf dir; undefined (reported) when the dir cannot be read. */
async function targets(confDir: string, files: readonly string[], io: Io): Promise<Target[] | undefined> {
  if (files.length > 0) return files.map((f) => ({ path: resolve(f), named: true }));
  const found = await configFiles(confDir);
  if (!found.ok) {
    io.err(`masq-janitor: cannot read the conf dir: ${found.error}\n`);
    return undefined;
  }
  if (found.value.length === 0) io.out(`${confDir}: no CNI config files\n`);
  return found.value.map((path) => ({ path, named: false }));
}

/**
 * Run `fn` holding the locks runtimes write conflists under (runtime-locks.ts),
 * in the conf dir or in the directory of each FILE named. Reads happen
 * inside too: a decision made on content read before the lock is stale.
 */
async function underRuntimeLocks<T>(confDir: string, files: readonly string[], io: Io, fn: () => Promise<T>): Promise<T | undefined> {
  const dirs = files.length > 0 ? [...new Set(files.map((f) => dirname(resolve(f))))].sort() : [confDir];
  const held: { release(): Promise<void> }[] = [];
  try {
    for (const d of dirs) {
      const l = await lockConfDir(d);
      if (!l.ok) {
        io.err(`masq-janitor: ${l.error}\n`);
        return undefined;
      }
      if (l.value.note !== undefined) io.err(`note: ${l.value.note}\n`);
      held.push(l.value);
    }
    return await fn();
  } finally {
    for (const l of held.reverse()) await l.release();
  }
}

/** A named file with another extension (runtimes would not load it) is read as a network list. */
const kindOf = (path: string): FileKind => kindOfFile(basename(path)) ?? 'list';

const exists = async (path: string): Promise<boolean> => (await stat(path).catch(() => undefined)) !== undefined;

function binaryLine(action: BinaryAction, src: string, dryRun: boolean): string {
  switch (action) {
    case 'installed':
      return dryRun ? `would install (from ${src})` : `installed (copied from ${src})`;
    case 'updated':
      return dryRun ? `would update (from ${src})` : `updated (copied from ${src})`;
    case 'mode-fixed':
      return dryRun ? 'same content; would set mode 0755' : 'same content; mode set to 0755';
    case 'up-to-date':
      return 'already up to date';
    case 'same-file':
      return 'already in place (it is the running executable)';
  }
}

/** The interpreter of a `#!` file, or undefined for a binary. */
async function interpreterOf(file: string): Promise<string | undefined> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const buf = Buffer.alloc(128);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const head = buf.subarray(0, bytesRead).toString('latin1');
    return head.startsWith('#!') ? (head.slice(2).split('\n')[0] ?? '').trim() : undefined;
  } finally {
    await fh.close();
  }
}

/** `#!/usr/bin/env node`, `#!/usr/local/bin/nodejs`, `#!/usr/bin/env node20`... */
const NODE_INTERPRETER = /(^|[\s/])node[\w.-]*(\s|$)/;

async function copyBinary(from: string | undefined, script: boolean, binDir: string, dryRun: boolean, io: Io): Promise<boolean> {
  const src = from !== undefined ? { ok: true as const, value: resolve(from) } : installSource(script);
  if (!src.ok) {
    io.err(`masq-janitor install: ${src.error}\n`);
    return false;
  }
  const interp = await interpreterOf(src.value);
  if (interp !== undefined && NODE_INTERPRETER.test(interp) && !script) {
    io.err(
      `masq-janitor install: ${src.value} is a Node script ("#!${interp}"): it runs with whatever node the container runtime's PATH finds, ` +
        'which is not your shell\'s; install the standalone executable (`make standalone`: dist/standalone/masq-janitor), ' +
        'or pass --script to install the script anyway once it answers CNI VERSION under the runtime environment\n',
    );
    return false;
  }
  const r = await installBinary(src.value, binDir, { dryRun, verify: probeVersion });
  if (!r.ok) {
    io.err(`${join(binDir, BINARY_NAME)}: error: ${r.error.message}\n`);
    return false;
  }
  // A copy already in place skipped the verification above: an old script may never have run under the runtime.
  if (r.value.action !== 'installed' && r.value.action !== 'updated' && !dryRun) {
    const bad = await probeVersion(r.value.path);
    if (bad !== undefined) {
      io.err(`${r.value.path}: error: the installed file ${bad}; replace it with the standalone executable\n`);
      return false;
    }
  }
  io.out(`${r.value.path}: ${binaryLine(r.value.action, src.value, dryRun)}\n`);
  if (!(await exists(join(binDir, 'bridge'))) && !(await exists(join(binDir, 'ptp')))) {
    io.err(`note: ${binDir} has no bridge or ptp plugin: is it the directory your runtime runs plugins from?\n`);
  }
  return true;
}

async function installOne(t: Target, dryRun: boolean, io: Io): Promise<boolean> {
  const snap = await readSnapshot(t.path);
  if (!snap.ok) {
    io.err(`${t.path}: error: ${snap.error.message}\n`);
    return false;
  }
  const plan = planInstall(snap.value.data.toString('utf8'), kindOf(t.path), t.named);
  if (!plan.ok) {
    io.err(`${t.path}: error: ${plan.error.message}; file left untouched\n`);
    return false;
  }
  const p = plan.value;
  switch (p.action) {
    case 'present': {
      // The same validation the plugin runs: a typo there fails every ADD of this network.
      const problems = janitorEntries(snap.value.data.toString('utf8'))?.problems ?? [];
      if (problems.length > 0) {
        for (const pr of problems) io.err(`${t.path}: error: ${describeProblem(pr)}; every container start on this network fails until it is fixed; file left untouched\n`);
        return false;
      }
      io.out(`${t.path}: already present${p.warning ? ` (warning: ${p.warning})` : ''}\n`);
      return true;
    }
    case 'skip':
      io.out(`${t.path}: skipped: ${p.reason}\n`);
      return true;
    case 'convert': {
      const base = basename(t.path);
      const list = base.replace(/\.(conf|json)$/, '') + '.conflist';
      io.out(
        `${t.path}: skipped: a single-plugin config cannot chain masq-janitor after ${p.masq ?? 'its plugin'}; ` +
          `to use it, replace ${base} with ${list} holding this network list (nothing changed):\n${p.conflist}`,
      );
      return true;
    }
    case 'add': {
      const after = p.masq ? `after ${p.masq}` : 'named explicitly; no bridge or ptp plugin with ipMasq: true found';
      if (dryRun) {
        io.out(`${t.path}: would add (${after})\n`);
        return true;
      }
      const w = await replaceWithBackup(snap.value, p.text, 'first');
      if (!w.ok) {
        io.err(`${t.path}: error: ${w.error.message}\n`);
        return false;
      }
      const bak = w.value.outcome === 'kept' ? 'content from before the first install kept in' : 'previous content in';
      io.out(`${t.path}: added (${after}; ${bak} ${basename(w.value.backup)})\n`);
      return true;
    }
  }
}

/** `--json`: run the command on a collecting Io, then print its report as one document. */
async function asJson(cmd: string, argv: string[], io: Io, run: (argv: string[], io: Io) => Promise<number>): Promise<number> {
  const collect = jsonCollector(cmd);
  const code = await run(argv.filter((a) => a !== '--json'), collect);
  io.out(JSON.stringify(collect.report(code), null, 2) + '\n');
  return code;
}

export async function install(argv: string[], io: Io = stdio): Promise<number> {
  const args = parse('install', argv, INSTALL_OPTIONS, INSTALL_HELP, io);
  if (!args.ok) return args.code;
  const v = args.values;
  if (v.json) return asJson('install', argv, io, install);
  const dirs = await nodeDirs(v, args.files.length > 0, DEFAULT_CONF_DIR, DEFAULT_BIN_DIR);
  if (!dirs.ok) return usageError(io, 'install', dirs.error);
  if (dirs.value.note) io.err(dirs.value.note);
  const { confDir, binDir } = dirs.value;
  const dryRun = v['dry-run'] ?? false;
  // The binary first: a config naming a plugin the runtime cannot find fails every container start.
  if (v['skip-binary']) {
    if (!(await exists(join(binDir, BINARY_NAME)))) io.err(`note: no ${BINARY_NAME} in ${binDir}: the runtime must find it in another plugin dir\n`);
  } else if (!(await copyBinary(v.from, v.script ?? false, binDir, dryRun, io))) {
    io.err('masq-janitor install: no config changed\n');
    return 1;
  }
  const code = await underRuntimeLocks(confDir, args.files, io, async () => {
    const list = await targets(confDir, args.files, io);
    if (!list) return 1;
    let good = true;
    let chained = false;
    // Whether any file carries the janitor now: on k3s, none usually does, and that needs saying.
    const seen: Io = { out: (t) => ((chained ||= /: (added|already present|would add)\b/.test(t)), io.out(t)), err: io.err };
    for (const t of list) good = (await installOne(t, dryRun, seen)) && good;
    if (good && !chained && dirs.value.k3s) io.out(k3sNothingToDo(dirs.value.k3s));
    return good ? 0 : 1;
  });
  return code ?? 1;
}

interface UninstallOutcome {
  readonly ok: boolean;
  /** The file still names masq-janitor afterwards. */
  readonly referenced: boolean;
}

async function uninstallOne(t: Target, dryRun: boolean, io: Io): Promise<UninstallOutcome> {
  const snap = await readSnapshot(t.path);
  if (!snap.ok) {
    io.err(`${t.path}: error: ${snap.error.message}\n`);
    return { ok: false, referenced: false };
  }
  const plan = planUninstall(snap.value.data.toString('utf8'), kindOf(t.path));
  if (!plan.ok) {
    io.err(`${t.path}: error: ${plan.error.message}; file left untouched\n`);
    return { ok: false, referenced: false };
  }
  const p = plan.value;
  switch (p.action) {
    case 'absent':
      io.out(`${t.path}: not present\n`);
      return { ok: true, referenced: false };
    case 'keep':
      io.out(`${t.path}: kept: ${p.reason}\n`);
      return { ok: true, referenced: true };
    case 'remove': {
      const kept = p.kept > 0 ? `; kept ${p.kept} masq-janitor entr${p.kept === 1 ? 'y' : 'ies'} with settings added by hand` : '';
      if (dryRun) {
        io.out(`${t.path}: would remove${kept}\n`);
        return { ok: true, referenced: p.kept > 0 };
      }
      const w = await replaceWithBackup(snap.value, p.text, 'restore');
      if (!w.ok) {
        io.err(`${t.path}: error: ${w.error.message}\n`);
        return { ok: false, referenced: true };
      }
      const bak = w.value.outcome === 'removed' ? `back to its original bytes; ${basename(w.value.backup)} removed` : 'no backup written';
      io.out(`${t.path}: removed (${bak}${kept})\n`);
      return { ok: true, referenced: p.kept > 0 };
    }
  }
}

export async function uninstall(argv: string[], io: Io = stdio): Promise<number> {
  const args = parse('uninstall', argv, UNINSTALL_OPTIONS, UNINSTALL_HELP, io);
  if (!args.ok) return args.code;
  const v = args.values;
  if (v.json) return asJson('uninstall', argv, io, uninstall);
  if (v['remove-binary'] && args.files.length > 0) {
    return usageError(io, 'uninstall', '--remove-binary checks the whole conf dir first; use it with --conf-dir, not with FILEs');
  }
  const dirs = await nodeDirs(v, args.files.length > 0, DEFAULT_CONF_DIR, DEFAULT_BIN_DIR);
  if (!dirs.ok) return usageError(io, 'uninstall', dirs.error);
  if (dirs.value.note) io.err(dirs.value.note);
  const { confDir, binDir } = dirs.value;
  const dryRun = v['dry-run'] ?? false;
  const edited = await underRuntimeLocks(confDir, args.files, io, async () => {
    const list = await targets(confDir, args.files, io);
    if (!list) return undefined;
    let good = true;
    const still: string[] = [];
    for (const t of list) {
      const r = await uninstallOne(t, dryRun, io);
      good = r.ok && good;
      if (r.referenced) still.push(t.path);
    }
    return { good, still };
  });
  if (!edited) return 1;
  const { good, still } = edited;
  if (!v['remove-binary']) return good ? 0 : 1;
  // Configs first, binary last, and only when nothing names it any more.
  const dest = join(binDir, BINARY_NAME);
  if (!good) {
    io.err(`${dest}: kept: some configs could not be handled\n`);
    return 1;
  }
  if (still.length > 0) {
    io.out(`${dest}: kept: still named by ${still.join(', ')}\n`);
    return 0;
  }
  const cache = await scanCache(resolve(v['state-dir'] ?? DEFAULT_STATE_DIR));
  if (cache.error !== undefined || cache.naming.length > 0 || cache.unreadable.length > 0) {
    const lines = [
      ...cache.naming.map((p) => `  ${p}: its container was started with masq-janitor in its network list`),
      ...cache.unreadable.map((u) => `  ${u.path}: cannot be read (${u.why}), so it may name masq-janitor`),
      ...(cache.error !== undefined ? [`  the cache dir cannot be listed (${cache.error}), so any entry may name masq-janitor`] : []),
    ];
    io.err(
      `${dest}: kept: runtimes tear these containers down with the config cached when they started, and their DEL would fail without the binary (bridge would never release their IPs):\n` +
        `${lines.join('\n')}\n` +
        'remove or restart those containers (or delete the entries that are not libcni cache files), then run uninstall --remove-binary again\n',
    );
    return 1;
  }
  const r = await removeBinary(binDir, dryRun);
  if (!r.ok) {
    io.err(`${dest}: error: ${r.error.message}\n`);
    return 1;
  }
  io.out(`${dest}: ${r.value.action === 'absent' ? 'not present' : dryRun ? 'would remove' : 'removed'}\n`);
  return 0;
}
