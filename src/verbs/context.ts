import type { NetConf } from '../cni/config.js';
import type { CniEnv } from '../cni/env.js';
import type { CniError } from '../cni/errors.js';
import type { Runner } from '../backends/exec.js';
import type { Logger } from '../log.js';

/** Everything a verb may use: the parsed invocation and the injected world. */
export interface VerbContext {
  readonly env: CniEnv;
  readonly conf: NetConf;
  readonly run: Runner;
  readonly path: string;
  readonly log: Logger;
}

/** What a verb answers; the plugin shell turns it into stdout and an exit code. */
export type Reply =
  | { readonly kind: 'result'; readonly body: Record<string, unknown> }
  | { readonly kind: 'error'; readonly error: CniError }
  | { readonly kind: 'none' };

export const NONE: Reply = { kind: 'none' };
