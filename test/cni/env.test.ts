import { describe, expect, it } from 'vitest';
import { interfaceNameProblem, isGoSpace, parseEnv, rawEnvironValue } from '../../src/cni/env.js';

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
    [{ CNI_COMMAND: 'ADD', CNI_NETNS: '/x', CNI_IFNAME: 'eth0' }, 'CNI_CONTAINERID'],
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

  it.each(['-x', 'a b', 'x\n-A INPUT -j ACCEPT', 'a"b', 'ü', '.hidden'])('rejects container ID %j before anything uses it (ADD)', (id) => {
    const r = parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_CONTAINERID: id });
    expect(r.ok ? 0 : r.error.code).toBe(4);
  });

  it.each(['', 'x'.repeat(16), 'ü'.repeat(8), 'a/b', 'a:b', 'a b', '.', '..'])('rejects interface name %j (ADD)', (ifname) => {
    const r = parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: ifname });
    expect(r.ok ? 0 : r.error.code).toBe(4);
  });
});

/** A raw environ block (NUL-separated), as /proc/self/environ holds it. */
function environ(vars: Record<string, string | Buffer>): Buffer {
  return Buffer.concat(Object.entries(vars).flatMap(([k, v]) => [Buffer.from(`${k}=`), Buffer.isBuffer(v) ? v : Buffer.from(v), Buffer.from([0])]));
}

describe('CNI_IFNAME exactly as libcni ValidateInterfaceName (issue 9 failure 4)', () => {
  const verbs = ['ADD', 'CHECK', 'DEL'] as const;

  it.each(verbs)('%s accepts U+FEFF inside the name (Go unicode.IsSpace says no; JavaScript \\s would refuse)', (verb) => {
    const r = parseEnv({ ...base, CNI_COMMAND: verb, CNI_IFNAME: 'eth\uFEFF0' });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.ifname).toBe('eth\uFEFF0');
      expect(r.value.identityProblem).toBeUndefined();
    }
  });

  it('15 bytes are accepted, 16 refused, counted in UTF-8 bytes', () => {
    expect(parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: 'x'.repeat(15) }).ok).toBe(true);
    expect(parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: 'x'.repeat(16) }).ok).toBe(false);
    // 'ü' is 2 bytes: 7 of them and one ASCII = 15 bytes.
    expect(parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: 'ü'.repeat(7) + 'x' }).ok).toBe(true);
    expect(parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: 'ü'.repeat(8) }).ok).toBe(false);
  });

  it('invalid UTF-8 bytes count as one byte each (raw environ), not as 3-byte U+FFFD', () => {
    // 5 raw 0xff bytes + 10 ASCII = 15 bytes; decoded lossily it would be 25 bytes.
    const raw = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), Buffer.from('a'.repeat(10))]);
    const decoded = raw.toString('utf8');
    expect(Buffer.byteLength(decoded)).toBeGreaterThan(15);
    const env = { ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: decoded };
    const r = parseEnv(env, environ({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: raw }));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.ifnameNotText).toBe(true);
    // 16 raw bytes are refused all the same.
    const long = Buffer.concat([raw, Buffer.from([0xfe])]);
    expect(parseEnv({ ...env, CNI_IFNAME: long.toString('utf8') }, environ({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: long })).ok).toBe(false);
  });

  it.each([
    ['NBSP', 'a\u00a0b'],
    ['U+2028', 'a\u2028b'],
    ['U+3000', 'a\u3000b'],
    ['tab', 'a\tb'],
    ['U+0085', 'a\u0085b'],
    ['slash', 'a/b'],
    ['colon', 'a:b'],
  ])('refuses %s on ADD', (_, ifname) => {
    const r = parseEnv({ ...base, CNI_COMMAND: 'ADD', CNI_IFNAME: ifname });
    expect(r.ok ? 0 : r.error.code).toBe(4);
  });

  it.each(['a\u00a0b', 'a\u2028b', 'a/b', 'a:b', '', 'x'.repeat(16), '..'])('DEL with a bad CNI_IFNAME %j is ok with an identityProblem, never an error', (ifname) => {
    const r = parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_IFNAME: ifname });
    // An empty CNI_IFNAME is a missing variable: DEL still must not stop libcni's chain.
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.identityProblem).toMatch(/CNI_IFNAME/);
  });

  it('DEL without CNI_CONTAINERID is ok with an identityProblem naming it', () => {
    const r = parseEnv({ CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0' });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.identityProblem).toContain('CNI_CONTAINERID');
  });

  it('DEL with a bad container ID is ok with an identityProblem', () => {
    for (const id of ['-x', 'a b', 'x\n-A INPUT -j ACCEPT']) {
      const r = parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_CONTAINERID: id });
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.value.identityProblem).toMatch(/CNI_CONTAINERID/);
    }
  });

  it('isGoSpace matches Go unicode.IsSpace on the interesting code points', () => {
    const space = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000];
    const notSpace = [0xfeff, 0x200b, 0x180e, 0x00, 0x1f, 0x41, 0xfffd, 0x2060];
    for (const cp of space) expect(isGoSpace(cp)).toBe(true);
    for (const cp of notSpace) expect(isGoSpace(cp)).toBe(false);
  });

  it('interfaceNameProblem works on raw bytes', () => {
    expect(interfaceNameProblem(Buffer.from([0xff, 0xfe]))).toBeUndefined();
    expect(interfaceNameProblem(Buffer.from('.'))).toMatch(/\./);
    expect(interfaceNameProblem(Buffer.alloc(0))).toMatch(/empty/);
  });

  it('rawEnvironValue finds one variable’s bytes, not a prefix of another name', () => {
    const env = environ({ XCNI_IFNAME: 'no', CNI_IFNAME: Buffer.from([0x65, 0xff]) });
    expect(rawEnvironValue('CNI_IFNAME', env)).toEqual(Buffer.from([0x65, 0xff]));
    expect(rawEnvironValue('CNI_NETNS', env)).toBeUndefined();
  });
});
