import { fail, ok, type Result } from '../cni/errors.js';
import { isSupported, SUPPORTED_VERSIONS } from '../cni/versions.js';

/**
 * What `install` and `uninstall` do to one CNI config file, as text in and
 * text out: parse, decide, insert or remove. No file system here; the
 * commands own reading, atomic writing and backups (atomic-file.ts).
 *
 * The text is edited, never re-serialized: config management (Ansible,
 * Puppet, the runtime's own writer) compares bytes, so install inserts one
 * entry after the last plugin, in the file's own indentation, and uninstall
 * removes exactly those bytes again. Everything else, including key order,
 * number spelling and the final newline or its absence, stays as it was.
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

/** Where a JSON value sits in the text: [start, end). Objects and arrays keep their children's spans. */
interface Span {
  readonly start: number;
  readonly end: number;
  readonly members?: readonly { readonly key: string; readonly keyStart: number; readonly keyEnd: number; readonly value: Span }[];
  readonly elements?: readonly Span[];
}

/**
 * Positions of the values in `text`, to `depth` levels of objects and
 * arrays; anything deeper is skipped without recursion, so a config nested
 * 100,000 levels deep (which JSON.parse accepts) cannot exhaust the stack.
 * Only ever run on text JSON.parse accepted, so it checks nothing; it only
 * has to agree with JSON.parse on where each value starts and ends.
 */
function spans(text: string, depth: number): Span {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const str = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  const skip = (): void => {
    let open = 0;
    while (i < text.length) {
      const c = text[i] as string;
      if (c === '"') {
        str();
        if (open === 0) return;
        continue;
      }
      if (c === '{' || c === '[') open++;
      else if (c === '}' || c === ']') {
        // A scalar ends at its container's closing bracket; a container at its own.
        if (open === 0) return;
        if (--open === 0) {
          i++;
          return;
        }
      } else if (open === 0 && ' \t\n\r,'.includes(c)) return;
      i++;
    }
  };
  const value = (levels: number): Span => {
    ws();
    const start = i;
    const c = text[i];
    if (levels === 0 || (c !== '{' && c !== '[')) {
      skip();
      return { start, end: i };
    }
    i++;
    if (c === '{') {
      const members: { key: string; keyStart: number; keyEnd: number; value: Span }[] = [];
      for (;;) {
        ws();
        if (text[i] === '}') break;
        if (text[i] === ',') i++;
        ws();
        const keyStart = i;
        str();
        const keyEnd = i;
        ws();
        i++; // ':'
        members.push({ key: JSON.parse(text.slice(keyStart, keyEnd)) as string, keyStart, keyEnd, value: value(levels - 1) });
        ws();
      }
      i++;
      return { start, end: i, members };
    }
    const elements: Span[] = [];
    for (;;) {
      ws();
      if (text[i] === ']') break;
      if (text[i] === ',') i++;
      elements.push(value(levels - 1));
      ws();
    }
    i++;
    return { start, end: i, elements };
  };
  return value(depth);
}

/** The `plugins` array JSON.parse reads: with duplicate keys, the last one wins. */
function pluginsSpan(text: string): Span | undefined {
  return spans(text, 3).members?.findLast((m) => m.key === 'plugins')?.value;
}

/**
 * The text of the entry install inserts, shaped like the plugin before it:
 * the same whitespace after `{` and before `}`, the same `: ` after a key.
 * So `{ "type": "masq-janitor" }` after a one-line plugin, and the key on
 * its own indented line after a multi-line one.
 */
function entryLike(text: string, like: Span | undefined): string {
  const first = like?.members?.[0];
  const lastMember = like?.members?.at(-1);
  if (like === undefined || first === undefined || lastMember === undefined) return `{"type": "${JANITOR_TYPE}"}`;
  const open = text.slice(like.start + 1, first.keyStart);
  const colon = text.slice(first.keyEnd, first.value.start);
  const close = text.slice(lastMember.value.end, like.end - 1);
  return `{${open}"type"${colon}"${JANITOR_TYPE}"${close}}`;
}

/**
 * Insert the entry after the last plugin: `,`, then the whitespace that
 * introduces the last plugin (after its comma, or after `[`), then the
 * entry. Uninstall removes exactly this: from the end of the plugin before
 * the entry to the end of the entry.
 */
function insertEntry(text: string): string {
  const arr = pluginsSpan(text) as Span;
  const els = arr.elements ?? [];
  const last = els.at(-1);
  if (last === undefined) return text.slice(0, arr.start + 1) + entryLike(text, undefined) + text.slice(arr.start + 1);
  const gap = text.slice(els.length > 1 ? (els.at(-2) as Span).end : arr.start + 1, last.start);
  const lead = gap.slice(gap.indexOf(',') + 1);
  return text.slice(0, last.end) + ',' + lead + entryLike(text, last) + text.slice(last.end);
}

/**
 * Remove the plugins at the indices in `drop`, each with the separator that
 * joins it to the nearest kept plugin before it (or, with none before, to
 * the next kept one), so what insertEntry added disappears byte for byte.
 */
function removeEntries(text: string, drop: ReadonlySet<number>): string {
  const arr = pluginsSpan(text) as Span;
  const els = arr.elements ?? [];
  const cuts: [number, number][] = [];
  for (const [i, el] of els.entries()) {
    if (!drop.has(i)) continue;
    const prev = els.findLastIndex((_, j) => j < i && !drop.has(j));
    if (prev >= 0) {
      cuts.push([(els[prev] as Span).end, el.end]);
      continue;
    }
    const next = els.findIndex((_, j) => j > i && !drop.has(j));
    cuts.push([el.start, next >= 0 ? (els[next] as Span).start : (els.at(-1) as Span).end]);
  }
  // Cuts of neighbouring entries overlap: merge them, then cut from the back.
  cuts.sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const c of cuts) {
    const top = merged.at(-1);
    if (top && c[0] <= top[1]) top[1] = Math.max(top[1], c[1]);
    else merged.push([c[0], c[1]]);
  }
  let out = text;
  for (const [x, y] of merged.reverse()) out = out.slice(0, x) + out.slice(y);
  return out;
}

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
  let pos: number;
  try {
    pos = errorOffset(text);
  } catch {
    // The recogniser recurses: input nested deeper than the stack allows gets no position.
    return 'invalid JSON (nested too deeply to say where)';
  }
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

const tooLarge = (tok: string): EditError => ({
  kind: 'invalid-config',
  message: `the integer ${tok} is too large to rewrite exactly; write the conflist by hand`,
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
  return ok({ action: 'add', text: insertEntry(text), masq });
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
  if (big) return fail(tooLarge(big));
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
  const drop = new Set(plugins.flatMap((p, i) => (isInstalledEntry(p) ? [i] : [])));
  return ok({ action: 'remove', text: removeEntries(text, drop), removed, kept: edited.length });
}
