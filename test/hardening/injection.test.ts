import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printFigures, recordFigures } from './support/figures.js';
import { createNetns, nsMust, randomHex, removeAllNetns, removeNetns, type Netns } from '../support/netns.js';
import { disposeVariantPaths, loadNft, normalizeSave, restore, snapshot, variantPath, type Tables, type Variant } from '../support/xtables.js';
import { janitor, lineDiff, rootMentions } from './support/host.js';
import { bridgeState, chainOf, nftComment } from './support/ref.js';

/**
 * Injection against REAL nat tables, in a throwaway namespace per iptables
 * variant: bridge-shaped state for one legitimate container, plus foreign
 * rules (kube-proxy, Docker, a user's MASQUERADE and filter rule, another
 * container of the same network, another network's chain for the same
 * container ID, a rule carrying our comment but not our target, the nft
 * backend's table). Every input below runs the real dist/masq-janitor
 * inside the namespace; afterwards every table must be byte-for-byte what
 * it was, except the legitimate container's own rules after a legitimate DEL.
 */

const NET = 'mjh-inj';
const CID = `default-${randomHex(8)}`;
const CID2 = `default-${randomHex(8)}`;
const IP4 = '10.77.0.2';
const IP6 = 'fd77:77::2';

interface Case {
  readonly name: string;
  readonly verb: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
  readonly containerId?: string;
  readonly network?: unknown;
  readonly ifname?: string;
  readonly netns?: string;
  readonly prevResult?: unknown;
  readonly extra?: Record<string, unknown>;
  readonly cniVersion?: string;
  /**
   * A legitimate DEL of the container: its iptables rules (and nft ones when `nftToo`) may go; `keepV4`: its
   * v4 state stays, because prevResult names v4 addresses of this interface that are not the jump's.
   */
  readonly legit?: { readonly nftToo: boolean; readonly keepV4?: boolean; readonly keepV6?: boolean };
  readonly raw?: string;
}

const goodPrev = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'mj0' }, { name: 'eth0', sandbox: '/var/run/netns/x' }],
  ips: [
    { address: `${IP4}/24`, gateway: '10.77.0.1', interface: 1 },
    { address: `${IP6}/64`, interface: 1 },
  ],
};

const evil = ['x\n-A INPUT -j ACCEPT', `${CID}\n-A POSTROUTING -j ACCEPT`, `"${CID}"`, `${CID}"`, `${CID}\\`, 'COMMIT', `${CID}\nCOMMIT\n*filter\n-F\nCOMMIT`, `${CID} -j ACCEPT`, `${CID}ü`, `${CID}\r`, `-A POSTROUTING -j ${chainOf(NET, CID)}`];

const CASES: Case[] = [
  // Container IDs.
  ...evil.map((id): Case => ({ name: `DEL with CNI_CONTAINERID ${JSON.stringify(id)}`, verb: 'DEL', containerId: id })),
  { name: 'DEL with a valid 300-character container ID (comment-length overflow)', verb: 'DEL', containerId: 'a'.repeat(300) },
  { name: 'DEL with a valid 5000-character container ID', verb: 'DEL', containerId: `${CID}${'b'.repeat(5000)}` },
  { name: 'DEL of the same ID on another network (othernet owns one)', verb: 'DEL', network: 'othernet-x' },
  { name: 'DEL of a prefix of the legitimate ID', verb: 'DEL', containerId: CID.slice(0, -1) },
  // Network names.
  ...[`${NET}"`, `${NET}\n-A INPUT -j ACCEPT`, `${NET}\nCOMMIT`, `${NET} `, `${NET}\\`, 'COMMIT', 'x"; -F; "', `${NET}${'n'.repeat(300)}`, NET.toUpperCase(), 5, null].map(
    (n): Case => ({ name: `DEL with network name ${JSON.stringify(n)}`, verb: 'DEL', network: n }),
  ),
  // Interface names: the ID is legitimate, so its iptables state is its own; nft keys on ifname too.
  ...['eth0"', 'eth0\\', '$(reboot)', '-h', 'eth0;x', 'COMMIT'].map((i): Case => ({ name: `legitimate DEL with CNI_IFNAME ${JSON.stringify(i)}`, verb: 'DEL', ifname: i, legit: { nftToo: false } })),
  ...['eth0\n-A INPUT -j ACCEPT', 'eth0 -j ACCEPT', 'eth0/x', 'e'.repeat(16)].map((i): Case => ({ name: `DEL with invalid CNI_IFNAME ${JSON.stringify(i)}`, verb: 'DEL', ifname: i })),
  // prevResult never reaches a rule spec and never names another container's state; an invalid one is ignored.
  ...[
    { ips: [{ address: '10.0.0.1/32 -j ACCEPT' }] },
    { ips: [{ address: '10.0.0.1/32\n-A INPUT -j ACCEPT' }] },
    { ips: [{ address: `${IP4}/32`, interface: 0 }], interfaces: [{ name: 'eth0\n-A INPUT -j ACCEPT' }] },
    { ...goodPrev, routes: [{ dst: '0.0.0.0/0 -j ACCEPT' }], dns: { nameservers: ['"\nCOMMIT'] } },
    'COMMIT\n',
  ].map((p): Case => ({ name: `legitimate DEL with prevResult ${JSON.stringify(p).slice(0, 70)}`, verb: 'DEL', prevResult: p, legit: { nftToo: true } })),
  // A valid prevResult says which addresses are this interface's (per-interface DEL): naming 10.77.0.3, the
  // other container's address, dooms no jump of ours in v4 (the one for 10.77.0.2 may be another interface's)
  // and never CID2's; v6, of which it names nothing, is not this interface's either (it had no IPv6 address):
  // left to the interface it belongs to, or to sweep. (The old expectation, "prevResult never chooses what is
  // deleted", was the policy before DEL went per interface.)
  { name: 'legitimate DEL with prevResult naming only the other container\'s v4 address', verb: 'DEL', prevResult: { ips: [{ address: '10.77.0.3/24' }] }, legit: { nftToo: true, keepV4: true, keepV6: true } },
  { name: 'legitimate DEL, CNI_NETNS with a newline', verb: 'DEL', netns: '/var/run/netns/x\n-A INPUT -j ACCEPT', legit: { nftToo: true } },
  { name: 'legitimate DEL (plain)', verb: 'DEL', legit: { nftToo: true } },
  // Other verbs with hostile input change nothing.
  { name: 'ADD with a hostile prevResult', verb: 'ADD', prevResult: { ips: [{ address: '10.0.0.1/32 -j ACCEPT' }] }, netns: '/proc/self/ns/net' },
  { name: 'ADD with the good prevResult', verb: 'ADD', prevResult: goodPrev, netns: '/proc/self/ns/net' },
  { name: 'CHECK with a hostile interface name in prevResult', verb: 'CHECK', prevResult: { ...goodPrev, interfaces: [{ name: 'x\n-F' }] }, netns: '/proc/self/ns/net' },
  {
    name: 'GC listing every real container plus hostile IDs',
    verb: 'GC',
    cniVersion: '1.1.0',
    // Every real attachment, including the eth1 one the nft table holds for the legitimate ID.
    extra: { 'cni.dev/valid-attachments': [...[CID, CID2, 'x\n-A INPUT -j ACCEPT', 'a"b', '', `${CID}\nCOMMIT`].map((c) => ({ containerID: c, ifname: 'eth0' })), { containerID: CID, ifname: 'eth1' }] },
  },
  { name: 'GC of another network listing its container', verb: 'GC', cniVersion: '1.1.0', network: 'othernet', extra: { 'cni.dev/valid-attachments': [{ containerID: CID, ifname: 'eth0' }, { containerID: 'default-otherctr', ifname: 'eth0' }] } },
  { name: 'GC with a hostile network name', verb: 'GC', cniVersion: '1.1.0', network: 'x\n-F', extra: { 'cni.dev/valid-attachments': [] } },
  { name: 'STATUS', verb: 'STATUS', cniVersion: '1.1.0' },
  { name: 'VERSION with a hostile body', verb: 'VERSION', raw: '{"cniVersion":"1.1.0\\n-A INPUT -j ACCEPT"}' },
  { name: 'DEL with iptables-restore text as stdin', verb: 'DEL', raw: '*nat\n-F\nCOMMIT\n' },
];

function stdinFor(c: Case): string {
  if (c.raw !== undefined) return c.raw;
  const conf: Record<string, unknown> = { cniVersion: c.cniVersion ?? '1.0.0', name: c.network === undefined ? NET : c.network, type: 'masq-janitor', strict: true, lockWait: 5, ...c.extra };
  if (c.prevResult !== undefined) conf.prevResult = c.prevResult;
  return JSON.stringify(conf);
}

function envFor(c: Case, path: string): Record<string, string> {
  return {
    PATH: path,
    CNI_COMMAND: c.verb,
    CNI_CONTAINERID: c.containerId ?? CID,
    CNI_NETNS: c.netns ?? '',
    CNI_IFNAME: c.ifname ?? 'eth0',
    CNI_PATH: '/opt/cni/bin',
  };
}

/** The legitimate container's state, in exactly bridge's shape, for both families and the nft backend. */
function legitState(): { v4: string[]; v6: string[]; nftRules: string[] } {
  const a4 = bridgeState(4, NET, CID, IP4, '10.77.0.0/24');
  const a6 = bridgeState(6, NET, CID, IP6, 'fd77:77::/64');
  const comment = nftComment(NET, 'eth0', CID);
  return {
    v4: [a4.declare, a4.jump, ...a4.rules],
    v6: [a6.declare, a6.jump, ...a6.rules],
    nftRules: [`ip saddr ${IP4} ip daddr != 10.77.0.0/24 masquerade comment "${comment}"`, `ip6 saddr ${IP6} ip6 daddr != fd77:77::/64 masquerade comment "${comment}"`],
  };
}

function restoreText(lines: string[]): string {
  const declares = lines.filter((l) => l.startsWith(':'));
  const rules = lines.filter((l) => l.startsWith('-A'));
  return ['*nat', ...declares, ...rules, 'COMMIT', ''].join('\n');
}

function foreign(family: 4 | 6): string {
  const v4 = family === 4;
  const c2 = bridgeState(family, NET, CID2, v4 ? '10.77.0.3' : 'fd77:77::3', v4 ? '10.77.0.0/24' : 'fd77:77::/64');
  const other = bridgeState(family, 'othernet', CID, v4 ? '10.250.0.5' : 'fd77:250::5', v4 ? '10.250.0.0/24' : 'fd77:250::/64');
  const host = v4 ? '10.77.0.9/32' : 'fd77:77::9/128';
  return [
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':DOCKER - [0:0]',
    c2.declare,
    other.declare,
    '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
    '-A OUTPUT -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    `-A POSTROUTING -s ${v4 ? '192.168.77.0/24' : 'fd77:1::/64'} -j MASQUERADE`,
    // Our exact comment, but not our target: it is not the janitor's to delete.
    `-A POSTROUTING -s ${host} -m comment --comment "name: \\"${NET}\\" id: \\"${CID}\\"" -j ACCEPT`,
    '-A POSTROUTING -m comment --comment "q\\"uo\\\\te COMMIT" -j RETURN',
    c2.jump,
    other.jump,
    `-A KUBE-SERVICES -d ${v4 ? '10.96.0.1/32' : 'fd96::1/128'} -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ`,
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE',
    '-A DOCKER -i docker0 -j RETURN',
    ...c2.rules,
    ...other.rules,
    'COMMIT',
    '*filter',
    `-A INPUT -s ${v4 ? '203.0.113.7/32' : '2001:db8::7/128'} -j DROP`,
    'COMMIT',
    '',
  ].join('\n');
}

/** A comment whose newline makes `iptables -S` print a line starting with `*` (iptables prints comments raw). */
const ODD_COMMENT = 'note\n*filter';

const NFT_BASE = `table inet cni_plugins_masquerade {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump masq_checks
  }
  chain masq_checks {
    ip saddr 10.77.0.3 ip daddr != 10.77.0.0/24 masquerade comment "${nftComment(NET, 'eth0', CID2)}"
    ip saddr 10.250.0.5 ip daddr != 10.250.0.0/24 masquerade comment "${nftComment('othernet', 'eth0', CID)}"
    ip saddr 10.77.0.2 ip daddr != 10.77.0.0/24 masquerade comment "${nftComment(NET, 'eth1', CID)}"
    ip saddr 10.77.0.9 masquerade comment "user rule"
  }
}
`;

async function installLegit(ns: Netns, path: string): Promise<void> {
  const s = legitState();
  await restore(ns, path, 4, restoreText(s.v4));
  await restore(ns, path, 6, restoreText(s.v6));
  await loadNft(ns, s.nftRules.map((r) => `add rule inet cni_plugins_masquerade masq_checks ${r}\n`).join(''));
}

/** `before` without the legitimate container's own lines. */
function withoutLegit(before: Tables, nftToo: boolean, keepV4 = false, keepV6 = false): Tables {
  const s = legitState();
  const drop = (text: string, lines: string[]): string => {
    const gone = new Set(lines.map((l) => normalizeSave(l)));
    return text
      .split('\n')
      .filter((l) => !gone.has(l))
      .join('\n');
  };
  const comment = nftComment(NET, 'eth0', CID);
  return {
    v4: keepV4 ? before.v4 : drop(before.v4, s.v4),
    v6: keepV6 ? before.v6 : drop(before.v6, s.v6),
    nft: nftToo ? before.nft.split('\n').filter((l) => !l.includes(`"${comment}"`)).join('\n') : before.nft,
  };
}

const figures = { variants: 0, cases: 0, hostileCases: 0, legitimateDels: 0, tableBytesCompared: 0, foreignRulesChanged: 0, leaksAfterLegitimateDel: 0 };
const bugs: string[] = [];

afterAll(async () => {
  await removeAllNetns();
  disposeVariantPaths();
  const f = {
    'iptables variants (each its own netns)': figures.variants,
    'inputs run through the real binary': figures.cases,
    'hostile inputs (must change nothing)': figures.hostileCases,
    "legitimate DELs (must remove exactly the container's own rules)": figures.legitimateDels,
    'table snapshots compared (v4 + v6 + nft), bytes': figures.tableBytesCompared,
    'foreign rules added, changed or deleted': figures.foreignRulesChanged,
    'leaks after a legitimate DEL': figures.leaksAfterLegitimateDel,
    'findings (see test names)': bugs.length ? bugs.join('; ') : 'none',
  };
  printFigures('injection', f);
  await recordFigures('injection', f);
});

for (const variant of ['nft', 'legacy'] as Variant[]) {
  describe(`injection, ${variant} iptables (real tables in a throwaway netns)`, () => {
    let ns: Netns;
    let path = '';
    let pristine: Tables;

    beforeAll(async () => {
      ns = await createNetns(`mjh-inj-${variant}`);
      path = variantPath(variant);
      const version = await nsMust(ns, 'iptables', ['--version'], { env: { PATH: path } });
      expect(version).toContain(variant === 'nft' ? '(nf_tables)' : '(legacy)');
      await restore(ns, path, 4, foreign(4));
      await restore(ns, path, 6, foreign(6));
      await loadNft(ns, NFT_BASE);
      await installLegit(ns, path);
      pristine = await snapshot(ns, path);
      expect(pristine.v4).toContain(chainOf(NET, CID));
      figures.variants++;
    });

    afterAll(async () => {
      if (ns) await removeNetns(ns);
    });

    it(`no container ID, network name, interface name or prevResult field touches anything but the container's own rules (${CASES.length} inputs)`, async () => {
      const problems: string[] = [];
      for (const c of CASES) {
        const r = await janitor(ns, envFor(c, path), stdinFor(c));
        figures.cases++;
        if (c.legit) figures.legitimateDels++;
        else figures.hostileCases++;
        const after = await snapshot(ns, path);
        const want = c.legit ? withoutLegit(pristine, c.legit.nftToo, c.legit.keepV4, c.legit.keepV6) : pristine;
        figures.tableBytesCompared += after.v4.length + after.v6.length + after.nft.length;
        for (const k of ['v4', 'v6', 'nft'] as const) {
          if (after[k] !== want[k]) {
            problems.push(`${c.name}: ${k} table differs from the expected state:\n${lineDiff(want[k], after[k])}\n(exit ${r.exitCode}, stdout ${r.stdout.trim()})`);
            if (c.legit) figures.leaksAfterLegitimateDel++;
            else figures.foreignRulesChanged++;
          }
        }
        problems.push(...r.protocolProblems.map((p) => `${c.name}: ${p}`));
        if (c.legit && r.exitCode !== 0) problems.push(`${c.name}: legitimate strict DEL failed: ${r.stdout.trim()} ${r.stderr.trim().slice(0, 300)}`);
        // Put the legitimate container back (and make sure the table really is as before) for the next input.
        if (c.legit) await installLegit(ns, path);
        const again = await snapshot(ns, path);
        if (again.v4 !== pristine.v4 || again.v6 !== pristine.v6 || again.nft !== pristine.nft) await resetTo(ns, path);
      }
      expect(problems, problems.join('\n\n')).toEqual([]);
    }, 180_000);

    it('a legitimate DEL twice: the second finds nothing and changes nothing', async () => {
      await resetTo(ns, path);
      const c: Case = { name: 'legit', verb: 'DEL', legit: { nftToo: true } };
      const first = await janitor(ns, envFor(c, path), stdinFor(c));
      const mid = await snapshot(ns, path);
      const second = await janitor(ns, envFor(c, path), stdinFor(c));
      const after = await snapshot(ns, path);
      figures.cases += 2;
      figures.legitimateDels += 2;
      figures.tableBytesCompared += 2 * (after.v4.length + after.v6.length + after.nft.length);
      const want = withoutLegit(pristine, true);
      expect([first.exitCode, second.exitCode, first.stdout, second.stdout]).toEqual([0, 0, '', '']);
      for (const k of ['v4', 'v6', 'nft'] as const) {
        expect(mid[k], `${k} after the first DEL:\n${lineDiff(want[k], mid[k])}`).toBe(want[k]);
        expect(after[k], `${k} after the second DEL:\n${lineDiff(mid[k], after[k])}`).toBe(mid[k]);
      }
      await resetTo(ns, path);
    }, 60_000);

    it('a network name + container ID whose concatenation equals the legitimate pair\'s (same CNI-<hash> chain) leaves that chain alone', async () => {
      // upstream hashes network+containerID with no separator: ("mjh-in", "j<CID>") names the same chain as ("mjh-inj", "<CID>").
      const network = NET.slice(0, -1);
      const containerId = NET.slice(-1) + CID;
      expect(chainOf(network, containerId)).toBe(chainOf(NET, CID));
      await resetTo(ns, path);
      const before = await snapshot(ns, path);
      expect(before).toEqual(pristine);
      const c: Case = { name: 'collision', verb: 'DEL', network, containerId };
      const r = await janitor(ns, envFor(c, path), stdinFor(c));
      figures.cases++;
      figures.hostileCases++;
      const after = await snapshot(ns, path);
      figures.tableBytesCompared += after.v4.length + after.v6.length + after.nft.length;
      const diff = after.v4 === before.v4 && after.v6 === before.v6 ? '' : `v4:\n${lineDiff(before.v4, after.v4)}\nv6:\n${lineDiff(before.v6, after.v6)}`;
      if (diff) {
        figures.foreignRulesChanged += diff.split('\n').filter((l) => l.startsWith('- ')).length;
        if (!bugs.includes('hash-collision DEL flushes another attachment')) bugs.push('hash-collision DEL flushes another attachment');
      }
      await resetTo(ns, path);
      expect(diff, `DEL for (${network}, ${containerId}) changed another attachment's rules (exit ${r.exitCode}, stdout ${r.stdout.trim()}):\n${diff}`).toBe('');
    }, 60_000);

    it('a foreign rule whose comment holds a newline (printed raw by iptables) cannot hide the container\'s rules from DEL', async () => {
      // Any root process can write such a comment; iptables -S / -save print the newline as is.
      await resetTo(ns, path);
      const before = await snapshot(ns, path);
      expect(before).toEqual(pristine);
      for (const family of [4, 6] as const) {
        await nsMust(ns, family === 4 ? 'iptables' : 'ip6tables', ['-w', '5', '-t', 'nat', '-I', 'POSTROUTING', '1', '-m', 'comment', '--comment', ODD_COMMENT, '-j', 'RETURN'], { env: { PATH: path } });
      }
      const withOdd = await snapshot(ns, path);
      const c: Case = { name: 'legit DEL behind a newline comment', verb: 'DEL', legit: { nftToo: true } };
      const r = await janitor(ns, envFor(c, path), stdinFor(c));
      figures.cases++;
      figures.legitimateDels++;
      const after = await snapshot(ns, path);
      figures.tableBytesCompared += after.v4.length + after.v6.length + after.nft.length;
      const want = withoutLegit(withOdd, true);
      const diff = (['v4', 'v6', 'nft'] as const)
        .filter((k) => after[k] !== want[k])
        .map((k) => `${k}:\n${lineDiff(want[k], after[k])}`)
        .join('\n');
      // Clean up: drop the odd rules, then bring the legitimate container back.
      for (const family of [4, 6] as const) {
        await nsMust(ns, family === 4 ? 'iptables' : 'ip6tables', ['-w', '5', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', ODD_COMMENT, '-j', 'RETURN'], { env: { PATH: path } });
      }
      if (diff) {
        figures.leaksAfterLegitimateDel++;
        if (!bugs.includes('newline comment hides rules from DEL')) bugs.push('newline comment hides rules from DEL');
      }
      await resetTo(ns, path);
      expect(diff, `DEL did not remove exactly the container's rules (exit ${r.exitCode}, stdout ${r.stdout.trim()}, stderr ${r.stderr.trim().slice(0, 400)}):\n${diff}`).toBe('');
    }, 60_000);
  });
}

/** Bring the tables back to the pristine state (foreign rules + the legitimate container). */
async function resetTo(ns: Netns, path: string): Promise<void> {
  await restore(ns, path, 4, '*nat\nCOMMIT\n*filter\nCOMMIT\n', true);
  await restore(ns, path, 6, '*nat\nCOMMIT\n*filter\nCOMMIT\n', true);
  await nsMust(ns, 'nft', ['delete', 'table', 'inet', 'cni_plugins_masquerade']);
  await restore(ns, path, 4, foreign(4));
  await restore(ns, path, 6, foreign(6));
  await loadNft(ns, NFT_BASE);
  await installLegit(ns, path);
}

describe('root namespace', () => {
  it('the root network namespace never saw any of this', async () => {
    expect(await rootMentions()).toEqual([]);
  });
});
