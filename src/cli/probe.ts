/**
 * The environments container runtimes run plugins in. Not the operator's
 * shell: a `#!/usr/bin/env node` that works there (nvm, volta, a PATH set
 * in .bashrc) fails every container start under the runtime with
 * `/usr/bin/env: 'node': No such file or directory` (exit 127).
 * - libcni (containerd, CRI-O, nerdctl, podman) gives a plugin its own
 *   process environment plus the CNI_* variables (libcni invoke/args.go,
 *   `os.Environ()` merged with the CNI variables; see
 *   /work/shared/notes/runtimes-and-spec.md "Environment and CNI_ARGS").
 * - containerd, CRI-O and k3s run as systemd services, so that environment
 *   is systemd's: no HOME, no profile, and systemd's built-in default PATH.
 *   systemd 252 as Debian bookworm builds it (split-usr) uses the string
 *   below (found in /usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so;
 *   merged-usr builds drop the last two entries, which only narrows it).
 * - podman tears containers down from `podman container cleanup`, which
 *   conmon starts with the environment podman gave conmon:
 *   libpod/oci_conmon_linux.go configureConmonEnv in podman 4.x passes only
 *   LC_*, CONTAINERS_CONF, XDG_RUNTIME_DIR, _CONTAINERS_* and HOME, no PATH
 *   (PATH was added to that list later). Without PATH, env(1) searches
 *   glibc's default /bin:/usr/bin only.
 */
export const SYSTEMD_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RuntimeEnvironment {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;
}

export const RUNTIME_ENVIRONMENTS: readonly RuntimeEnvironment[] = [
  { name: `a systemd service (containerd, CRI-O, k3s): empty environment, PATH=${SYSTEMD_DEFAULT_PATH}`, env: { PATH: SYSTEMD_DEFAULT_PATH } },
  { name: "podman's teardown through conmon: empty environment, no PATH", env: {} },
];

/**
 * Before a plugin file takes its real name in the bin dir (and for check),
 * make sure it answers CNI VERSION the way libcni asks (stdin
 * `{"cniVersion":"1.1.0"}`, dummy NETNS/IFNAME/PATH) in every runtime
 * environment above. Returns why it failed, or undefined.
 */
export async function probeVersion(file: string): Promise<string | undefined> {
  for (const rt of RUNTIME_ENVIRONMENTS) {
    const bad = await probeIn(file, rt.env);
    if (bad !== undefined) return `does not answer CNI VERSION under ${rt.name}: ${bad}`;
  }
  return undefined;
}

async function probeIn(file: string, env: Readonly<Record<string, string>>): Promise<string | undefined> {
  const { execa } = await import('execa');
  const r = await execa(file, [], {
    reject: false,
    input: '{"cniVersion":"1.1.0"}',
    // extendEnv: false, or the operator's own PATH would leak in and hide the failure.
    extendEnv: false,
    env: { ...env, CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' },
    timeout: 30_000,
  });
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr : '';
  if (r.failed) {
    const text = (stderr.trim() || stdout.trim() || r.shortMessage || '').split('\n').slice(-2).join(' | ');
    return r.exitCode === undefined ? text : `exit ${r.exitCode}: ${text}`;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return `VERSION printed no JSON: ${JSON.stringify(stdout.slice(0, 200))}`;
  }
  const versions = typeof doc === 'object' && doc !== null ? (doc as { supportedVersions?: unknown }).supportedVersions : undefined;
  if (!Array.isArray(versions) || versions.length === 0) return `VERSION answer has no supportedVersions: ${stdout.trim().slice(0, 200)}`;
  return undefined;
}
