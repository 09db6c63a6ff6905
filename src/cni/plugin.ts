import { effectivePath, spawnRunner, type Runner } from '../backends/exec.js';
import { createLogger, silentLogger, type Complain, type Logger } from '../log.js';
import type { Reply, VerbContext } from '../verbs/context.js';
import type { NetConf } from './config.js';
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

const SUCCESS: Outcome = { exitCode: 0, stdout: '' };

/**
 * The verbs of a teardown. libcni runs DEL plugins in reverse and stops at
 * the first failure, so a janitor that fails keeps bridge from releasing
 * the IP; GC is the runtime's last chance to clean up. Both go by
 * docs/teardown-policy.md: nothing about the janitor itself fails them
 * unless its config validly says `"strict": true`.
 */
export const isTeardown = (verb: string | undefined): boolean => verb === 'DEL' || verb === 'GC';

/**
 * Set only by the e2e tests to prove an internal error cannot block a
 * teardown. It can only make the janitor throw inside the region the
 * policy guards, i.e. do less, never more.
 */
const FAULT_VAR = 'MASQ_JANITOR_TEST_FAULT';

/** The whole plugin as a function: env and stdin in, exit code and stdout out. */
export async function runPlugin(inv: Invocation, world: World = {}): Promise<Outcome> {
  const complain = world.complain ?? ((line: string) => process.stderr.write(line + '\n'));
  if (isTeardown(inv.env.CNI_COMMAND)) return teardown(inv, world, complain);

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
  const ctx: VerbContext = { env, conf, run: world.run ?? spawnRunner(path), path, log: silentLogger };
  try {
    return replyOutcome(conf.cniVersion, await dispatch(ctx, inv.env));
  } catch (e) {
    return errorOutcome(conf.cniVersion, internalError(e));
  }
}

async function teardown(inv: Invocation, world: World, complain: Complain): Promise<Outcome> {
  const verb = inv.env.CNI_COMMAND ?? '';
  const shownVersion = versionForReplies(inv.stdin);
  const { parseTeardownConfig } = await import('./config.js');
  const parsed = parseTeardownConfig(inv.stdin);
  const envParsed = parseEnv(inv.env);
  // An identity DEL cannot use means there is nothing it may remove: never an error, strict or not.
  if (envParsed.ok && envParsed.value.identityProblem !== undefined) {
    complain(`masq-janitor ${verb}: ${envParsed.value.identityProblem}; nothing to remove, exit 0 so the runtime's teardown goes on`);
    return SUCCESS;
  }
  const refusal = !envParsed.ok ? envParsed.error : parsed.problems[0];
  if (refusal !== undefined && parsed.strict) return errorOutcome(parsed.conf?.cniVersion ?? shownVersion, refusal);
  const problems = [...(envParsed.ok ? [] : [envParsed.error]), ...parsed.problems];
  for (const p of problems) complain(`masq-janitor ${verb}: ${p.msg}${p.details ? `: ${p.details}` : ''}; ${envParsed.ok && parsed.conf ? 'cleaning up anyway (invalid janitor keys take their defaults)' : 'nothing cleaned up'}, exit 0 so the runtime's teardown goes on (set "strict": true to fail instead)`);
  if (!envParsed.ok || parsed.conf === undefined) return SUCCESS;

  const conf: NetConf = parsed.conf;
  const path = effectivePath(inv.env);
  let log: Logger = silentLogger;
  try {
    log = createLogger(conf.settings, { plugin: 'masq-janitor', verb }, complain);
    const ctx: VerbContext = { env: envParsed.value, conf, run: world.run ?? spawnRunner(path), path, log };
    const reply = await dispatch(ctx, inv.env);
    await flush(log, complain);
    return replyOutcome(conf.cniVersion, reply);
  } catch (e) {
    // A bug must not block teardown either: said on stderr (where runtimes log plugin output) and in the log file.
    complain(`masq-janitor ${verb}: internal error: ${String((e as Error)?.stack ?? e)}`);
    if (conf.settings.logFile) log.error({ err: String((e as Error)?.stack ?? e) }, 'internal error');
    await flush(log, complain);
    return conf.settings.strict ? errorOutcome(conf.cniVersion, internalError(e)) : SUCCESS;
  }
}

async function flush(log: Logger, complain: Complain): Promise<void> {
  try {
    await log.flush();
  } catch (e) {
    complain(`masq-janitor: logging failed: ${(e as Error).message}`);
  }
}

const internalError = (e: unknown): CniError => cniError(Code.Internal, 'internal error', String((e as Error)?.message ?? e));

function replyOutcome(cniVersion: string, reply: Reply): Outcome {
  switch (reply.kind) {
    case 'none':
      return SUCCESS;
    case 'result':
      return { exitCode: 0, stdout: JSON.stringify(reply.body) + '\n' };
    case 'error':
      return errorOutcome(cniVersion, reply.error);
  }
}

async function dispatch(ctx: VerbContext, env: Env): Promise<Reply> {
  if (env[FAULT_VAR] === ctx.env.verb) throw new Error(`${FAULT_VAR} asked for a fault in ${ctx.env.verb}`);
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
