/**
 * Before a new plugin file takes its real name in the bin dir, make sure it
 * runs and answers CNI VERSION the way libcni asks (stdin
 * `{"cniVersion":"1.1.0"}`, dummy NETNS/IFNAME/PATH). A file that cannot
 * (a script whose interpreter is missing, the wrong architecture, a
 * noexec mount) would fail every container start once a conflist names it.
 * Returns why it failed, or undefined.
 */
export async function probeVersion(file: string): Promise<string | undefined> {
  const { execa } = await import('execa');
  const r = await execa(file, [], {
    reject: false,
    input: '{"cniVersion":"1.1.0"}',
    env: { CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' },
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
