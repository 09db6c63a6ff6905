import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { bridgeState, chainsOf, CNI_NAME, nftComment, savedComment, SUPPORTED } from './ref.js';

/**
 * The fuzz case model: a generated case is a *description* (env, stdin and
 * the world the fake tools show), from which the test renders the actual
 * env and stdin, the fake tools' answers, and -- independently of src/ --
 * the outcome the CNI spec and the janitor's documented policy demand.
 */

export const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Verb = (typeof VERBS)[number];

export type PathKind = 'full' | 'no-restore' | 'no-nft' | 'no-iptables' | 'none' | 'unset';
export type Fault = 'ok' | 'restore-fails' | 'lock' | 'nft-list-fails' | 'nft-garbage' | 'nft-delete-fails' | 'timeout' | 'listing-junk';

export interface EnvDesc {
  readonly command: string | undefined;
  readonly containerId: string | undefined;
  readonly ifname: string | undefined;
  readonly netns: string | undefined;
  readonly cniPath: string | undefined;
  readonly cniArgs: string | undefined;
  readonly path: PathKind;
}

export interface Setting {
  readonly v: unknown;
  readonly valid: boolean;
}

export type PrevDesc =
  | { readonly kind: 'absent' }
  | { readonly kind: 'null' }
  | { readonly kind: 'valid'; readonly v4: boolean; readonly v6: boolean; readonly mapped: boolean; readonly withIface: boolean; readonly extra: boolean }
  /** A v4 address labelled version "6": invalid only where results carry `version` (< 1.0.0). */
  | { readonly kind: 'mismatch' }
  | { readonly kind: 'broken'; readonly what: string; readonly value: unknown };

export interface Attachment {
  readonly containerID: unknown;
  readonly ifname: unknown;
}

export type AttDesc =
  | { readonly kind: 'absent' }
  | { readonly kind: 'valid'; readonly key: 'valid' | 'legacy' | 'both'; readonly list: readonly { containerID: string; ifname: string }[] }
  | { readonly kind: 'invalid'; readonly key: 'valid' | 'legacy'; readonly raw: unknown };

export interface ConfDesc {
  readonly version: { readonly kind: 'ok'; readonly v: string } | { readonly kind: 'missing' } | { readonly kind: 'bad'; readonly v: unknown };
  readonly name: { readonly kind: 'ok'; readonly v: string } | { readonly kind: 'missing' } | { readonly kind: 'bad'; readonly v: unknown };
  readonly settings: Readonly<Record<string, Setting>>;
  readonly misspelled: string | undefined;
  readonly foreign: Readonly<Record<string, unknown>>;
  readonly prev: PrevDesc;
  readonly attachments: AttDesc;
  readonly order: number;
}

export type StdinDesc =
  | { readonly kind: 'conf'; readonly conf: ConfDesc; readonly pad10MB: boolean }
  | { readonly kind: 'truncated'; readonly conf: ConfDesc; readonly cut: number }
  | { readonly kind: 'raw'; readonly text: string; readonly why: string }
  | { readonly kind: 'huge-garbage' };

export interface WorldDesc {
  readonly fault: Fault;
  readonly ourJumps4: number;
  readonly ourJumps6: number;
  readonly old25: boolean;
  readonly lookalikes: boolean;
  readonly nsenterIface: boolean;
  readonly nftOurs: number;
  /** Whether `iptables -S <our chain>` finds the chain (DEL probes it when no jump proves it). */
  readonly chainExists: boolean;
  readonly gcPlanted: readonly string[];
}

export interface CaseDesc {
  readonly id: number;
  readonly env: EnvDesc;
  readonly stdin: StdinDesc;
  readonly world: WorldDesc;
}

// ---------------------------------------------------------------- generators

const VALID_NETS = ['cni0net', 'bridge', 'mynet', 'COMMIT', 'nat', 'a', 'x.y_z-1', 'POSTROUTING', 'n'.repeat(300)];
const BAD_NETS: unknown[] = ['', 'my net', 'net"', 'net\n-A INPUT -j ACCEPT', 'net\\', 'ünï', '-net', '.net', 'net\r', 'COMMIT\n', 'a\u0000b', '💥', 'x"; -A INPUT -j ACCEPT; "', 5, null, true, {}, ['bridge']];
const BAD_CIDS = [
  'x\n-A INPUT -j ACCEPT',
  'a"b',
  'a\\b',
  'COMMIT\n',
  'ünï',
  '-abc',
  '.abc',
  '_abc',
  ' abc',
  'abc ',
  'a b',
  'a\tb',
  'a:b',
  'a/b',
  'a\rb',
  '💥',
  'abc\n',
  '"\n*nat\n-F\nCOMMIT\n"',
  'x" -j ACCEPT "',
];
const VALID_IFNAMES = ['eth0', 'net1', 'e'.repeat(15), 'e"th', 'e\\t', 'COMMIT', '-h', 'ü', 'eth0;ls', '$(id)', 'a*b'];
const BAD_IFNAMES = ['', 'e'.repeat(16), 'eth 0', 'eth/0', 'eth:0', '.', '..', 'eth0\n', '\teth', 'eth0\r\n-A INPUT'];
const NETNS_PATHS = [undefined, '', '/nonexistent/netns', '/proc/self/ns/net', '/etc/hostname', 'relative/netns', '/dev/null', '/var/run/netns/x\ny'];
const GC_POOL = ['gc-a', 'gc-b', 'gc-c', 'gc-d'];

const validCid: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/) },
  { weight: 3, arbitrary: fc.constantFrom('default-abc123', 'COMMIT', 'a', '0', 'A.B-c_d', 'nat', 'POSTROUTING', 'x'.repeat(300)) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 5000 }).map((n) => 'c'.repeat(n)) },
);

const badCid: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...BAD_CIDS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !CNI_NAME.test(s)) },
);

const envArb: fc.Arbitrary<EnvDesc> = fc.record({
  command: fc.oneof(
    { weight: 40, arbitrary: fc.constant('DEL') },
    { weight: 14, arbitrary: fc.constant('GC') },
    { weight: 12, arbitrary: fc.constant('ADD') },
    { weight: 8, arbitrary: fc.constant('CHECK') },
    { weight: 5, arbitrary: fc.constant('STATUS') },
    { weight: 5, arbitrary: fc.constant('VERSION') },
    { weight: 6, arbitrary: fc.constantFrom<string | undefined>(undefined, '', 'add', 'DELETE', ' DEL', 'DEL\n', 'GC;DEL', 'VERSION\u0000') },
  ),
  containerId: fc.oneof({ weight: 16, arbitrary: validCid }, { weight: 3, arbitrary: badCid }, { weight: 1, arbitrary: fc.constantFrom(undefined, '') }),
  ifname: fc.oneof({ weight: 16, arbitrary: fc.constantFrom(...VALID_IFNAMES) }, { weight: 3, arbitrary: fc.constantFrom(...BAD_IFNAMES) }, { weight: 1, arbitrary: fc.constant(undefined) }),
  netns: fc.constantFrom(...NETNS_PATHS),
  cniPath: fc.constantFrom(undefined, '', '/opt/cni/bin', '/a:/b'),
  cniArgs: fc.constantFrom(undefined, '', 'IgnoreUnknown=1;K8S_POD_NAME=x', 'a=b;c', '\n'),
  path: fc.oneof(
    { weight: 10, arbitrary: fc.constant<PathKind>('full') },
    { weight: 4, arbitrary: fc.constantFrom<PathKind>('no-restore', 'no-nft', 'no-iptables', 'none', 'unset') },
  ),
});

const setting = (valid: readonly unknown[], invalid: readonly unknown[]): fc.Arbitrary<Setting | undefined> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 5, arbitrary: fc.constantFrom(...valid).map((v) => ({ v, valid: true })) },
    { weight: 1, arbitrary: fc.constantFrom(...invalid).map((v) => ({ v, valid: false })) },
  );

/** logFile: the valid value is filled in by the runner (a temp file); invalid ones never get used. */
const LOGFILE_TOKEN = '<<logfile>>';

const settingsArb: fc.Arbitrary<Record<string, Setting>> = fc
  .record({
    logFile: setting([LOGFILE_TOKEN], ['relative.log', '', 5, null, '/' + 'a'.repeat(5000), ['/tmp/x']]),
    logLevel: setting(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], ['verbose', 'WARN', 5, null]),
    strict: setting([true, false], ['yes', 1, null, 'true']),
    lockWait: setting([1, 2, 5, 300], [0, -1, 301, 1.5, '5', null, 1e9]),
    gc: setting([true, false], ['no', 0, null]),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter((e): e is [string, Setting] => e[1] !== undefined)));

const MISSPELLED = ['logfile', 'LogFile', 'lock_wait', 'lockwait', 'strictt', 'Strict', 'logLvl', 'GC', 'lockWaitt', 'log-file'];
const FOREIGN: Record<string, unknown> = {
  type: 'masq-janitor',
  runtimeConfig: { portMappings: [] },
  args: { cni: { labels: ['x'] } },
  capabilities: { portMappings: true },
  ipMasq: true,
  ipam: { type: 'host-local' },
  dns: { nameservers: ['10.0.0.1'] },
  'cni.dev/custom': 1,
  isGateway: true,
  hairpinMode: false,
  bridge: 'cni0',
  ['__proto__']: { polluted: true },
  constructor: 'x',
};

const BROKEN_PREV: [string, unknown][] = [
  ['prefix out of range', { ips: [{ address: '10.0.0.1/33' }] }],
  ['v6 prefix out of range', { ips: [{ address: 'fe80::1/129' }] }],
  ['mapped prefix out of range', { ips: [{ address: '::ffff:10.0.0.1/129' }] }],
  ['zone id', { ips: [{ address: 'fe80::1%eth0/64' }] }],
  ['injection in address', { ips: [{ address: '10.0.0.1/32 -j ACCEPT' }] }],
  ['newline in address', { ips: [{ address: '10.0.0.1/32\n-A INPUT -j ACCEPT' }] }],
  ['leading zeros', { ips: [{ address: '010.0.0.1/24' }] }],
  ['no prefix', { ips: [{ address: '10.0.0.1' }] }],
  ['address not a string', { ips: [{ address: 167772161 }] }],
  ['address null', { ips: [{ address: null }] }],
  ['version 5', { ips: [{ address: '10.0.0.1/24', version: '5' }] }],
  ['interface index out of range', { interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.1/24', interface: 3 }] }],
  ['interface index negative', { interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.1/24', interface: -1 }] }],
  ['interface index fractional', { interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.1/24', interface: 0.5 }] }],
  ['interfaces not an array', { interfaces: 'eth0', ips: [] }],
  ['interface name not a string', { interfaces: [{ name: 5 }], ips: [] }],
  ['ips not an array', { ips: { address: '10.0.0.1/24' } }],
  ['gateway garbage', { ips: [{ address: '10.0.0.1/24', gateway: 'nope' }] }],
  ['routes not an array', { routes: 'x' }],
  ['prevResult a string', 'prevResult'],
  ['prevResult a number', 5],
  ['prevResult an array', []],
  ['prevResult true', true],
];

const prevArb: fc.Arbitrary<PrevDesc> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<PrevDesc>({ kind: 'absent' }) },
  { weight: 1, arbitrary: fc.constant<PrevDesc>({ kind: 'null' }) },
  {
    weight: 8,
    arbitrary: fc.record({ v4: fc.boolean(), v6: fc.boolean(), mapped: fc.boolean(), withIface: fc.boolean(), extra: fc.boolean() }).map((r): PrevDesc => ({ kind: 'valid', ...r })),
  },
  { weight: 1, arbitrary: fc.constant<PrevDesc>({ kind: 'mismatch' }) },
  { weight: 3, arbitrary: fc.constantFrom(...BROKEN_PREV).map(([what, value]): PrevDesc => ({ kind: 'broken', what, value })) },
);

const attArb: fc.Arbitrary<AttDesc> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<AttDesc>({ kind: 'absent' }) },
  {
    weight: 6,
    arbitrary: fc
      .record({
        key: fc.constantFrom<'valid' | 'legacy' | 'both'>('valid', 'legacy', 'both'),
        pool: fc.subarray(GC_POOL),
        ifnames: fc.array(fc.constantFrom('eth0', 'eth1'), { minLength: 4, maxLength: 4 }),
        weird: fc.subarray(['x\n-A INPUT -j ACCEPT', 'a"b', '', 'ü', 'c'.repeat(3000)]),
      })
      .map(({ key, pool, ifnames, weird }): AttDesc => ({
        kind: 'valid',
        key,
        list: [...pool.map((c, i) => ({ containerID: c, ifname: ifnames[i] ?? 'eth0' })), ...weird.map((c) => ({ containerID: c, ifname: 'eth0' }))],
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ key: fc.constantFrom<'valid' | 'legacy'>('valid', 'legacy'), raw: fc.constantFrom<unknown>('gc-a', 5, {}, [{ containerID: 'a' }], [{ containerID: 5, ifname: 'eth0' }], [null], [['a', 'eth0']]) })
      .map((r): AttDesc => ({ kind: 'invalid', ...r })),
  },
);

const confArb: fc.Arbitrary<ConfDesc> = fc.record({
  version: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...SUPPORTED).map((v) => ({ kind: 'ok' as const, v })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'missing' as const }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>('0.2.0', '0.1.0', '1.2.0', '2.0.0', '1.0', '', '1.0.0 ', 'v1.0.0', 1, 1.1, null, ['1.0.0'], {}).map((v) => ({ kind: 'bad' as const, v })) },
  ),
  name: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...VALID_NETS).map((v) => ({ kind: 'ok' as const, v })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'missing' as const }) },
    { weight: 1, arbitrary: fc.constantFrom(...BAD_NETS).map((v) => ({ kind: 'bad' as const, v })) },
  ),
  settings: settingsArb,
  misspelled: fc.oneof({ weight: 20, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(...MISSPELLED) }),
  foreign: fc.subarray(Object.keys(FOREIGN)).map((ks) => Object.fromEntries(ks.map((k) => [k, FOREIGN[k]]))),
  prev: prevArb,
  attachments: attArb,
  order: fc.nat(),
});

const stdinArb: fc.Arbitrary<StdinDesc> = fc.oneof(
  { weight: 200, arbitrary: confArb.map((conf): StdinDesc => ({ kind: 'conf', conf, pad10MB: false })) },
  { weight: 1, arbitrary: confArb.map((conf): StdinDesc => ({ kind: 'conf', conf, pad10MB: true })) },
  { weight: 1, arbitrary: fc.constant<StdinDesc>({ kind: 'huge-garbage' }) },
  { weight: 8, arbitrary: fc.record({ conf: confArb, cut: fc.nat() }).map((r): StdinDesc => ({ kind: 'truncated', ...r })) },
  {
    weight: 10,
    arbitrary: fc.oneof(
      fc.constantFrom(
        ['', 'empty'],
        [' \n\t', 'whitespace'],
        ['null', 'not an object'],
        ['[]', 'not an object'],
        ['"cniVersion"', 'not an object'],
        ['5', 'not an object'],
        ['true', 'not an object'],
        ['{"cniVersion":"1.0.0","name":"x",}', 'trailing comma'],
        ["{'cniVersion':'1.0.0'}", 'single quotes'],
        ['{"cniVersion":"1.0.0","name":"x"}{"cniVersion":"1.0.0"}', 'two documents'],
        ['\ufeff{"cniVersion":"1.0.0","name":"x"}', 'byte order mark'],
        ['{"cniVersion":"1.0.0","name":"x"\u0000}', 'NUL'],
        ['COMMIT\n', 'iptables text'],
        ['*nat\n-A POSTROUTING -j ACCEPT\nCOMMIT\n', 'iptables text'],
      ).map(([text, why]): StdinDesc => ({ kind: 'raw', text, why })),
      fc.string({ unit: 'binary', maxLength: 200 }).filter((s) => !parses(s)).map((text): StdinDesc => ({ kind: 'raw', text, why: 'random text' })),
    ),
  },
);

function parses(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

const worldArb: fc.Arbitrary<WorldDesc> = fc.record({
  fault: fc.oneof(
    { weight: 12, arbitrary: fc.constant<Fault>('ok') },
    { weight: 8, arbitrary: fc.constantFrom<Fault>('restore-fails', 'lock', 'nft-list-fails', 'nft-garbage', 'nft-delete-fails', 'timeout', 'listing-junk') },
  ),
  ourJumps4: fc.integer({ min: 0, max: 2 }),
  ourJumps6: fc.integer({ min: 0, max: 2 }),
  old25: fc.boolean(),
  lookalikes: fc.boolean(),
  nsenterIface: fc.boolean(),
  nftOurs: fc.integer({ min: 0, max: 2 }),
  chainExists: fc.boolean(),
  gcPlanted: fc.subarray(GC_POOL),
});

export const caseArb: fc.Arbitrary<Omit<CaseDesc, 'id'>> = fc.record({ env: envArb, stdin: stdinArb, world: worldArb });

// ---------------------------------------------------------------- rendering

export interface Rendered {
  readonly env: Record<string, string>;
  readonly stdin: string;
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function prevValue(p: PrevDesc, version: string): unknown {
  switch (p.kind) {
    case 'absent':
      return undefined;
    case 'null':
      return null;
    case 'broken':
      return p.value;
    case 'mismatch':
      return { cniVersion: version, ips: [{ address: '10.88.0.5/16', version: '6' }] };
    case 'valid': {
      const old = !atLeast(version, '1.0.0');
      const ips: Record<string, unknown>[] = [];
      const add = (address: string, fam: '4' | '6', gateway?: string): void => {
        ips.push({ address, ...(old ? { version: fam } : {}), ...(gateway ? { gateway } : {}), ...(p.withIface ? { interface: 1 } : {}) });
      };
      if (p.v4) add('10.88.0.5/16', '4', '10.88.0.1');
      if (p.v6) add('fd00:88::5/64', '6', 'fd00:88::1');
      if (p.mapped) add('::ffff:10.0.0.1/128', '6');
      return {
        cniVersion: version,
        interfaces: [
          { name: 'cni0', mac: '6a:00:00:00:00:01' },
          { name: 'eth0', mac: '6a:00:00:00:00:02', sandbox: '/var/run/netns/x' },
        ],
        ips,
        routes: [{ dst: '0.0.0.0/0' }],
        dns: { nameservers: ['10.88.0.1'] },
        ...(p.extra ? { 'x-custom': { kept: [1, 'two', null] } } : {}),
      };
    }
  }
}

export function confObject(c: ConfDesc, logFile: string): Record<string, unknown> {
  const entries: [string, unknown][] = [];
  if (c.version.kind !== 'missing') entries.push(['cniVersion', c.version.v]);
  if (c.name.kind !== 'missing') entries.push(['name', c.name.v]);
  for (const [k, s] of Object.entries(c.settings)) entries.push([k, s.v === LOGFILE_TOKEN ? logFile : s.v]);
  if (c.misspelled) entries.push([c.misspelled, true]);
  for (const [k, v] of Object.entries(c.foreign)) entries.push([k, v]);
  const version = c.version.kind === 'ok' ? c.version.v : '1.0.0';
  const prev = prevValue(c.prev, version);
  if (c.prev.kind !== 'absent') entries.push(['prevResult', prev]);
  const a = c.attachments;
  if (a.kind === 'valid') {
    if (a.key !== 'legacy') entries.push(['cni.dev/valid-attachments', a.list]);
    if (a.key !== 'valid') entries.push(['cni.dev/attachments', a.list]);
  } else if (a.kind === 'invalid') {
    entries.push([a.key === 'valid' ? 'cni.dev/valid-attachments' : 'cni.dev/attachments', a.raw]);
  }
  const obj: Record<string, unknown> = {};
  // defineProperty: a key named __proto__ must become an own property, as JSON.parse makes it.
  for (const [k, v] of shuffle(entries, c.order)) Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  return obj;
}

const TEN_MB = 10 * 1024 * 1024;

export function renderStdin(s: StdinDesc, logFile: string): string {
  switch (s.kind) {
    case 'raw':
      return s.text;
    case 'huge-garbage':
      return '{"cniVersion":"1.0.0","name":"' + 'x'.repeat(TEN_MB);
    case 'truncated': {
      const full = JSON.stringify(confObject(s.conf, logFile));
      return full.slice(0, s.cut % full.length);
    }
    case 'conf': {
      const obj = confObject(s.conf, logFile);
      if (s.pad10MB) obj.args = { pad: 'p'.repeat(TEN_MB) };
      return JSON.stringify(obj);
    }
  }
}

export function renderEnv(e: EnvDesc, path: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  const set = (k: string, v: string | undefined): void => {
    if (v !== undefined) env[k] = v;
  };
  set('CNI_COMMAND', e.command);
  set('CNI_CONTAINERID', e.containerId);
  set('CNI_IFNAME', e.ifname);
  set('CNI_NETNS', e.netns);
  set('CNI_PATH', e.cniPath);
  set('CNI_ARGS', e.cniArgs);
  set('PATH', path);
  return env;
}

// ---------------------------------------------------------------- the world the fake tools show

/** Tools each PATH kind provides (the fake directory holds exactly these). */
export const ALL_TOOLS = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore', 'nft', 'nsenter', 'ip'] as const;
export function toolsFor(kind: PathKind): string[] {
  switch (kind) {
    case 'full':
    case 'unset':
      return [...ALL_TOOLS];
    case 'no-restore':
      return ALL_TOOLS.filter((t) => !t.endsWith('-restore'));
    case 'no-nft':
      return ALL_TOOLS.filter((t) => t !== 'nft');
    case 'no-iptables':
      return ALL_TOOLS.filter((t) => !t.includes('tables'));
    case 'none':
      return [];
  }
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Does this process's netns hold a legacy nat table? (/proc/net/ip*_tables_names; reading loads nothing.) */
export function legacyNatHere(family: 4 | 6): boolean {
  try {
    return readFileSync(family === 4 ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names', 'utf8').split('\n').includes('nat');
  } catch {
    return false;
  }
}

export function onPath(tool: string, path: string): boolean {
  for (const dir of path.split(':')) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

export interface Identity {
  readonly network: string;
  readonly containerId: string;
  readonly ifname: string;
}

export interface WorldText {
  /** `iptables -S POSTROUTING` output per stem. */
  readonly listing: Record<'iptables' | 'ip6tables', string>;
  /** `iptables-save -t nat` output per stem (GC). */
  readonly save: Record<'iptables' | 'ip6tables', string>;
  /** `nft -j list chain inet cni_plugins_masquerade masq_checks` output, or undefined for "no such table". */
  readonly nftJson: string | undefined;
  /** What the case may touch. */
  readonly allowedChains: ReadonlySet<string>;
  readonly allowedLines: Record<'iptables' | 'ip6tables', ReadonlySet<string>>;
  readonly allowedHandles: ReadonlySet<number>;
  /** Whether the janitor has iptables work to do per family (DEL: our jumps; GC: doomed attachments). */
  readonly ourJumps: Record<'iptables' | 'ip6tables', number>;
  readonly gcDoomedIptables: boolean;
  readonly gcDoomedNft: boolean;
}

const JUNK = [
  'garbage',
  '-A',
  '-A POSTROUTING -m comment --comment "unterminated',
  '\u0001\u0002\u0003',
  '-N',
  ':',
  '-A POSTROUTING -j',
  '-A POSTROUTING -m comment --comment "name: \\"x\\" id: \\"y\\"" -j CNI-zzzzzzzzzzzzzzzzzzzzzzzz',
];

/** portmap's chain name, computed here independently of src/: CNI-DN-/CNI-SN- + 21 hex of sha512(network + id). */
function dnChainOf(network: string, containerId: string, kind: 'DN' | 'SN'): string {
  return `CNI-${kind}-` + createHash('sha512').update(network + containerId).digest('hex').slice(0, 21);
}

/** Build the fake world's outputs from the case. `id` is undefined when env/config gave no usable identity. */
export function buildWorld(w: WorldDesc, id: Identity | undefined, gcNetwork: string | undefined, valid: readonly { containerID: string; ifname: string }[]): WorldText {
  const listing = { iptables: '-P POSTROUTING ACCEPT\n', ip6tables: '-P POSTROUTING ACCEPT\n' };
  const allowedLines = { iptables: new Set<string>(), ip6tables: new Set<string>() };
  const allowedChains = new Set<string>();
  const allowedHandles = new Set<number>();
  const fam = (stem: 'iptables' | 'ip6tables'): 4 | 6 => (stem === 'iptables' ? 4 : 6);
  const ipOf = (stem: 'iptables' | 'ip6tables', i: number): string => (stem === 'iptables' ? `10.88.0.${5 + i}` : `fd00:88::${5 + i}`);
  const hostLen = (stem: 'iptables' | 'ip6tables'): string => (stem === 'iptables' ? '32' : '128');

  // DEL: POSTROUTING as `iptables -S` prints it.
  const posts: Record<'iptables' | 'ip6tables', string[]> = { iptables: [], ip6tables: [] };
  for (const stem of ['iptables', 'ip6tables'] as const) {
    const lines: string[] = [];
    lines.push(`-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`);
    lines.push(stem === 'iptables' ? '-A POSTROUTING -s 192.168.77.0/24 -j MASQUERADE' : '-A POSTROUTING -s fd77::/64 -j MASQUERADE');
    const other = bridgeState(fam(stem), 'othernet', id?.containerId ?? 'default-other', ipOf(stem, 50), stem === 'iptables' ? '10.250.0.0/24' : 'fd77:250::/64');
    lines.push(other.jump);
    if (id) {
      const [c24, c25] = chainsOf(id.network, id.containerId);
      allowedChains.add(c24);
      allowedChains.add(c25);
      // portmap's per-container chains share the hash: DEL may list them by name and remove them (issue 11).
      allowedChains.add(dnChainOf(id.network, id.containerId, 'DN'));
      allowedChains.add(dnChainOf(id.network, id.containerId, 'SN'));
      const n = stem === 'iptables' ? w.ourJumps4 : w.ourJumps6;
      for (let i = 0; i < n; i++) {
        const j = `-A POSTROUTING -s ${ipOf(stem, i)}/${hostLen(stem)} -m comment ${savedComment(id.network, id.containerId)} -j ${c24}`;
        lines.push(j);
        allowedLines[stem].add(j);
      }
      if (w.old25 && n > 0) {
        const j = `-A POSTROUTING -s ${ipOf(stem, 9)}/${hostLen(stem)} -m comment ${savedComment(id.network, id.containerId)} -j ${c25}`;
        lines.push(j);
        allowedLines[stem].add(j);
      }
      if (w.lookalikes) {
        lines.push(`-A POSTROUTING -s ${ipOf(stem, 20)}/${hostLen(stem)} -m comment ${savedComment(id.network, id.containerId)} -j ACCEPT`);
        lines.push(`-A POSTROUTING -s ${ipOf(stem, 21)}/${hostLen(stem)} -m comment ${savedComment(id.network, id.containerId + 'x')} -j ${c24}`);
        lines.push(`-A POSTROUTING -s ${ipOf(stem, 22)}/${hostLen(stem)} -m comment --comment "name: \\"${id.network}\\" id: \\"${id.containerId}\\" " -j ${c24}`);
      }
    }
    if (w.fault === 'listing-junk') lines.push(...JUNK);
    listing[stem] += lines.join('\n') + '\n';
    posts[stem] = lines;
  }

  // GC: full save text with bridge-shaped attachments.
  const save = { iptables: '', ip6tables: '' };
  const validIds = new Set(valid.map((a) => a.containerID));
  let gcDoomedIptables = false;
  for (const stem of ['iptables', 'ip6tables'] as const) {
    const declares: string[] = [':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':KUBE-POSTROUTING - [0:0]'];
    const rules: string[] = ['-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING', '-A KUBE-POSTROUTING -j MASQUERADE'];
    const plant = (network: string, cid: string, i: number, doomed: boolean): void => {
      const s = bridgeState(fam(stem), network, cid, ipOf(stem, 100 + i), stem === 'iptables' ? '10.88.0.0/16' : 'fd00:88::/64');
      declares.push(s.declare);
      rules.push(s.jump, ...s.rules);
      if (doomed) {
        allowedChains.add(chainOf4(network, cid));
        allowedLines[stem].add(s.jump);
        gcDoomedIptables = true;
      }
    };
    if (gcNetwork !== undefined) w.gcPlanted.forEach((cid, i) => plant(gcNetwork, cid, i, !validIds.has(cid)));
    plant('othernet', 'gc-a', 10, false);
    plant('othernet', 'default-zzz', 11, false);
    // A CNI-looking chain whose owner nothing proves: never to be touched.
    declares.push(':CNI-0123456789abcdef01234567 - [0:0]');
    rules.push('-A CNI-0123456789abcdef01234567 -j MASQUERADE');
    // The same table DEL lists with -S: its retries read the whole table (iptables-save), and must find there
    // what its first look found (the old oracle's save held GC's world only, so a DEL retry found nothing of
    // its own and "succeeded"). Our chains are there, empty, when -S <chain> finds them.
    if (id) {
      const [c24, c25] = chainsOf(id.network, id.containerId);
      if (w.chainExists) declares.push(`:${c24} - [0:0]`, ...(w.old25 ? [`:${c25} - [0:0]`] : []));
      const other = chainsOf('othernet', id.containerId)[0];
      if (!declares.includes(`:${other} - [0:0]`)) declares.push(`:${other} - [0:0]`);
      for (const l of posts[stem]) if (!rules.includes(l)) rules.push(l);
    }
    save[stem] = ['# Generated by iptables-save v1.8.9', '*nat', ...declares, ...rules, 'COMMIT', '# Completed', ''].join('\n');
  }

  // nft masq_checks.
  let handle = 10;
  const nftRules: { handle: number; comment: string | undefined; saddr: string }[] = [];
  const nftRule = (comment: string | undefined, allowed: boolean): void => {
    handle += 1 + (handle % 3);
    nftRules.push({ handle, comment, saddr: `10.88.1.${handle % 250}` });
    if (allowed) allowedHandles.add(handle);
  };
  if (id) {
    for (let i = 0; i < w.nftOurs; i++) nftRule(nftComment(id.network, id.ifname, id.containerId), true);
    nftRule(nftComment(id.network, id.ifname === 'eth0' ? 'eth1' : 'eth0', id.containerId), false);
    nftRule(nftComment(id.network, id.ifname, id.containerId + 'x'), false);
    nftRule(nftComment(id.network, id.ifname, id.containerId).split(',')[0] + 'x, net: y', false);
  }
  let gcDoomedNft = false;
  if (gcNetwork !== undefined) {
    const keep = new Set(valid.map((a) => `${a.containerID}\u0000${a.ifname}`));
    for (const cid of w.gcPlanted) {
      const doomed = !keep.has(`${cid}\u0000eth0`);
      nftRule(nftComment(gcNetwork, 'eth0', cid), doomed);
      gcDoomedNft ||= doomed;
    }
  }
  nftRule(nftComment('othernet', 'eth0', 'gc-a'), false);
  nftRule(undefined, false);
  nftRule('user rule', false);
  const nftJson =
    w.fault === 'nft-garbage'
      ? undefined
      : JSON.stringify({
          nftables: [
            { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
            { chain: { family: 'inet', table: 'cni_plugins_masquerade', name: 'masq_checks', handle: 2 } },
            ...nftRules.map((r) => ({
              rule: {
                family: 'inet',
                table: 'cni_plugins_masquerade',
                chain: 'masq_checks',
                handle: r.handle,
                ...(r.comment === undefined ? {} : { comment: r.comment }),
                expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: r.saddr } }, { masquerade: null }],
              },
            })),
          ],
        });

  return {
    listing,
    save,
    nftJson,
    allowedChains,
    allowedLines,
    allowedHandles,
    ourJumps: { iptables: id ? w.ourJumps4 + (w.old25 && w.ourJumps4 > 0 ? 1 : 0) : 0, ip6tables: id ? w.ourJumps6 + (w.old25 && w.ourJumps6 > 0 ? 1 : 0) : 0 },
    gcDoomedIptables,
    gcDoomedNft,
  };
}

const chainOf4 = (network: string, cid: string): string => chainsOf(network, cid)[0];

// ---------------------------------------------------------------- the oracle

export function atLeast(v: string, min: string): boolean {
  return SUPPORTED.indexOf(v as (typeof SUPPORTED)[number]) >= SUPPORTED.indexOf(min as (typeof SUPPORTED)[number]);
}

export type Expect =
  | { readonly exit: 0; readonly out: 'empty' | 'version' | 'add-result'; readonly why: string }
  | { readonly exit: 1; readonly code: number; readonly why: string }
  /** No CNI_COMMAND at all on a real process: the operator CLI prints its banner on stderr. */
  | { readonly exit: 0; readonly out: 'cli-banner'; readonly why: string };

/** Go's unicode.IsSpace (JavaScript's \s also matches U+FEFF, which Go does not count). */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;

/** libcni's utils.ValidateInterfaceName (bytes, as the kernel counts them). */
export function ifnameValid(s: string): boolean {
  return s !== '' && Buffer.byteLength(s) <= 15 && s !== '.' && s !== '..' && !/[/:]/.test(s) && !GO_SPACE.test(s);
}

const REQUIRED: Record<Verb, readonly ('containerId' | 'netns' | 'ifname' | 'cniPath')[]> = {
  ADD: ['containerId', 'netns', 'ifname'],
  CHECK: ['containerId', 'netns', 'ifname'],
  DEL: ['containerId', 'ifname'],
  GC: ['cniPath'],
  STATUS: [],
  VERSION: [],
};

export interface Derived {
  readonly verb: Verb | undefined;
  readonly identity: Identity | undefined;
  readonly gcNetwork: string | undefined;
  readonly valid: readonly { containerID: string; ifname: string }[];
  readonly lockWait: number;
  readonly strict: boolean;
  readonly effectivePath: string;
}

export function prevValid(p: PrevDesc, version: string): boolean | 'absent' {
  if (p.kind === 'absent' || p.kind === 'null') return 'absent';
  if (p.kind === 'broken') return false;
  if (p.kind === 'mismatch') return atLeast(version, '1.0.0');
  return true;
}

export function netnsPolicy(netns: string | undefined, nsenterOnPath: boolean, iface: boolean): 'keep' | 'remove' {
  // Only /proc/self/ns/net is a namespace among the generated paths.
  if (netns !== '/proc/self/ns/net') return 'remove';
  if (!nsenterOnPath) return 'keep'; // cannot look: 'unknown' keeps the empty chain for bridge
  return iface ? 'keep' : 'remove';
}

/**
 * What the spec and the janitor's policy demand for this case. `binary`:
 * the case runs as a real process (no CNI_COMMAND means operator CLI).
 */
export function expected(c: CaseDesc, path: string, binary: boolean): { expect: Expect; derived: Derived } {
  const e = c.env;
  const effectivePath = path === '' ? DEFAULT_PATH : path;
  const none: Derived = { verb: undefined, identity: undefined, gcNetwork: undefined, valid: [], lockWait: 5, strict: false, effectivePath };
  if (binary && e.command === undefined) return { expect: { exit: 0, out: 'cli-banner', why: 'no CNI_COMMAND: operator CLI' }, derived: none };
  if (!(VERBS as readonly string[]).includes(e.command ?? '')) return { expect: { exit: 1, code: 4, why: 'unknown CNI_COMMAND' }, derived: none };
  const verb = e.command as Verb;
  // Teardown policy (docs/teardown-policy.md): on DEL and GC, nothing about the janitor's own input is a refusal
  // unless the config validly says "strict": true. Problems with its identity mean touching nothing (no verb: no calls).
  const teardown = verb === 'DEL' || verb === 'GC';
  const rawStrict = c.stdin.kind === 'conf' && c.stdin.conf.settings.strict?.v === true;
  const refuse = (code: number, why: string): { expect: Expect; derived: Derived } =>
    teardown && !rawStrict ? { expect: { exit: 0, out: 'empty', why: `${verb}: ${why}, nothing touched (teardown policy)` }, derived: none } : { expect: { exit: 1, code, why }, derived: none };
  // DEL: an identity the janitor cannot use is nothing to remove, strict or not: it never stops libcni's chain.
  const identityRefuse = (why: string): { expect: Expect; derived: Derived } =>
    verb === 'DEL' ? { expect: { exit: 0, out: 'empty', why: `DEL: ${why}, nothing to remove` }, derived: none } : refuse(4, why);
  for (const k of REQUIRED[verb]) if (!e[k]) return identityRefuse(`missing ${k}`);
  if (REQUIRED[verb].includes('containerId') && !CNI_NAME.test(e.containerId ?? '')) return identityRefuse('invalid container ID');
  if (REQUIRED[verb].includes('ifname') && !ifnameValid(e.ifname ?? '')) return identityRefuse('invalid ifname');
  if (verb === 'VERSION') return { expect: { exit: 0, out: 'version', why: 'VERSION' }, derived: { ...none, verb } };

  const s = c.stdin;
  if (s.kind === 'raw' || s.kind === 'huge-garbage' || s.kind === 'truncated') {
    const why = `undecodable stdin (${s.kind === 'raw' ? s.why : s.kind})`;
    return teardown ? refuse(6, why) : { expect: { exit: 1, code: 6, why }, derived: { ...none, verb } };
  }
  const conf = s.conf;
  const bad = Object.entries(conf.settings).find(([, st]) => !st.valid);
  // The first problem, in the order the plugin checks; on a non-strict teardown the rest of the config still counts.
  const problem: [number, string] | undefined =
    conf.version.kind !== 'ok'
      ? [1, 'unsupported or missing cniVersion']
      : conf.name.kind !== 'ok'
        ? [7, 'missing or invalid network name']
        : conf.misspelled
          ? [7, `misspelled key ${conf.misspelled}`]
          : bad
            ? [7, `invalid setting ${bad[0]}`]
            : conf.attachments.kind === 'invalid'
              ? [7, 'invalid valid-attachments']
              : undefined;
  if (problem && (!teardown || rawStrict)) return { expect: { exit: 1, code: problem[0], why: problem[1] }, derived: { ...none, verb } };
  if (conf.name.kind !== 'ok') return refuse(7, 'missing or invalid network name');
  const version = conf.version.kind === 'ok' ? conf.version.v : '1.1.0';
  const network = conf.name.v;
  // A misspelled or invalid janitor key: the cleanup runs with every default.
  const settingsOk = !conf.misspelled && !bad;
  const strict = settingsOk && conf.settings.strict?.v === true;
  const lockWait = settingsOk && typeof conf.settings.lockWait?.v === 'number' ? conf.settings.lockWait.v : 5;
  const valid = conf.attachments.kind === 'valid' ? conf.attachments.list : [];
  const identity = REQUIRED[verb].includes('containerId') ? { network, containerId: e.containerId as string, ifname: e.ifname as string } : undefined;
  const derived: Derived = { verb, identity, gcNetwork: verb === 'GC' ? network : undefined, valid, lockWait, strict, effectivePath };
  const pv = prevValid(conf.prev, version);

  switch (verb) {
    case 'ADD':
      if (pv === 'absent') return { expect: { exit: 1, code: 7, why: 'ADD without prevResult' }, derived };
      if (!pv) return { expect: { exit: 1, code: 7, why: 'ADD with invalid prevResult' }, derived };
      return { expect: { exit: 0, out: 'add-result', why: 'ADD passes prevResult through' }, derived };
    case 'CHECK':
      if (!atLeast(version, '0.4.0')) return { expect: { exit: 1, code: 1, why: 'CHECK below 0.4.0' }, derived };
      if (pv === 'absent') return { expect: { exit: 1, code: 7, why: 'CHECK without prevResult' }, derived };
      if (!pv) return { expect: { exit: 1, code: 7, why: 'CHECK with invalid prevResult' }, derived };
      return { expect: { exit: 0, out: 'empty', why: 'CHECK ok' }, derived };
    case 'STATUS': {
      const missing = ['iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore', 'nsenter', 'ip'].filter((t) => !onPath(t, effectivePath));
      return missing.length ? { expect: { exit: 1, code: 50, why: `STATUS: missing ${missing.join(',')}` }, derived } : { expect: { exit: 0, out: 'empty', why: 'STATUS ok' }, derived };
    }
    case 'DEL':
      return { expect: delExpect(c, derived), derived };
    case 'GC':
      return { expect: gcExpect(c, derived, settingsOk && conf.settings.gc?.v === false, conf.attachments.kind === 'valid'), derived };
  }
}

/** Which of the world's source addresses (index into ipOf) prevResult hands DEL for this family, after its interface filter. */
function prevIpsFor(c: CaseDesc, version: string, family: 4 | 6): string[] | undefined {
  if (c.stdin.kind !== 'conf') return undefined;
  const p = c.stdin.conf.prev;
  if (prevValid(p, version) !== true) return undefined;
  if (p.kind === 'mismatch') return family === 4 ? ['10.88.0.5'] : [];
  if (p.kind !== 'valid') return undefined;
  // An address tied to an interface (index 1: "eth0") is another interface's unless CNI_IFNAME is eth0.
  if (p.withIface && c.env.ifname !== 'eth0') return [];
  const out: string[] = [];
  if (family === 4 && p.v4) out.push('10.88.0.5');
  if (family === 6 && p.v6) out.push('fd00:88::5');
  if (family === 6 && p.mapped) out.push('::ffff:10.0.0.1');
  return out;
}

/**
 * Whether DEL, having read this table (`-S POSTROUTING` and the chains of
 * ours), has anything to remove: a jump of ours whose source is this
 * interface's (prevResult's addresses; without them every jump of ours, as
 * no other interface of the container is recorded), or -- nothing entering
 * it -- our chain, found empty, that bridge will not need for its own
 * teardown. The world's jumps have sources ipOf(0..n-1) and, old-format,
 * ipOf(9); a look-alike jump enters our chain and so keeps it.
 */
function delReadWork(w: WorldDesc, family: 4 | 6, mine: readonly string[] | undefined, recreate: boolean): boolean {
  const n = family === 4 ? w.ourJumps4 : w.ourJumps6;
  const sources = Array.from({ length: n }, (_, i) => (family === 4 ? `10.88.0.${5 + i}` : `fd00:88::${5 + i}`));
  if (n > 0 && w.old25) sources.push(family === 4 ? '10.88.0.14' : 'fd00:88::14');
  const doomed = mine === undefined || mine.length === 0 ? sources.length : sources.filter((s) => mine.includes(s)).length;
  if (doomed > 0) return true;
  return sources.length === 0 && w.chainExists && !w.lookalikes && !recreate;
}

/**
 * Strict DEL, per table (the policy of issue 10 and the one-transaction
 * core): with prevResult's addresses of a family, ONE restore planned
 * without reading comes first; it only fails here through the fault (or a
 * missing restore binary). A failure other than the lock falls through to
 * reading the table; a plan that is then empty succeeds, otherwise the
 * transaction is retried (3 attempts) and its failure is code 5. A held
 * lock fails the first command of the table that meets it: code 11. No
 * iptables binary: nothing to read, nothing of this family to do.
 * (The old oracle counted a failure only where state was listed, and not a
 * restore timeout: that was the command-by-command fallback's behaviour.)
 */
function delExpect(c: CaseDesc, d: Derived): Expect {
  if (!d.strict) return { exit: 0, out: 'empty', why: 'DEL is best-effort unless strict' };
  const w = c.world;
  const has = (t: string): boolean => onPath(t, d.effectivePath);
  const version = confVersion(c) ?? '1.1.0';
  const errors: ('lock' | 'io')[] = [];
  const policy = netnsPolicy(c.env.netns, has('nsenter'), w.nsenterIface);
  const restoreFails = w.fault === 'restore-fails' || w.fault === 'timeout';
  // A valid prevResult that gives this interface an address in one family only: the other is not looked at.
  const v4 = prevIpsFor(c, version, 4);
  const v6 = prevIpsFor(c, version, 6);
  const anyOwn = (v4?.length ?? 0) + (v6?.length ?? 0) > 0;
  for (const stem of ['iptables', 'ip6tables'] as const) {
    if (!has(stem)) continue;
    const family = stem === 'iptables' ? 4 : 6;
    const mine = family === 4 ? v4 : v6;
    if (anyOwn && mine !== undefined && mine.length === 0) continue;
    const fast = mine !== undefined && mine.length > 0;
    // On a host whose iptables is nft, a legacy nat table of this netns is cleaned too (bridge never tears down there).
    const legacyToo = d.effectivePath === DEFAULT_PATH && has(`${stem}-legacy`) && legacyNatHere(family);
    for (const pol of legacyToo ? [policy, 'remove' as const] : [policy]) {
      if (w.fault === 'lock') {
        errors.push('lock');
        continue;
      }
      if (fast && has(`${stem}-restore`) && !restoreFails) continue;
      if (!delReadWork(w, family, mine, pol === 'keep')) continue;
      if (!has(`${stem}-restore`) || restoreFails) errors.push('io');
    }
  }
  if (has('nft')) {
    if (w.fault === 'nft-list-fails' || w.fault === 'nft-garbage') errors.push('io');
    else if (w.fault === 'nft-delete-fails' && w.nftOurs > 0) errors.push('io');
  }
  if (errors.length === 0) return { exit: 0, out: 'empty', why: `strict DEL, fault ${w.fault}: nothing failed` };
  return errors.includes('lock') ? { exit: 1, code: 11, why: 'strict DEL, xtables lock held' } : { exit: 1, code: 5, why: `strict DEL, fault ${w.fault}` };
}

/**
 * GC reads whole tables (iptables-save, which no fault here touches) and
 * applies one transaction per table, retried from a fresh read. Since
 * issue 10 GC follows DEL's teardown policy: a cleanup failure is logged
 * and GC exits 0 unless the config validly says "strict": true (then 5, or
 * 11 for the lock). The old oracle returned the codes whatever "strict" said.
 */
function gcExpect(c: CaseDesc, d: Derived, gcOff: boolean, attachmentsValid: boolean): Expect {
  if (gcOff) return { exit: 0, out: 'empty', why: 'gc disabled' };
  if (!attachmentsValid) return { exit: 0, out: 'empty', why: 'GC without valid-attachments does nothing' };
  const w = c.world;
  const has = (t: string): boolean => onPath(t, d.effectivePath);
  const world = buildWorld(w, undefined, d.gcNetwork, d.valid);
  const errors: ('lock' | 'io')[] = [];
  for (const stem of ['iptables', 'ip6tables'] as const) {
    if (!has(stem) || !has(`${stem}-save`)) continue;
    if (!world.gcDoomedIptables) continue;
    if (!has(`${stem}-restore`)) errors.push('io');
    else if (w.fault === 'lock') errors.push('lock');
    else if (w.fault === 'restore-fails' || w.fault === 'timeout') errors.push('io');
  }
  if (has('nft')) {
    if (w.fault === 'nft-list-fails' || w.fault === 'nft-garbage') errors.push('io');
    else if (w.fault === 'nft-delete-fails' && world.gcDoomedNft) errors.push('io');
  }
  if (errors.length === 0) return { exit: 0, out: 'empty', why: `GC, fault ${w.fault}: nothing failed` };
  if (!d.strict) return { exit: 0, out: 'empty', why: `GC, fault ${w.fault}: cleanup failure reported only (not strict)` };
  return errors.includes('lock') ? { exit: 1, code: 11, why: 'strict GC, xtables lock held' } : { exit: 1, code: 5, why: `strict GC, fault ${w.fault}` };
}

/** The prevResult the case carries, as the plugin will have parsed it (for ADD's pass-through check). */
export function prevResultOf(c: CaseDesc): unknown {
  if (c.stdin.kind !== 'conf') return undefined;
  const conf = c.stdin.conf;
  return prevValue(conf.prev, conf.version.kind === 'ok' ? conf.version.v : '1.0.0');
}

export function confVersion(c: CaseDesc): string | undefined {
  if (c.stdin.kind !== 'conf' || c.stdin.conf.version.kind !== 'ok') return undefined;
  return c.stdin.conf.version.v;
}
