/**
 * zod/mini keeps the bundle small (the classic API with its locales is
 * ~450 KB, parsed on every container start and stop). Only the English
 * messages are loaded, once, here. Schema modules import `zod/mini` as a
 * namespace of their own (so the bundler can drop what they do not use) and
 * this module for its side effect.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

z.config(en());

/** One line, naming each bad path: goes into CNI error details. */
export function issueText(error: z.core.$ZodError): string {
  return z.prettifyError(error).replaceAll('\n', '; ');
}
