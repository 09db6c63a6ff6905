import { fail, ok, type Result } from '../cni/errors.js';
import { isSupported, SUPPORTED_VERSIONS } from '../cni/versions.js';

/**
 * What `install` and `uninstall` do to one CNI config file, as text in and
 * text out: parse, decide, append or remove. No file system here; the
 * commands own reading, atomic writing and backups (atomic-file.ts).
 *
 * Output is 2-space JSON with the original key order. JSON.parse keeps
 * insertion order except for integer-like keys ("0", "12"), which JS
 * objects list first; no CNI config uses such keys, and Go readers do not
 * care about order anyway.
 */

export const JANITOR_TYPE = 'masq-janitor';

/** What install appends, and the only entry uninstall removes. */
export const JANITOR_ENTRY: { readonly type: typeof JANITOR_TYPE } = { type: JANITOR_TYPE };

/**
 * How runtimes read a file of the conf dir, by its name: go-cni, ocicni and
 * nerdctl load `*.conflist` as a network list and `*.conf`/`*.json` as one
 * plugin (libcni.ConfFiles with those three extensions).
 */
export type FileKind = 'list' | 'single';

export function kindOfFile(name: string): FileKind | undefined {
  if (name.endsWith('.conflist')) return 'list';
  if (name.endsWith('.conf') || name.endsWith('.json')) return 'single';
  return undefined;
}

export interface EditError {
  readonly kind: 'invalid-json' | 'invalid-config';
  readonly message: string;
}

export type InstallPlan =
  /** `masq` names the plugin that masquerades; undefined when the file was named without one. */
  | { readonly action: 'add'; readonly text: string; readonly masq: string | undefined }
  | { readonly action: 'present'; readonly warning: string | undefined }
  | { readonly action: 'skip'; readonly reason: string }
  /** A single-plugin file cannot chain; `conflist` is the network list that would replace it. */
  | { readonly action: 'convert'; readonly masq: string | undefined; readonly conflist: string };

export type UninstallPlan =
  /** `kept`: janitor entries left because they carry settings install never writes. */
  | { readonly action: 'remove'; readonly text: string; readonly removed: number; readonly kept: number }
  | { readonly action: 'absent' }
  | { readonly action: 'keep'; readonly reason: string };

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function formatJson(doc: Json): string {
  return JSON.stringify(doc, null, 2) + '\n';
}

/**
 * Where JSON.parse gave up, for the message: V8's own text has no position
 * for some errors and quotes the input across lines. A recogniser of the
 * JSON grammar, only ever run on text JSON.parse rejected.
 */
function errorOffset(text: string): number {
  let i = 0;
  const lexeme = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const string = (): boolean => {
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined || c < ' ') return false;
      if (c === '"') {
        i++;
        return true;
      }
      if (c === '\\') {
        const esc = /["\\/bfnrt]|u[0-9a-fA-F]{4}/y;
        esc.lastIndex = i + 1;
        const m = esc.exec(text);
        if (!m) return false;
        i += 1 + m[0].length;
      } else i++;
    }
  };
  const items = (close: string, item: () => boolean): boolean => {
    i++;
    ws();
    if (text[i] === close) {
      i++;
      return true;
    }
    for (;;) {
      if (!item()) return false;
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] !== close) return false;
      i++;
      return true;
    }
  };
  const member = (): boolean => {
    ws();
    if (text[i] !== '"' || !string()) return false;
    ws();
    if (text[i] !== ':') return false;
    i++;
    return value();
  };
  const value = (): boolean => {
    ws();
    const c = text[i];
    if (c === '{') return items('}', member);
    if (c === '[') return items(']', value);
    if (c === '"') return string();
    lexeme.lastIndex = i;
    const m = lexeme.exec(text);
    if (!m) return false;
    i += m[0].length;
    return true;
  };
  if (value()) ws();
  return i;
}

function describeJsonError(text: string): string {
  const pos = errorOffset(text);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  const what = pos >= text.length ? 'unexpected end of input' : `unexpected ${JSON.stringify(text.slice(pos, pos + 1))}`;
  return `invalid JSON at line ${line}, column ${column}: ${what}`;
}

function parseObject(text: string): Result<JsonObject, EditError> {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch {
    return fail({ kind: 'invalid-json', message: describeJsonError(text) });
  }
  if (!isObject(doc)) return fail({ kind: 'invalid-config', message: 'not a JSON object' });
  return ok(doc);
}

/**
 * Integer literals beyond 2^53 would come back rounded from JSON.parse, and
 * a Go reader may hold them in an int64: refuse to rewrite rather than
 * change a value. Only called on text that parsed, so every unquoted digit
 * run is a number token.
 */
function unsafeInteger(text: string): string | undefined {
  for (const m of text.matchAll(/"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g)) {
    const tok = m[1];
    if (tok !== undefined && /^-?\d+$/.test(tok) && !Number.isSafeInteger(Number(tok))) return tok;
  }
  return undefined;
}

const MASQ_TYPES = new Set(['bridge', 'ptp']);

/** Why this plugin leaves masquerade chains behind on DEL, or undefined. */
function masquerades(p: JsonObject): string | undefined {
  if (typeof p.type === 'string' && MASQ_TYPES.has(p.type) && p.ipMasq === true) return `${p.type} with ipMasq: true`;
  // flannel passes its network name on to the delegate, so the chain is the one the janitor computes.
  if (p.type === 'flannel' && isObject(p.delegate)) {
    const t = p.delegate.type ?? 'bridge';
    if (typeof t === 'string' && MASQ_TYPES.has(t) && p.delegate.ipMasq === true) return `flannel delegating to ${t} with ipMasq: true`;
  }
  return undefined;
}

function noMasqReason(plugins: readonly JsonObject[]): string {
  const flannel = plugins.find((p) => p.type === 'flannel');
  if (flannel && !(isObject(flannel.delegate) && 'ipMasq' in flannel.delegate)) {
    // flannel-io/cni-plugin: a delegate without ipMasq gets !FLANNEL_IPMASQ from subnet.env.
    return 'flannel sets its bridge ipMasq from FLANNEL_IPMASQ at run time (false with k3s and kube-flannel); name the file to add masq-janitor anyway';
  }
  return 'no bridge or ptp plugin with ipMasq: true';
}

/** Dotted numeric compare; non-numeric parts count as 0. */
function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** libcni's own spec version: it drops anything newer from `cniVersions`. */
const LIBCNI_CURRENT = '1.1.0';

/**
 * The janitor rejects versions it does not declare (code 1), and a failing
 * ADD breaks the whole network: never append it where that would happen.
 * Runtimes on libcni >= 1.2 pick the highest of `cniVersion` and
 * `cniVersions` up to 1.1.0; older ones use `cniVersion`. Both must pass.
 */
function versionProblem(doc: JsonObject): string | undefined {
  const supported = SUPPORTED_VERSIONS.join(', ');
  const v = doc.cniVersion;
  if (typeof v !== 'string') return `no cniVersion; masq-janitor needs one of ${supported}`;
  if (!isSupported(v)) return `cniVersion ${v} is not one masq-janitor supports (${supported})`;
  if (Array.isArray(doc.cniVersions)) {
    const candidates = [v, ...doc.cniVersions.filter((x): x is string => typeof x === 'string')].filter((x) => compareVersions(x, LIBCNI_CURRENT) <= 0);
    const chosen = candidates.sort(compareVersions).at(-1);
    if (chosen !== undefined && !isSupported(chosen)) return `cniVersions selects ${chosen}, which masq-janitor does not support (${supported})`;
  }
  return undefined;
}

function pluginObjects(doc: JsonObject): Result<JsonObject[], EditError> {
  const plugins = doc.plugins;
  if (!Array.isArray(plugins)) return fail({ kind: 'invalid-config', message: 'no "plugins" array: not a network configuration list' });
  const out: JsonObject[] = [];
  for (const [i, p] of plugins.entries()) {
    if (!isObject(p)) return fail({ kind: 'invalid-config', message: `plugins[${i}] is not an object` });
    if (typeof p.type !== 'string' || p.type === '') return fail({ kind: 'invalid-config', message: `plugins[${i}] has no "type"` });
    out.push(p);
  }
  return ok(out);
}

const tooLarge = (tok: string, verb: 'add' | 'remove'): EditError => ({
  kind: 'invalid-config',
  message: `the integer ${tok} is too large to rewrite exactly; ${verb} {"type": "${JANITOR_TYPE}"} by hand`,
});

/**
 * Decide what install does to one file. `named`: the operator listed the
 * file, so it gets the janitor even without a masquerading plugin (but
 * never with a cniVersion the janitor would reject).
 */
export function planInstall(text: string, kind: FileKind, named: boolean): Result<InstallPlan, EditError> {
  const parsed = parseObject(text);
  if (!parsed.ok) return parsed;
  const doc = parsed.value;
  if (kind === 'single') return planSingle(text, doc, named);

  const plugins = pluginObjects(doc);
  if (!plugins.ok) return plugins;
  const list = plugins.value;
  const at = list.flatMap((p, i) => (p.type === JANITOR_TYPE ? [i] : []));
  if (at.length > 0) {
    const last = list.length - 1;
    const warning =
      at.length > 1
        ? `masq-janitor appears ${at.length} times`
        : at[0] !== last
          ? `masq-janitor is plugin ${(at[0] as number) + 1} of ${list.length}; it must be the last one so that it runs first on DEL`
          : undefined;
    return ok({ action: 'present', warning });
  }
  const problem = versionProblem(doc);
  if (problem) return ok({ action: 'skip', reason: problem });
  const masq = list.map(masquerades).find((m) => m !== undefined);
  if (masq === undefined && !named) return ok({ action: 'skip', reason: noMasqReason(list) });
  const big = unsafeInteger(text);
  if (big) return fail(tooLarge(big, 'add'));
  return ok({ action: 'add', text: formatJson({ ...doc, plugins: [...list, { ...JANITOR_ENTRY }] }), masq });
}

function planSingle(text: string, doc: JsonObject, named: boolean): Result<InstallPlan, EditError> {
  if (Array.isArray(doc.plugins) && doc.type === undefined) {
    return ok({ action: 'skip', reason: 'a network list in a .conf/.json file: runtimes read those as one plugin; rename it to .conflist' });
  }
  if (typeof doc.type !== 'string' || doc.type === '') return fail({ kind: 'invalid-config', message: 'no "type": not a plugin configuration' });
  if (doc.type === JANITOR_TYPE) return ok({ action: 'skip', reason: 'masq-janitor alone does nothing; it must follow bridge or ptp in a .conflist' });
  const problem = versionProblem(doc);
  if (problem) return ok({ action: 'skip', reason: problem });
  const masq = masquerades(doc);
  if (masq === undefined && !named) return ok({ action: 'skip', reason: noMasqReason([doc]) });
  const big = unsafeInteger(text);
  if (big) return fail(tooLarge(big, 'add'));
  // libcni's ConfListFromConf makes the same list: name and version move up, the plugin keeps the rest.
  const { cniVersion, name, ...plugin } = doc;
  const head: JsonObject = {};
  if (cniVersion !== undefined) head.cniVersion = cniVersion;
  if (name !== undefined) head.name = name;
  return ok({ action: 'convert', masq, conflist: formatJson({ ...head, plugins: [plugin, { ...JANITOR_ENTRY }] }) });
}

/** Exactly the entry install appends: one key, `type`. */
const isInstalledEntry = (p: Json): boolean => isObject(p) && p.type === JANITOR_TYPE && Object.keys(p).length === 1;

/**
 * Decide what uninstall does: remove the `{"type": "masq-janitor"}` entries
 * install added, and nothing else. An entry that has gained settings
 * (logLevel, strict, ...) was edited by someone, so it stays.
 */
export function planUninstall(text: string, kind: FileKind): Result<UninstallPlan, EditError> {
  const parsed = parseObject(text);
  if (!parsed.ok) return parsed;
  const doc = parsed.value;
  if (kind === 'single') {
    return ok(doc.type === JANITOR_TYPE ? { action: 'keep', reason: 'a single-plugin masq-janitor config, not made by install; remove it by hand' } : { action: 'absent' });
  }
  const plugins = doc.plugins;
  if (!Array.isArray(plugins)) return fail({ kind: 'invalid-config', message: 'no "plugins" array: not a network configuration list' });
  const removed = plugins.filter(isInstalledEntry).length;
  const edited = plugins.filter((p) => isObject(p) && p.type === JANITOR_TYPE && !isInstalledEntry(p));
  if (removed === 0) {
    if (edited.length === 0) return ok({ action: 'absent' });
    const keys = [...new Set(edited.flatMap((p) => Object.keys(p as JsonObject).filter((k) => k !== 'type')))];
    return ok({ action: 'keep', reason: `the masq-janitor entry has settings install does not write (${keys.join(', ')}); remove it by hand` });
  }
  const big = unsafeInteger(text);
  if (big) return fail(tooLarge(big, 'remove'));
  return ok({ action: 'remove', text: formatJson({ ...doc, plugins: plugins.filter((p) => !isInstalledEntry(p)) }), removed, kept: edited.length });
}
