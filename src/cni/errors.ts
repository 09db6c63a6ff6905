/**
 * CNI error codes (SPEC "Error codes"; 8 and 999 come from the Go types
 * package that every upstream plugin uses, so runtimes already know them).
 */
export const Code = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  Internal: 999,
} as const;

export type CodeValue = (typeof Code)[keyof typeof Code];

export interface CniError {
  readonly code: CodeValue;
  readonly msg: string;
  readonly details: string;
}

export function cniError(code: CodeValue, msg: string, details = ''): CniError {
  return { code, msg, details };
}

import type { Result as AnyResult } from '../errors.js';

/** The one Result (src/errors.ts), defaulting to the protocol's error here. */
export type Result<T, E = CniError> = AnyResult<T, E>;
export { fail, ok } from '../errors.js';
