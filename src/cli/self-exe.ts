import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fail, ok, type Result } from '../cni/errors.js';
import { BINARY_NAME } from './atomic-file.js';

/**
 * The file `install` copies when no `--from` is given: the masq-janitor
 * that is running.
 * - A Node single executable: the executable itself (process.execPath).
 * - Otherwise the bundle Node was started with (process.argv[1], both for
 *   `node dist/masq-janitor` and for `./dist/masq-janitor` via its #!
 *   line). Its name must be masq-janitor: under a test runner or a wrapper
 *   argv[1] is some other program, and copying that into the bin dir as
 *   the plugin would break every container start.
 */
export function runningExecutable(): Result<string, string> {
  if (isSingleExecutable()) return ok(process.execPath);
  const script = process.argv[1];
  if (script === undefined || basename(script) !== BINARY_NAME) {
    return fail(`cannot tell which file is masq-janitor (running ${JSON.stringify(script ?? process.execPath)}); pass --from FILE`);
  }
  return ok(resolve(script));
}

/**
 * What install copies by default: a file that needs nothing from the host.
 * - Running as the single executable: itself.
 * - Running as the bundle: the single executable `make standalone` puts
 *   beside it (dist/standalone/masq-janitor), never the bundle itself
 *   unless `script` is asked for: the bundle is `#!/usr/bin/env node`, and
 *   node is found on the operator's PATH, not necessarily on the runtime's.
 */
export function installSource(script: boolean): Result<string, string> {
  const running = runningExecutable();
  if (!running.ok || script || isSingleExecutable()) return running;
  const standalone = join(dirname(running.value), 'standalone', BINARY_NAME);
  if (existsSync(standalone)) return ok(standalone);
  return fail(
    `no standalone executable at ${standalone} (build it with \`make standalone\`, or pass --from FILE); ` +
      `to install the Node script ${running.value} itself, pass --script (it then has to answer CNI VERSION in the environment runtimes give plugins)`,
  );
}

/**
 * node:sea exists from Node 20.12; before that nothing can be a single
 * executable of ours. Loaded through createRequire: the bundler would turn
 * a literal `import('node:sea')` into `require("sea")`, which does not
 * exist, and a SEA's main script cannot use dynamic import() at all.
 */
function isSingleExecutable(): boolean {
  try {
    const sea = createRequire(process.execPath)('node:sea') as typeof import('node:sea');
    return sea.isSea();
  } catch {
    return false;
  }
}
