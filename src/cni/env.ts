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

/** Characters the kernel rejects in an interface name (as skel checks); length is IFNAMSIZ - 1 bytes. */
const IFNAME_RE = /^[^\s/:]+$/;
const IFNAMSIZ = 16;

export type Env = Readonly<Record<string, string | undefined>>;

export function parseEnv(env: Env): Result<CniEnv> {
  const verb = env.CNI_COMMAND ?? '';
  if (!(VERBS as readonly string[]).includes(verb)) {
    return fail(cniError(Code.InvalidEnvironment, `unknown CNI_COMMAND: ${JSON.stringify(verb)}`));
  }
  const v = verb as Verb;
  const missing = REQUIRED[v].filter((name) => !env[name]);
  if (missing.length > 0) {
    return fail(cniError(Code.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`));
  }
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const usesIdentity = REQUIRED[v].includes('CNI_CONTAINERID');
  if (usesIdentity && !CNI_NAME_PATTERN.test(containerId)) {
    return fail(cniError(Code.InvalidEnvironment, 'invalid CNI_CONTAINERID', `must match ${CNI_NAME_PATTERN.source}`));
  }
  if (usesIdentity && (!IFNAME_RE.test(ifname) || Buffer.byteLength(ifname) >= IFNAMSIZ || ifname === '.' || ifname === '..')) {
    return fail(cniError(Code.InvalidEnvironment, 'invalid CNI_IFNAME', 'at most 15 bytes, no whitespace, "/" or ":"'));
  }
  return ok({
    verb: v,
    containerId,
    netns: env.CNI_NETNS ?? '',
    ifname,
    args: env.CNI_ARGS ?? '',
    path: env.CNI_PATH ?? '',
  });
}
