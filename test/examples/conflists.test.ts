import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKUP_SUFFIX } from '../../src/cli/atomic-file.js';
import { install, uninstall } from '../../src/cli/install.js';
import { capture, ROOT } from '../cli/support.js';

/**
 * examples/original/ holds each runtime's default conflist as shipped;
 * examples/with-masq-janitor/ the same after `masq-janitor install`. The
 * second must be exactly what install makes of the first.
 */

const ORIGINAL = `${ROOT}/examples/original`;
const WITH = `${ROOT}/examples/with-masq-janitor`;

interface Plugin {
  readonly type: string;
  readonly ipMasq?: boolean;
  readonly [k: string]: unknown;
}
interface List {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: Plugin[];
}

/** What the runtimes ship (runtimes-and-spec.md §3-4): name, cniVersion, bridge device, plugin order. */
const SHIPPED: Record<string, { name: string; cniVersion: string; bridge: string; types: string[] }> = {
  '10-containerd-net.conflist': { name: 'containerd-net', cniVersion: '1.0.0', bridge: 'cni0', types: ['bridge', 'portmap'] },
  '11-crio-ipv4-bridge.conflist': { name: 'crio', cniVersion: '1.0.0', bridge: 'cni0', types: ['bridge'] },
  '87-podman-bridge.conflist': { name: 'podman', cniVersion: '0.4.0', bridge: 'cni-podman0', types: ['bridge', 'portmap', 'firewall', 'tuning'] },
  'nerdctl-bridge.conflist': { name: 'bridge', cniVersion: '1.0.0', bridge: 'nerdctl0', types: ['bridge', 'portmap', 'firewall', 'tuning'] },
};

let dir: string;
let report: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mj-examples-'));
  await mkdir(join(dir, 'net.d'));
  for (const f of await readdir(ORIGINAL)) await copyFile(join(ORIGINAL, f), join(dir, 'net.d', f));
  const io = capture();
  expect(await install(['--conf-dir', join(dir, 'net.d'), '--bin-dir', join(dir, 'bin'), '--skip-binary'], io)).toBe(0);
  report = io.stdout();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const read = async (path: string): Promise<string> => readFile(path, 'utf8');

it('has the four runtimes, in both forms', async () => {
  expect((await readdir(ORIGINAL)).sort()).toEqual(Object.keys(SHIPPED).sort());
  expect((await readdir(WITH)).sort()).toEqual(Object.keys(SHIPPED).sort());
});

describe.each(Object.keys(SHIPPED))('%s', (name) => {
  it('original: parses, as the runtime ships it, with a masquerading bridge', async () => {
    const doc = JSON.parse(await read(join(ORIGINAL, name))) as List;
    const want = SHIPPED[name];
    expect({ name: doc.name, cniVersion: doc.cniVersion, types: doc.plugins.map((p) => p.type) }).toEqual({ name: want?.name, cniVersion: want?.cniVersion, types: want?.types });
    expect(doc.plugins[0]).toMatchObject({ type: 'bridge', bridge: want?.bridge, isGateway: true, ipMasq: true });
  });

  it('with-masq-janitor: exactly what install makes of the original', async () => {
    expect(report).toContain(`${join(dir, 'net.d', name)}: added (after bridge with ipMasq: true;`);
    expect(await read(join(dir, 'net.d', name))).toBe(await read(join(WITH, name)));
    expect(await read(join(dir, 'net.d', name + BACKUP_SUFFIX))).toBe(await read(join(ORIGINAL, name)));
  });

  it('with-masq-janitor: the original plus {"type": "masq-janitor"} last, nothing else', async () => {
    const original = JSON.parse(await read(join(ORIGINAL, name))) as List;
    const appended = JSON.parse(await read(join(WITH, name))) as List;
    expect(appended).toEqual({ ...original, plugins: [...original.plugins, { type: 'masq-janitor' }] });
    expect(Object.keys(appended)).toEqual(Object.keys(original));
  });

  it('install then uninstall leaves the file byte-identical, and no backup behind', async () => {
    const d = await mkdtemp(join(tmpdir(), 'mj-examples-undo-'));
    try {
      const original = await readFile(join(ORIGINAL, name));
      await copyFile(join(ORIGINAL, name), join(d, name));
      expect(await install([join(d, name), '--skip-binary'], capture())).toBe(0);
      // A second install must not replace the backup of the first.
      expect(await install([join(d, name), '--skip-binary'], capture())).toBe(0);
      expect(await readFile(join(d, name + BACKUP_SUFFIX))).toEqual(original);
      expect(await uninstall([join(d, name)], capture())).toBe(0);
      expect(await readFile(join(d, name))).toEqual(original);
      expect(await readdir(d)).toEqual([name]);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('uninstall gives the original back', async () => {
    const d = await mkdtemp(join(tmpdir(), 'mj-examples-un-'));
    try {
      await copyFile(join(WITH, name), join(d, name));
      expect(await uninstall([join(d, name)], capture())).toBe(0);
      expect(JSON.parse(await read(join(d, name)))).toEqual(JSON.parse(await read(join(ORIGINAL, name))));
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});

it('a second install over the appended lists changes nothing', async () => {
  const io = capture();
  expect(await install(['--conf-dir', WITH, '--skip-binary', '--dry-run'], io)).toBe(0);
  for (const name of Object.keys(SHIPPED)) expect(io.stdout()).toContain(`${join(WITH, name)}: already present\n`);
});
