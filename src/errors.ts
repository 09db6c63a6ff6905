/**
 * The one error type of the janitor's own work (tools, tables, files), and
 * Result. CNI protocol errors (codes for the runtime) are a different thing
 * and live in cni/errors.ts.
 */

export type Result<T, E = JanitorError> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const fail = <E>(error: E): Result<never, E> => ({ ok: false, error });

export type ErrorKind =
  /** The binary is not on PATH: nothing can have made state with it, so there is nothing to do. */
  | 'missing-tool'
  /** Another process holds the xtables lock; retrying now would only wait again. */
  | 'lock'
  /** Something we planned to delete was already gone: the table moved, read again. */
  | 'vanished'
  /** Anything else, including the kernel refusing a transaction (a chain still entered). */
  | 'failed';

export interface JanitorError {
  readonly kind: ErrorKind;
  readonly message: string;
}

export const janitorError = (kind: ErrorKind, message: string): JanitorError => ({ kind, message });

/** May a fresh read and a new plan succeed where this failed? */
export const retryable = (e: JanitorError): boolean => e.kind === 'vanished' || e.kind === 'failed';
