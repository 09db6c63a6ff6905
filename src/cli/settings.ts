import { readFileSync } from 'node:fs';
import { DEFAULT_SETTINGS, parseConfig, type Settings } from '../cni/config.js';

/**
 * Operator commands take the janitor's settings from the same JSON the
 * plugin reads: a conflist (its masq-janitor entry) or one plugin object.
 */
export function loadJanitorSettings(file: string | undefined): { ok: true; value: Settings } | { ok: false; error: string } {
  if (file === undefined) return { ok: true, value: DEFAULT_SETTINGS };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { ok: false, error: `${file}: ${(e as Error).message}` };
  }
  const obj = (doc ?? {}) as { plugins?: unknown; name?: unknown; cniVersion?: unknown };
  const entry = Array.isArray(obj.plugins) ? (obj.plugins as { type?: unknown }[]).find((p) => p?.type === 'masq-janitor') : obj;
  if (!entry) return { ok: true, value: DEFAULT_SETTINGS };
  const parsed = parseConfig(JSON.stringify({ cniVersion: obj.cniVersion ?? '1.1.0', name: obj.name ?? 'sweep', ...entry }));
  return parsed.ok ? { ok: true, value: parsed.value.settings } : { ok: false, error: `${file}: ${parsed.error.msg} ${parsed.error.details}` };
}
