import { readFileSync } from 'node:fs';
import { CNI_NAME_PATTERN } from '../identity.js';
import { Code, cniError, fail, ok, type Result } from './errors.js';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Verb = (typeof VERBS)[number];

/** What the runtime told us through CNI_* variables. */
export interface CniEnv {
  readonly verb: Verb;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** DEL only: why this identity cannot be used safely. DEL then removes nothing, and says so in the log. */
  readonly identityProblem?: string;
  /** CNI_IFNAME is valid for libcni but not text we can pass on exactly (invalid UTF-8). */
  readonly ifnameNotText?: boolean;
  readonly args: string;
  readonly path: string;
}

type Var = 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH';

/** SPEC "Parameters": which variables each verb requires. DEL may have no netns. */
const REQUIRED: Record<Verb, readonly Var[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

/** IFNAMSIZ - 1 bytes, as libcni's utils.ValidateInterfaceName counts them (len of the Go string). */
const MAX_IFNAME_BYTES = 15;

/** Go's unicode.IsSpace, which ValidateInterfaceName uses (not JavaScript's \s: U+FEFF is not space in Go). */
export function isGoSpace(cp: number): boolean {
  if (cp <= 0xff) return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d) || cp === 0x85 || cp === 0xa0;
  return cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 || cp === 0x202f || cp === 0x205f || cp === 0x3000;
}

/**
 * libcni's ValidateInterfaceName on the raw bytes: non-empty, at most 15
 * bytes, not "." or "..", and no '/', ':' or Go space among its runes
 * (invalid UTF-8 decodes to U+FFFD, which is none of them).
 */
export function interfaceNameProblem(raw: Buffer): string | undefined {
  if (raw.length === 0) return 'interface name is empty';
  if (raw.length > MAX_IFNAME_BYTES) return `interface name is longer than ${MAX_IFNAME_BYTES} bytes`;
  const text = raw.toString('utf8');
  if (text === '.' || text === '..') return 'interface name is . or ..';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '/' || ch === ':' || isGoSpace(cp)) return `interface name contains an invalid character ${JSON.stringify(ch)}`;
  }
  return undefined;
}

/** One variable's bytes exactly as the runtime passed them; Node decodes process.env as UTF-8, lossily. */
export function rawEnvironValue(name: string, environ: Buffer): Buffer | undefined {
  const key = Buffer.from(`${name}=`);
  let start = 0;
  while (start < environ.length) {
    let end = environ.indexOf(0, start);
    if (end < 0) end = environ.length;
    if (environ.subarray(start, start + key.length).equals(key)) return environ.subarray(start + key.length, end);
    start = end + 1;
  }
  return undefined;
}

function ownEnviron(): Buffer | undefined {
  try {
    return readFileSync('/proc/self/environ');
  } catch {
    return undefined;
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * `environ`: the raw environment block, to check CNI_IFNAME byte for byte.
 * By default it is read from /proc/self/environ when `env` is this
 * process's own environment.
 */
export function parseEnv(env: Env, environ: Buffer | undefined = env === process.env ? ownEnviron() : undefined): Result<CniEnv> {
  const verb = env.CNI_COMMAND ?? '';
  if (!(VERBS as readonly string[]).includes(verb)) {
    return fail(cniError(Code.InvalidEnvironment, `unknown CNI_COMMAND: ${JSON.stringify(verb)}`));
  }
  const v = verb as Verb;
  const base = { verb: v, containerId: env.CNI_CONTAINERID ?? '', netns: env.CNI_NETNS ?? '', ifname: env.CNI_IFNAME ?? '', args: env.CNI_ARGS ?? '', path: env.CNI_PATH ?? '' };
  const missing = REQUIRED[v].filter((name) => !env[name]);
  const usesIdentity = REQUIRED[v].includes('CNI_CONTAINERID');
  const raw = (environ && rawEnvironValue('CNI_IFNAME', environ)) ?? Buffer.from(base.ifname);
  const problem =
    missing.length > 0
      ? `required env variables [${missing.join(',')}] missing`
      : usesIdentity && !CNI_NAME_PATTERN.test(base.containerId)
        ? `invalid CNI_CONTAINERID: must match ${CNI_NAME_PATTERN.source}`
        : usesIdentity
          ? (() => {
              const p = interfaceNameProblem(raw);
              return p === undefined ? undefined : `invalid CNI_IFNAME: ${p}`;
            })()
          : undefined;
  // DEL never refuses: an identity we cannot use means there is nothing we can safely remove.
  if (problem !== undefined && v === 'DEL') return ok({ ...base, identityProblem: problem });
  if (problem !== undefined) return fail(cniError(Code.InvalidEnvironment, problem));
  const ifnameNotText = !Buffer.from(base.ifname).equals(raw);
  return ok({ ...base, ...(ifnameNotText ? { ifnameNotText } : {}) });
}
