import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/cni/config.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/versions.js';

const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'bridge', type: 'masq-janitor', ...extra });

describe('parseConfig', () => {
  it.each(SUPPORTED_VERSIONS)('accepts cniVersion %s', (v) => {
    const r = parseConfig(conf({ cniVersion: v }));
    expect(r.ok).toBe(true);
  });

  it.each(['0.1.0', '0.2.0', '1.2.0', '', 1])('rejects cniVersion %j with code 1', (v) => {
    const r = parseConfig(conf({ cniVersion: v }));
    expect(r.ok ? 0 : r.error.code).toBe(1);
  });

  it('treats a missing cniVersion as 0.1.0 (code 1), like skel', () => {
    const r = parseConfig(JSON.stringify({ name: 'x' }));
    expect(r.ok ? 0 : r.error.code).toBe(1);
  });

  it('applies defaults: non-strict, warn, 5 s lock wait, gc on, libcni state in /var/lib/cni', () => {
    const r = parseConfig(conf());
    expect(r.ok && r.value.settings).toEqual({ logFile: undefined, logLevel: 'warn', strict: false, lockWait: 5, gc: true, stateDir: '/var/lib/cni' });
  });

  it('reads the janitor keys', () => {
    const r = parseConfig(conf({ logFile: '/var/log/mj.log', logLevel: 'debug', strict: true, lockWait: 2, gc: false, stateDir: '/run/cni' }));
    expect(r.ok && r.value.settings).toEqual({ logFile: '/var/log/mj.log', logLevel: 'debug', strict: true, lockWait: 2, gc: false, stateDir: '/run/cni' });
  });

  it.each([
    ['logfile', 'logFile'],
    ['log_level', 'logLevel'],
    ['strcit', 'strict'],
    ['lockwait', 'lockWait'],
  ])('names a misspelled janitor key %s', (key, meant) => {
    const r = parseConfig(conf({ [key]: 'x' }));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe(7);
      expect(r.error.msg).toContain(key);
      expect(r.error.details).toContain(meant);
    }
  });

  it.each(['ip', 'tc', 'x', 'gcx', 'logs', 'mtu'])('does not mistake the short foreign key %s for a janitor key', (key) => {
    expect(parseConfig(conf({ [key]: 1 })).ok).toBe(true);
  });

  it('lets unknown runtime keys pass', () => {
    const r = parseConfig(conf({ runtimeConfig: { portMappings: [] }, nerdctlID: 'abc', 'cni.dev/foo': 1, bridge: 'cni0', ipMasq: true }));
    expect(r.ok).toBe(true);
  });

  it.each([
    [{ strict: 'yes' }, 'strict'],
    [{ logLevel: 'loud' }, 'logLevel'],
    [{ logFile: 'relative.log' }, 'logFile'],
    [{ lockWait: -1 }, 'lockWait'],
  ])('rejects a bad value %j', (extra, key) => {
    const r = parseConfig(conf(extra));
    expect(r.ok ? '' : `${r.error.code} ${r.error.details}`).toMatch(new RegExp(`^7 .*${key}`));
  });

  it.each(['', 'a b', 'x"y', 'x\nCOMMIT', '-net'])('rejects network name %j with code 7', (name) => {
    const r = parseConfig(conf({ name }));
    expect(r.ok ? 0 : r.error.code).toBe(7);
  });

  it('fails to decode with code 6', () => {
    for (const s of ['', '{', '[]', 'null', '"x"']) {
      const r = parseConfig(s);
      expect(r.ok ? 0 : r.error.code).toBe(6);
    }
  });

  it('reads GC attachments from either key; missing means undefined', () => {
    const a = [{ containerID: 'c1', ifname: 'eth0' }];
    const v = parseConfig(conf({ 'cni.dev/valid-attachments': a }));
    const old = parseConfig(conf({ 'cni.dev/attachments': a }));
    const none = parseConfig(conf());
    expect(v.ok && v.value.validAttachments).toEqual([{ containerId: 'c1', ifname: 'eth0' }]);
    expect(old.ok && old.value.validAttachments).toEqual([{ containerId: 'c1', ifname: 'eth0' }]);
    expect(none.ok && none.value.validAttachments).toBeUndefined();
  });
});
