import { parseConfig } from '../cni/config.js';
import { JANITOR_TYPE } from './conflist-edit.js';

/**
 * The masq-janitor entries of one config file, validated exactly as the
 * plugin validates what libcni sends it: the plugin object with the list's
 * `cniVersion` and `name` injected (libcni's injection overrides the
 * object's own). install, uninstall and check share this, so "already
 * present" can never mean "present and failing every ADD".
 */
export interface EntryProblem {
  /** 1-based position in `plugins`; undefined for a single-plugin .conf. */
  readonly plugin: number | undefined;
  readonly message: string;
}

export interface EntryReport {
  /** How many masq-janitor entries the file has. */
  readonly entries: number;
  readonly problems: readonly EntryProblem[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** undefined when the text is not a JSON object (the caller reports that its own way). */
export function janitorEntries(text: string): EntryReport | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObj(doc)) return undefined;
  const list = Array.isArray(doc.plugins) ? doc.plugins : undefined;
  const found: { plugin: number | undefined; obj: Obj }[] =
    list === undefined ? (doc.type === JANITOR_TYPE ? [{ plugin: undefined, obj: doc }] : []) : list.flatMap((p, i) => (isObj(p) && p.type === JANITOR_TYPE ? [{ plugin: i + 1, obj: p }] : []));
  const problems: EntryProblem[] = [];
  for (const { plugin, obj } of found) {
    const sent = list === undefined ? obj : { ...obj, cniVersion: doc.cniVersion, name: doc.name };
    const r = parseConfig(JSON.stringify(sent));
    if (!r.ok) problems.push({ plugin, message: `${r.error.msg}${r.error.details ? ` (${r.error.details})` : ''}` });
  }
  return { entries: found.length, problems };
}

export function describeProblem(p: EntryProblem): string {
  return `${p.plugin === undefined ? 'the masq-janitor config' : `the masq-janitor entry (plugin ${p.plugin})`} is invalid: ${p.message}`;
}
