import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatJson, kindOfFile, planInstall, planUninstall, type InstallPlan, type Json, type UninstallPlan } from '../../src/cli/conflist-edit.js';

const bridge = { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.0.0/16' }]] } };
const portmap = { type: 'portmap', capabilities: { portMappings: true } };
const list = (plugins: unknown[], head: Record<string, unknown> = { cniVersion: '1.0.0', name: 'net' }): string => JSON.stringify({ ...head, plugins });

function installed(text: string, named = false): InstallPlan {
  const r = planInstall(text, 'list', named);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function uninstalled(text: string): UninstallPlan {
  const r = planUninstall(text, 'list');
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function added(text: string, named = false): string {
  const p = installed(text, named);
  if (p.action !== 'add') throw new Error(`expected add, got ${JSON.stringify(p)}`);
  return p.text;
}

describe('kindOfFile', () => {
  it('follows the extensions runtimes load', () => {
    expect(kindOfFile('10-containerd-net.conflist')).toBe('list');
    expect(kindOfFile('10-bridge.conf')).toBe('single');
    expect(kindOfFile('net.json')).toBe('single');
    expect(kindOfFile('x.conflist.masq-janitor.bak')).toBeUndefined();
    expect(kindOfFile('.x.conflist.0a1b2c.tmp')).toBeUndefined();
  });
});

describe('planInstall', () => {
  it('appends the janitor as the last plugin, shaped like the plugin before it', () => {
    const pretty = formatJson(JSON.parse(list([bridge, portmap])) as Json);
    const text = added(pretty);
    expect((JSON.parse(text) as { plugins: unknown[] }).plugins).toEqual([bridge, portmap, { type: 'masq-janitor' }]);
    expect(text).toBe(formatJson(JSON.parse(text) as Json));
    expect(added(list([bridge]))).toBe(list([bridge]).replace(/\]\}$/, ',{"type":"masq-janitor"}]}'));
  });

  it('inserts bytes and changes no other byte: indentation, spacing, final newline, number spelling', () => {
    const three = '{\n   "cniVersion": "0.4.0",\n   "name": "podman",\n   "plugins": [\n      {\n         "type": "bridge",\n         "ipMasq": true\n      }\n   ]\n}';
    expect(added(three)).toBe(three.replace('\n      }\n', '\n      },\n      {\n         "type": "masq-janitor"\n      }\n'));
    const tabs = '{"cniVersion":"1.0.0","name":"n","mtu":1.50e3,"plugins":[\n\t{ "type": "ptp", "ipMasq": true }\n]}\r\n';
    expect(added(tabs)).toBe(tabs.replace('true }', 'true },\n\t{ "type": "masq-janitor" }'));
    const empty = '{"cniVersion":"1.0.0","name":"n","plugins": [ ]}';
    expect(added(empty, true)).toBe('{"cniVersion":"1.0.0","name":"n","plugins": [{"type": "masq-janitor"} ]}');
  });

  it('edits the "plugins" JSON.parse reads when the key is duplicated, and keeps integers JSON.parse would round', () => {
    const dup = '{"cniVersion":"1.0.0","name":"n","big":12345678901234567890,"plugins":[{"type":"loopback"}],"plugins":[{"type":"bridge","ipMasq":true}]}';
    const text = added(dup);
    expect(text).toBe(dup.replace('true}]}', 'true},{"type":"masq-janitor"}]}'));
    expect(text).toContain('12345678901234567890');
    const u = uninstalled(text);
    expect(u.action === 'remove' && u.text).toBe(dup);
  });

  it('keeps key order, unknown keys and the position of "plugins"', () => {
    const text = added(JSON.stringify({ name: 'n', plugins: [bridge], cniVersion: '1.0.0', nerdctlID: 'abc', nerdctlLabels: { a: 'b' } }));
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['name', 'plugins', 'cniVersion', 'nerdctlID', 'nerdctlLabels']);
    expect(Object.keys((JSON.parse(text) as { plugins: object[] }).plugins[0] as object)).toEqual(Object.keys(bridge));
  });

  it('detects ptp and flannel delegating to a masquerading bridge', () => {
    expect(installed(list([{ type: 'ptp', ipMasq: true }]))).toMatchObject({ action: 'add', masq: 'ptp with ipMasq: true' });
    expect(installed(list([{ type: 'flannel', delegate: { ipMasq: true } }]))).toMatchObject({ action: 'add', masq: 'flannel delegating to bridge with ipMasq: true' });
  });

  it('skips lists without masquerading, with the reason', () => {
    expect(installed(list([{ ...bridge, ipMasq: false }]))).toEqual({ action: 'skip', reason: 'no bridge or ptp plugin with ipMasq: true' });
    expect(installed(list([{ type: 'bridge', ipMasq: 'true' }]))).toMatchObject({ action: 'skip' });
    expect(installed(list([{ type: 'macvlan', master: 'eth0' }]))).toMatchObject({ action: 'skip' });
  });

  it("skips k3s's default flannel list: its bridge gets ipMasq false at run time", () => {
    const k3s = JSON.stringify({
      name: 'cbr0',
      cniVersion: '1.0.0',
      plugins: [
        { type: 'flannel', delegate: { hairpinMode: true, forceAddress: true, isDefaultGateway: true } },
        portmap,
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    });
    const p = installed(k3s);
    expect(p.action).toBe('skip');
    expect(p.action === 'skip' && p.reason).toMatch(/FLANNEL_IPMASQ/);
  });

  it('adds to a named file even without a masquerading plugin', () => {
    expect(installed(list([portmap]), true)).toMatchObject({ action: 'add', masq: undefined });
  });

  it('is idempotent: already present changes nothing', () => {
    const once = added(list([bridge]));
    expect(installed(once)).toEqual({ action: 'present', warning: undefined });
    expect(installed(list([bridge, { type: 'masq-janitor', logLevel: 'info' }]))).toEqual({ action: 'present', warning: undefined });
  });

  it('warns when the janitor is present but not last, or twice', () => {
    const p = installed(list([bridge, { type: 'masq-janitor' }, portmap]));
    expect(p).toMatchObject({ action: 'present' });
    expect(p.action === 'present' && p.warning).toMatch(/plugin 2 of 3; it must be the last/);
    expect(installed(list([bridge, { type: 'masq-janitor' }, { type: 'masq-janitor' }]))).toMatchObject({ warning: 'masq-janitor appears 2 times' });
  });

  it('never appends where the janitor would reject the cniVersion (a failing ADD breaks the network)', () => {
    expect(installed(list([bridge], { cniVersion: '0.2.0', name: 'n' }))).toMatchObject({ action: 'skip', reason: expect.stringMatching(/0.2.0 is not one/) });
    expect(installed(list([bridge], { name: 'n' }))).toMatchObject({ action: 'skip', reason: expect.stringMatching(/no cniVersion/) });
    expect(installed(list([bridge], { cniVersion: '0.2.0', name: 'n' }), true)).toMatchObject({ action: 'skip' });
    // libcni >= 1.2 picks the highest of cniVersion + cniVersions up to 1.1.0.
    expect(installed(list([bridge], { cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0', '2.0.0'], name: 'n' }))).toMatchObject({ action: 'add' });
    expect(installed(list([bridge], { cniVersion: '1.0.0', cniVersions: ['1.0.5'], name: 'n' }))).toMatchObject({ action: 'skip', reason: expect.stringMatching(/selects 1.0.5/) });
    for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) expect(installed(list([bridge], { cniVersion: v, name: 'n' })).action).toBe('add');
  });

  it('reports invalid JSON with line and column', () => {
    const r = planInstall('{\n  "cniVersion": "1.0.0",\n  "plugins": [}\n', 'list', false);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.kind).toBe('invalid-json');
      expect(r.error.message).toBe('invalid JSON at line 3, column 15: unexpected "}"');
    }
  });

  it('locates every kind of JSON error (JSON.parse decides, the message only points)', () => {
    const at = (text: string): string => {
      const r = planInstall(text, 'list', false);
      return r.ok ? 'ok' : r.error.message;
    };
    expect(at('')).toBe('invalid JSON at line 1, column 1: unexpected end of input');
    expect(at('{"a": 1,}')).toBe('invalid JSON at line 1, column 9: unexpected "}"');
    expect(at('{"a": tru}')).toBe('invalid JSON at line 1, column 7: unexpected "t"');
    expect(at('{"a": "x\\q"}')).toBe('invalid JSON at line 1, column 9: unexpected "\\\\"');
    expect(at('{"plugins": []} x')).toBe('invalid JSON at line 1, column 17: unexpected "x"');
    expect(at('{\n  "a": [1, 2\n')).toBe('invalid JSON at line 3, column 1: unexpected end of input');
    expect(at('\uFEFF{}')).toMatch(/^invalid JSON at line 1, column 1/);
  });

  it('reports lists that are not lists', () => {
    for (const [text, msg] of [
      ['[]', 'not a JSON object'],
      ['{"cniVersion":"1.0.0","type":"bridge"}', 'no "plugins" array'],
      ['{"cniVersion":"1.0.0","plugins":[1]}', 'plugins[0] is not an object'],
      ['{"cniVersion":"1.0.0","plugins":[{"ipMasq":true}]}', 'plugins[0] has no "type"'],
    ] as const) {
      const r = planInstall(text, 'list', false);
      expect(r.ok ? 'ok' : r.error.message).toContain(msg);
    }
  });

  it('refuses to print a replacement for a single-plugin file with integers JSON.parse would round', () => {
    const single = '{"cniVersion":"1.0.0","name":"n","x":12345678901234567890,"type":"bridge","ipMasq":true}';
    const big = planInstall(single, 'single', false);
    expect(big.ok ? 'ok' : big.error.message).toMatch(/12345678901234567890 is too large/);
  });

  describe('single-plugin files', () => {
    const single = JSON.stringify({ cniVersion: '0.4.0', name: 'mynet', type: 'bridge', bridge: 'cni0', ipMasq: true, ipam: { type: 'host-local', subnet: '10.22.0.0/16' } });

    it('cannot chain: gives the conflist that would replace it', () => {
      const r = planInstall(single, 'single', false);
      expect(r.ok).toBe(true);
      if (!r.ok || r.value.action !== 'convert') throw new Error('expected convert');
      expect(JSON.parse(r.value.conflist)).toEqual({
        cniVersion: '0.4.0',
        name: 'mynet',
        plugins: [{ type: 'bridge', bridge: 'cni0', ipMasq: true, ipam: { type: 'host-local', subnet: '10.22.0.0/16' } }, { type: 'masq-janitor' }],
      });
      expect(r.value.masq).toBe('bridge with ipMasq: true');
    });

    it('skips plugins that do not masquerade, and lists misnamed as .conf', () => {
      expect(planInstall('{"cniVersion":"1.0.0","name":"lo","type":"loopback"}', 'single', false)).toMatchObject({ ok: true, value: { action: 'skip' } });
      expect(planInstall(list([bridge]), 'single', false)).toMatchObject({ ok: true, value: { action: 'skip', reason: expect.stringMatching(/rename it to .conflist/) } });
    });
  });
});

describe('hostile nesting', () => {
  it('a plugin nested 100,000 levels deep (JSON.parse accepts it) is edited, not a stack overflow', () => {
    const n = 100_000;
    const text = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipMasq":true,"x":' + '['.repeat(n) + ']'.repeat(n) + '}]}';
    const out = added(text);
    expect(out).toBe(text.replace(/\}\]\}$/, '},{"type":"masq-janitor"}]}'));
    const u = uninstalled(out);
    expect(u.action === 'remove' && u.text).toBe(text);
  });

  it('invalid JSON nested too deeply to locate is still a clean error', () => {
    const r = planInstall('['.repeat(1_000_000), 'list', false);
    expect(r).toMatchObject({ ok: false, error: { kind: 'invalid-json' } });
  });
});

describe('planUninstall', () => {
  it('removes exactly the entry install added, restoring the list', () => {
    const original = formatJson(JSON.parse(list([bridge, portmap])) as Json);
    const p = uninstalled(added(original));
    expect(p).toEqual({ action: 'remove', text: original, removed: 1, kept: 0 });
  });

  it('leaves an entry with settings added by hand, and other edits', () => {
    const edited = list([{ ...bridge, mtu: 1400 }, { type: 'masq-janitor', logLevel: 'info' }]);
    expect(uninstalled(edited)).toEqual({ action: 'keep', reason: expect.stringMatching(/settings install does not write \(logLevel\)/) });
    const both = uninstalled(list([{ ...bridge, mtu: 1400 }, { type: 'masq-janitor', strict: true }, { type: 'masq-janitor' }]));
    expect(both).toMatchObject({ action: 'remove', removed: 1, kept: 1 });
    if (both.action === 'remove') expect((JSON.parse(both.text) as { plugins: unknown[] }).plugins).toEqual([{ ...bridge, mtu: 1400 }, { type: 'masq-janitor', strict: true }]);
  });

  it('finds nothing to do when absent', () => {
    expect(uninstalled(list([bridge]))).toEqual({ action: 'absent' });
    expect(planUninstall('{"cniVersion":"1.0.0","type":"bridge"}', 'single')).toEqual({ ok: true, value: { action: 'absent' } });
  });

  it('reports invalid JSON', () => {
    expect(planUninstall('{"plugins": [', 'list')).toMatchObject({ ok: false, error: { kind: 'invalid-json' } });
  });

  it('install then uninstall is the identity on formatted lists (any supported version, any plugin mix)', () => {
    const mixes = [[bridge], [bridge, portmap], [{ type: 'ptp', ipMasq: true }, { type: 'firewall' }, { type: 'tuning' }]];
    for (const v of ['0.3.1', '0.4.0', '1.0.0', '1.1.0'])
      for (const m of mixes) {
        const original = formatJson(JSON.parse(list(m, { cniVersion: v, name: 'n', disableCheck: true })) as Json);
        const p = uninstalled(added(original));
        expect(p.action === 'remove' && p.text).toBe(original);
      }
  });
});

describe('properties over random network lists', () => {
  const extra = fc.dictionary(
    fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !['type', 'plugins', 'cniVersion', 'cniVersions', 'name', 'ipMasq', 'delegate'].includes(k)),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: 4 },
  );
  const plugin = fc.record({ type: fc.constantFrom('bridge', 'ptp', 'portmap', 'firewall', 'tuning', 'bandwidth', 'macvlan'), ipMasq: fc.option(fc.boolean(), { nil: undefined }) }).chain((p) =>
    extra.map((x) => ({ ...x, ...p })),
  );
  const netList = fc
    .record({ cniVersion: fc.constantFrom('0.3.1', '0.4.0', '1.0.0', '1.1.0'), name: fc.string({ minLength: 1, maxLength: 10 }), plugins: fc.array(plugin, { minLength: 1, maxLength: 5 }) })
    .chain((l) => extra.map((x) => ({ ...x, ...l })))
    .map((doc) => JSON.stringify(doc));

  it('install appends exactly one entry, only where something masquerades; reinstall changes nothing; uninstall restores', () => {
    fc.assert(
      fc.property(netList, (text) => {
        const before = JSON.parse(text) as { plugins: { type: string; ipMasq?: boolean }[] };
        const r = planInstall(text, 'list', false);
        if (!r.ok) throw new Error(r.error.message);
        const masq = before.plugins.some((p) => (p.type === 'bridge' || p.type === 'ptp') && p.ipMasq === true);
        if (!masq) {
          expect(r.value.action).toBe('skip');
          return;
        }
        if (r.value.action !== 'add') throw new Error(r.value.action);
        const after = JSON.parse(r.value.text) as typeof before;
        expect(after).toEqual({ ...before, plugins: [...before.plugins, { type: 'masq-janitor' }] });
        expect(planInstall(r.value.text, 'list', false)).toEqual({ ok: true, value: { action: 'present', warning: undefined } });
        const u = planUninstall(r.value.text, 'list');
        if (!u.ok || u.value.action !== 'remove') throw new Error('expected remove');
        expect(u.value.text).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('install then uninstall gives back the same bytes, whatever the indentation', () => {
    fc.assert(
      fc.property(netList, fc.constantFrom(0, 1, 2, 3, 4, '\t'), fc.boolean(), (text, indent, newline) => {
        const shaped = JSON.stringify(JSON.parse(text), null, indent) + (newline ? '\n' : '');
        const r = planInstall(shaped, 'list', true);
        if (!r.ok) throw new Error(r.error.message);
        fc.pre(r.value.action === 'add');
        if (r.value.action !== 'add') return;
        // One contiguous insertion: a common prefix and suffix cover the whole original.
        const out = r.value.text;
        let pre = 0;
        while (pre < shaped.length && out[pre] === shaped[pre]) pre++;
        expect(out.endsWith(shaped.slice(pre))).toBe(true);
        const u = planUninstall(r.value.text, 'list');
        if (!u.ok || u.value.action !== 'remove') throw new Error('expected remove');
        expect(u.value.text).toBe(shaped);
      }),
      { numRuns: 300 },
    );
  });
});
