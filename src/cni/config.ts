import { CNI_NAME_PATTERN } from '../identity.js';
import { Code, cniError, fail, ok, type CniError, type Result } from './errors.js';
import { isSupported, SUPPORTED_VERSIONS, type SupportedVersion } from './versions.js';
import * as z from 'zod/mini';
import { issueText } from './zod.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The keys masq-janitor itself reads from its plugin object. */
const JanitorKeys = z.strictObject({
  logFile: z.optional(z.string().check(z.minLength(1), z.maxLength(4096), z.refine((p) => p.startsWith('/'), 'must be an absolute path'))),
  logLevel: z.optional(z.enum(LOG_LEVELS)),
  strict: z.optional(z.boolean()),
  lockWait: z.optional(z.int().check(z.minimum(1), z.maximum(300))),
  gc: z.optional(z.boolean()),
  stateDir: z.optional(z.string().check(z.minLength(1), z.maxLength(4096), z.refine((p) => p.startsWith('/'), 'must be an absolute path'))),
});
type JanitorSettings = z.infer<typeof JanitorKeys>;
const JANITOR_KEYS = Object.keys(JanitorKeys.shape);

const Attachments = z.array(z.looseObject({ containerID: z.string(), ifname: z.string() }));

export interface Settings {
  readonly logFile: string | undefined;
  readonly logLevel: LogLevel;
  /** Cleanup failures become CNI errors instead of being logged. */
  readonly strict: boolean;
  /** Seconds to wait for the xtables lock. */
  readonly lockWait: number;
  readonly gc: boolean;
  /** libcni's state dir: DEL and GC read its result cache (results/) for the container's other interfaces. */
  readonly stateDir: string;
}

export interface GcAttachment {
  readonly containerId: string;
  readonly ifname: string;
}

export interface NetConf {
  readonly cniVersion: SupportedVersion;
  readonly name: string;
  readonly prevResult: unknown;
  /** GC only: undefined when the runtime sent neither attachments key. */
  readonly validAttachments: readonly GcAttachment[] | undefined;
  readonly settings: Settings;
}

export const DEFAULT_SETTINGS: Settings = { logFile: undefined, logLevel: 'warn', strict: false, lockWait: 5, gc: true, stateDir: '/var/lib/cni' };

/** Keys the runtime or other plugins legitimately put in a plugin object. */
const KNOWN_FOREIGN = new Set(['cniVersion', 'cniVersions', 'name', 'type', 'prevResult', 'runtimeConfig', 'args', 'capabilities', 'ipMasq', 'ipam', 'dns']);

/**
 * A key that is a janitor key in other case or with _/- (`logfile`,
 * `log_level`, `GC`), or a close misspelling of a longer one (`strcit`), is
 * almost surely meant for us. Short foreign keys (`ip`, `tc`) are not.
 */
function misspelling(key: string): string | undefined {
  if (KNOWN_FOREIGN.has(key) || key.startsWith('cni.dev/') || JANITOR_KEYS.includes(key)) return undefined;
  const k = key.toLowerCase().replaceAll(/[_-]/g, '');
  return JANITOR_KEYS.find((j) => {
    const jl = j.toLowerCase();
    if (k === jl) return true;
    if (k.length < 4 || jl.length < 4) return false;
    return editDistanceAtMost(k, jl, jl.length < 7 ? 1 : 2);
  });
}

/** Optimal string alignment distance: typos are mostly one insertion, deletion, change or swap. */
function editDistanceAtMost(a: string, b: string, max: number): boolean {
  if (Math.abs(a.length - b.length) > max) return false;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(at(i, j), at(i - 2, j - 2) + 1);
    }
  }
  return at(a.length, b.length) <= max;
}

type Doc = Record<string, unknown>;

function decode(stdin: string): Result<Doc> {
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch (e) {
    return fail(cniError(Code.DecodeFailure, 'error decoding network config from stdin', (e as Error).message));
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return fail(cniError(Code.DecodeFailure, 'network config must be a JSON object'));
  }
  return ok(doc as Doc);
}

/** The network name is half of every attachment's identity: never guessed. */
function nameOf(obj: Doc): Result<string> {
  const name = obj.name;
  if (typeof name !== 'string' || name === '') return fail(cniError(Code.InvalidConfig, 'missing network name'));
  if (!CNI_NAME_PATTERN.test(name)) return fail(cniError(Code.InvalidConfig, 'invalid network name', `must match ${CNI_NAME_PATTERN.source}`));
  return ok(name);
}

function settingsOf(obj: Doc): Result<Settings> {
  for (const key of Object.keys(obj)) {
    const meant = misspelling(key);
    if (meant) return fail(cniError(Code.InvalidConfig, `unknown masq-janitor key "${key}"`, `did you mean "${meant}"?`));
  }
  const own: Record<string, unknown> = {};
  for (const k of JANITOR_KEYS) if (k in obj) own[k] = obj[k];
  const settings = JanitorKeys.safeParse(own);
  if (!settings.success) return fail(cniError(Code.InvalidConfig, 'invalid masq-janitor setting', issueText(settings.error)));
  return ok(withDefaults(settings.data));
}

/** Decode stdin. `version` errors are code 1 so runtimes can negotiate. */
export function parseConfig(stdin: string): Result<NetConf> {
  const doc = decode(stdin);
  if (!doc.ok) return doc;
  const obj = doc.value;
  const version = versionOf(obj);
  if (!version.ok) return version;
  const name = nameOf(obj);
  if (!name.ok) return name;
  const settings = settingsOf(obj);
  if (!settings.ok) return settings;
  const attachments = gcAttachments(obj);
  if (!attachments.ok) return attachments;
  return ok({ cniVersion: version.value, name: name.value, prevResult: obj.prevResult, validAttachments: attachments.value, settings: settings.value });
}

/**
 * How DEL and GC read their config (see docs/teardown-policy.md). libcni
 * stops a DEL chain at the first failing plugin, so bridge would never
 * release the IP: anything wrong with the janitor's own input is a
 * `problem` to log, not a refusal.
 * - janitor keys: all defaults when any is invalid (a half-read config
 *   is harder to reason about than the documented defaults);
 * - a cniVersion bridge accepts but we do not: cleanup still runs, without
 *   prevResult (only a hint, and its shape depends on the version);
 * - GC attachments unreadable: undefined, which GC reads as "do nothing";
 * - no usable JSON object or network name: `conf` is undefined and nothing
 *   is touched, since an identity we cannot trust could match someone
 *   else's rules.
 * `strict` is only what the config validly says: a `"strict"` that is
 * itself invalid (`"yes"`, `"strcit"`) reads as non-strict, the side that
 * never blocks a teardown.
 */
export interface TeardownConfig {
  readonly conf: NetConf | undefined;
  readonly strict: boolean;
  /** In the order found; with `strict` the first one is the CNI error to return. */
  readonly problems: readonly CniError[];
}

export function parseTeardownConfig(stdin: string): TeardownConfig {
  const strict = parseConfig(stdin);
  if (strict.ok) return { conf: strict.value, strict: strict.value.settings.strict, problems: [] };
  const doc = decode(stdin);
  if (!doc.ok) return { conf: undefined, strict: false, problems: [doc.error] };
  const obj = doc.value;
  const problems: CniError[] = [];
  const keep = <T>(r: Result<T>): T | undefined => (r.ok ? r.value : void problems.push(r.error));
  const version = keep(versionOf(obj));
  const name = keep(nameOf(obj));
  const settings = keep(settingsOf(obj));
  const attachments = keep(gcAttachments(obj));
  const conf: NetConf | undefined =
    name === undefined
      ? undefined
      : {
          cniVersion: version ?? '1.1.0',
          name,
          prevResult: version === undefined ? undefined : obj.prevResult,
          validAttachments: attachments,
          settings: settings ?? DEFAULT_SETTINGS,
        };
  return { conf, strict: obj.strict === true, problems };
}

function withDefaults(s: JanitorSettings): Settings {
  return {
    logFile: s.logFile ?? DEFAULT_SETTINGS.logFile,
    logLevel: s.logLevel ?? DEFAULT_SETTINGS.logLevel,
    strict: s.strict ?? DEFAULT_SETTINGS.strict,
    lockWait: s.lockWait ?? DEFAULT_SETTINGS.lockWait,
    gc: s.gc ?? DEFAULT_SETTINGS.gc,
    stateDir: s.stateDir ?? DEFAULT_SETTINGS.stateDir,
  };
}

function versionOf(obj: Record<string, unknown>): Result<SupportedVersion> {
  const v = obj.cniVersion;
  // skel reads a missing cniVersion as 0.1.0, which nothing here supports.
  const shown = typeof v === 'string' ? v : v === undefined ? '0.1.0' : JSON.stringify(v);
  if (typeof v !== 'string' || !isSupported(v)) {
    return fail(cniError(Code.IncompatibleVersion, 'incompatible CNI versions', `config is ${JSON.stringify(shown)}, plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`));
  }
  return ok(v);
}

/** libcni >= 1.2.3 sends both keys; earlier 1.2.x only the first. */
function gcAttachments(obj: Record<string, unknown>): Result<readonly GcAttachment[] | undefined, CniError> {
  const raw = obj['cni.dev/valid-attachments'] ?? obj['cni.dev/attachments'];
  if (raw === undefined) return ok(undefined);
  const parsed = Attachments.safeParse(raw);
  if (!parsed.success) return fail(cniError(Code.InvalidConfig, 'invalid cni.dev/valid-attachments', issueText(parsed.error)));
  return ok(parsed.data.map((a) => ({ containerId: a.containerID, ifname: a.ifname })));
}
