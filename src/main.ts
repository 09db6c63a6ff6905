import { readSync } from 'node:fs';
import pkg from '../package.json' with { type: 'json' };
import { SUPPORTED_VERSIONS, versionReply } from './cni/versions.js';
import { writeAll } from './write-all.js';

/**
 * Entry point. With CNI_COMMAND set this is the CNI plugin; otherwise it is
 * the operator CLI. stdout is written with writeSync so the one JSON
 * document cannot be lost when the process exits.
 */

const MAX_STDIN = 32 * 1024 * 1024;

function readStdin(): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EOF' || code === 'EBADF' || code === 'ENXIO' || code === 'EINVAL') break;
      throw e;
    }
    if (n === 0) break;
    total += n;
    if (total > MAX_STDIN) throw new Error(`stdin larger than ${MAX_STDIN} bytes`);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * DEL and GC are teardowns (docs/teardown-policy.md): whatever goes wrong
 * in the janitor itself is said on stderr and the exit is 0, so libcni goes
 * on to bridge, which releases the IP. Only a config that validly says
 * `"strict": true` turns that into a CNI error. Kept free of imports: this
 * must work even when the rest of the bundle does not load.
 */
const TEARDOWN = process.env.CNI_COMMAND === 'DEL' || process.env.CNI_COMMAND === 'GC';
let stdinSeen: string | undefined;

function strictRequested(stdin: string | undefined): boolean {
  try {
    const doc: unknown = stdin === undefined ? undefined : JSON.parse(stdin);
    return typeof doc === 'object' && doc !== null && (doc as { strict?: unknown }).strict === true;
  } catch {
    return false;
  }
}

async function plugin(): Promise<number> {
  let stdin: string;
  try {
    stdin = readStdin();
  } catch (e) {
    if (TEARDOWN) {
      writeAll(2, `masq-janitor ${process.env.CNI_COMMAND}: error reading stdin: ${(e as Error).message}; nothing cleaned up, exit 0 so the teardown goes on\n`);
      return 0;
    }
    writeAll(1, JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: 'error reading stdin', details: (e as Error).message }) + '\n');
    return 1;
  }
  stdinSeen = stdin;
  // VERSION is asked on every network setup and needs none of the plugin: answer before loading it.
  if (process.env.CNI_COMMAND === 'VERSION') {
    writeAll(1, versionReply(stdin));
    return 0;
  }
  const { runPlugin } = await import('./cni/plugin.js');
  const out = await runPlugin({ env: process.env, stdin });
  if (out.stdout) writeAll(1, out.stdout);
  return out.exitCode;
}

async function main(): Promise<number> {
  if (process.env.CNI_COMMAND !== undefined) return plugin();
  const args = process.argv.slice(2);
  if (args.length === 0) {
    // What skel prints when run by hand, on stderr.
    writeAll(2, `CNI masq-janitor plugin ${pkg.version}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\nOperator commands: masq-janitor --help\n`);
    return 0;
  }
  const { cli } = await import('./cli/cli.js');
  return cli(args);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (TEARDOWN && !strictRequested(stdinSeen)) {
      try {
        writeAll(2, `masq-janitor ${process.env.CNI_COMMAND}: internal error: ${String((e as Error)?.stack ?? e)}; exit 0 so the teardown goes on\n`);
      } finally {
        process.exit(0);
      }
    }
    try {
      if (process.env.CNI_COMMAND !== undefined) {
        writeAll(1, JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: 'internal error', details: String((e as Error)?.message ?? e) }) + '\n');
      } else {
        writeAll(2, `masq-janitor: ${String((e as Error)?.message ?? e)}\n`);
      }
    } finally {
      process.exit(1);
    }
  },
);
