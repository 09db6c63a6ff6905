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

async function plugin(): Promise<number> {
  let stdin: string;
  try {
    stdin = readStdin();
  } catch (e) {
    writeAll(1, JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: 'error reading stdin', details: (e as Error).message }) + '\n');
    return 1;
  }
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
