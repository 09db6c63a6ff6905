import { effectivePath, execaRunner, type Runner } from '../backends/exec.js';
import { createLogger, silentLogger, type Complain } from '../log.js';
import type { Reply, VerbContext } from '../verbs/context.js';
import { parseEnv, type Env } from './env.js';
import { Code, cniError, type CniError } from './errors.js';
import { versionForReplies, versionReply } from './versions.js';

export interface Invocation {
  readonly env: Env;
  readonly stdin: string;
}

export interface Outcome {
  readonly exitCode: number;
  /** Exactly one JSON document, or empty. */
  readonly stdout: string;
}

export interface World {
  /** Defaults to execa with the invocation's PATH. */
  readonly run?: Runner;
  /** Where problems of logging itself go (default: stderr). */
  readonly complain?: Complain;
}

/** The whole plugin as a function: env and stdin in, exit code and stdout out. */
export async function runPlugin(inv: Invocation, world: World = {}): Promise<Outcome> {
  const envParsed = parseEnv(inv.env);
  const shownVersion = versionForReplies(inv.stdin);
  if (!envParsed.ok) return errorOutcome(shownVersion, envParsed.error);
  const env = envParsed.value;

  if (env.verb === 'VERSION') {
    return { exitCode: 0, stdout: versionReply(inv.stdin) };
  }

  // Loaded only past VERSION: validation (zod) is the largest part of startup.
  const { parseConfig } = await import('./config.js');
  const confParsed = parseConfig(inv.stdin);
  if (!confParsed.ok) return errorOutcome(shownVersion, confParsed.error);
  const conf = confParsed.value;

  const path = effectivePath(inv.env);
  const complain = world.complain ?? ((line: string) => process.stderr.write(line + '\n'));
  const log = env.verb === 'DEL' || env.verb === 'GC' ? createLogger(conf.settings, { plugin: 'masq-janitor', verb: env.verb }, complain) : silentLogger;
  const ctx: VerbContext = { env, conf, run: world.run ?? execaRunner(path), path, log };

  let reply: Reply;
  try {
    reply = await dispatch(ctx);
  } catch (e) {
    // A bug must not block teardown either: DEL stays best-effort unless strict.
    log.error({ err: String((e as Error)?.stack ?? e) }, 'internal error');
    reply = env.verb === 'DEL' && !conf.settings.strict ? { kind: 'none' } : { kind: 'error', error: cniError(Code.Internal, 'internal error', String((e as Error)?.message ?? e)) };
  }
  try {
    await log.flush();
  } catch (e) {
    complain(`masq-janitor: logging failed: ${(e as Error).message}`);
  }
  switch (reply.kind) {
    case 'none':
      return { exitCode: 0, stdout: '' };
    case 'result':
      return { exitCode: 0, stdout: JSON.stringify(reply.body) + '\n' };
    case 'error':
      return errorOutcome(conf.cniVersion, reply.error);
  }
}

async function dispatch(ctx: VerbContext): Promise<Reply> {
  switch (ctx.env.verb) {
    case 'ADD':
      return (await import('../verbs/add.js')).add(ctx);
    case 'CHECK':
      return (await import('../verbs/check.js')).check(ctx);
    case 'DEL':
      return (await import('../verbs/del.js')).del(ctx);
    case 'GC':
      return (await import('../verbs/gc.js')).gc(ctx);
    case 'STATUS':
      return (await import('../verbs/status.js')).status(ctx);
    case 'VERSION':
      throw new Error('VERSION is answered before config parsing');
  }
}

function errorOutcome(cniVersion: string, e: CniError): Outcome {
  return { exitCode: 1, stdout: JSON.stringify({ cniVersion, code: e.code, msg: e.msg, details: e.details }) + '\n' };
}
