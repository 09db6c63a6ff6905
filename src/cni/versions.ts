/** The CNI versions this plugin accepts in a config, lowest first. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SupportedVersion = (typeof SUPPORTED_VERSIONS)[number];

export function isSupported(v: string): v is SupportedVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Numeric compare of dotted versions; only ever called on supported ones. */
export function atLeast(v: SupportedVersion, min: SupportedVersion): boolean {
  return SUPPORTED_VERSIONS.indexOf(v) >= SUPPORTED_VERSIONS.indexOf(min);
}

/** Results before 1.0.0 carry `version: "4"|"6"` on each IP. */
export function resultHasIpVersion(v: SupportedVersion): boolean {
  return !atLeast(v, '1.0.0');
}

const FALLBACK_VERSION = '1.1.0';

/** The version to stamp on VERSION output and early errors: the config's, when it is one we speak. */
export function versionForReplies(stdin: string): string {
  let v: unknown;
  try {
    v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
  } catch {
    // Not JSON: an error about that comes later, or VERSION answers anyway.
  }
  return typeof v === 'string' && isSupported(v) ? v : FALLBACK_VERSION;
}

/** VERSION's answer. It needs nothing else, so the entry point can give it before loading the plugin. */
export function versionReply(stdin: string): string {
  return JSON.stringify({ cniVersion: versionForReplies(stdin), supportedVersions: SUPPORTED_VERSIONS }) + '\n';
}
