// Process helpers shared by the benchmark scripts (bench.mjs, hostports.mjs).
import { spawn } from 'node:child_process';

export const ms = (ns) => Number(ns) / 1e6;

/** Run a process to completion; resolves with its output and wall time. Never rejects on exit codes. */
export function run(file, args, { env, input = '', stdoutFd, timeoutMs } = {}) {
  return new Promise((done, failed) => {
    const t0 = process.hrtime.bigint();
    // With a timeout the child gets its own process group, so its iptables children die with it.
    const child = spawn(file, args, { env, stdio: ['pipe', stdoutFd ?? 'pipe', 'pipe'], detached: timeoutMs !== undefined });
    let timedOut = false;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    const out = [];
    const err = [];
    child.stdout?.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', failed);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, timedOut, ms: ms(process.hrtime.bigint() - t0), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

export async function mustRun(file, args, opts) {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

