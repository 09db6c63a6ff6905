import { describe, expect, it } from 'vitest';
import { parseEnv } from '../../src/cni/env.js';

const base = { CNI_CONTAINERID: 'default-c1', CNI_NETNS: '/var/run/netns/c1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

describe('parseEnv', () => {
  it('accepts each verb with what the spec requires', () => {
    expect(parseEnv({ ...base, CNI_COMMAND: 'ADD' }).ok).toBe(true);
    expect(parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }).ok).toBe(true);
    expect(parseEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }).ok).toBe(true);
    expect(parseEnv({ CNI_COMMAND: 'STATUS' }).ok).toBe(true);
    expect(parseEnv({ CNI_COMMAND: 'VERSION' }).ok).toBe(true);
  });

  it.each([
    [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }, 'CNI_NETNS'],
    [{ CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0' }, 'CNI_CONTAINERID'],
    [{ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'x', CNI_NETNS: '/x' }, 'CNI_IFNAME'],
    [{ CNI_COMMAND: 'GC' }, 'CNI_PATH'],
  ])('names a missing variable (%j)', (env, name) => {
    const r = parseEnv(env);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe(4);
      expect(r.error.msg).toContain(name);
    }
  });

  it.each(['', 'NOPE', 'add'])('rejects CNI_COMMAND %j with code 4', (cmd) => {
    const r = parseEnv({ ...base, CNI_COMMAND: cmd });
    expect(r.ok ? 0 : r.error.code).toBe(4);
  });

  it.each(['-x', 'a b', 'x\n-A INPUT -j ACCEPT', 'a"b', 'ü', '.hidden'])('rejects container ID %j before anything uses it', (id) => {
    const r = parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_CONTAINERID: id });
    expect(r.ok ? 0 : r.error.code).toBe(4);
  });

  it.each(['', 'x'.repeat(16), 'ü'.repeat(8), 'a/b', 'a:b', 'a b', '.', '..'])('rejects interface name %j', (ifname) => {
    const r = parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_IFNAME: ifname });
    expect(r.ok ? 0 : r.error.code).toBe(4);
  });
});
