import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPlugin, type Outcome } from '../../src/cni/plugin.js';
import { chainName, iptablesComment, nftComment, type Attachment } from '../../src/identity.js';
import { FakeHost, type FakeRule } from './fake-host.js';

/**
 * A PATH whose iptables resolves to an nft multi-binary (as Debian's
 * alternatives do), so variant detection sees an iptables-nft host, and a
 * state dir; the tools themselves are answered by a FakeHost.
 */
export interface FakeWorld {
  readonly host: FakeHost;
  readonly path: string;
  readonly stateDir: string;
  dispose(): void;
}

const TOOLS = ['iptables', 'ip6tables', 'iptables-save', 'ip6tables-save', 'iptables-restore', 'ip6tables-restore', 'iptables-nft', 'ip6tables-nft', 'iptables-nft-save', 'ip6tables-nft-save', 'iptables-nft-restore', 'ip6tables-nft-restore'];

export function fakeWorld(): FakeWorld {
  const root = mkdtempSync(join(tmpdir(), 'mj-fake-'));
  const bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'xtables-nft-multi'), '#!/bin/sh\nexit 99\n');
  chmodSync(join(bin, 'xtables-nft-multi'), 0o755);
  for (const t of TOOLS) symlinkSync('xtables-nft-multi', join(bin, t));
  for (const t of ['nft', 'nsenter', 'ip']) {
    writeFileSync(join(bin, t), '#!/bin/sh\nexit 99\n');
    chmodSync(join(bin, t), 0o755);
  }
  const stateDir = join(root, 'state');
  mkdirSync(join(stateDir, 'results'), { recursive: true });
  mkdirSync(join(stateDir, 'networks'), { recursive: true });
  return { host: new FakeHost(), path: bin, stateDir, dispose: () => rmSync(root, { recursive: true, force: true }) };
}

const q = (s: string): string => `"${s.replaceAll('"', '\\"')}"`;

/** bridge's state for one attachment and address: the jump into its chain, and the chain's two rules. */
export function bridgeState(a: Attachment, ip: string, subnet: string): { chain: string; jump: FakeRule; inside: FakeRule[] } {
  const chain = chainName(a);
  const c = q(iptablesComment(a));
  const host = ip.includes(':') ? `${ip}/128` : `${ip}/32`;
  return {
    chain,
    jump: { line: `-A POSTROUTING -s ${host} -m comment --comment ${c} -j ${chain}`, target: chain },
    inside: [
      { line: `-A ${chain} -d ${subnet} -m comment --comment ${c} -j ACCEPT` },
      { line: `-A ${chain} ! -d ${ip.includes(':') ? 'ff00::/8' : '224.0.0.0/4'} -m comment --comment ${c} -j MASQUERADE` },
    ],
  };
}

export function addBridge(host: FakeHost, base: string, a: Attachment, ip: string, subnet: string): ReturnType<typeof bridgeState> {
  const s = bridgeState(a, ip, subnet);
  host.addChain(base, s.chain);
  host.addRule(base, s.jump);
  for (const r of s.inside) host.addRule(base, r);
  return s;
}

/** libcni's cache entry for one interface. */
export function writeCache(stateDir: string, a: Attachment, ifname: string, ips: readonly string[]): void {
  const result = { cniVersion: '1.0.0', interfaces: [{ name: ifname, sandbox: '/var/run/netns/x' }], ips: ips.map((ip) => ({ address: `${ip}/${ip.includes(':') ? 64 : 24}`, interface: 0 })) };
  writeFileSync(join(stateDir, 'results', `${a.network}-${a.containerId}-${ifname}`), JSON.stringify({ kind: 'cniCacheV1', containerId: a.containerId, networkName: a.network, ifName: ifname, config: '', result }));
}

export function addNftMasq(host: FakeHost, a: Attachment, ifname: string, ip: string): number {
  return host.addNft(nftComment(a.network, ifname, a.containerId), ip);
}

export interface CallOptions {
  readonly netns?: string;
  readonly ifname?: string;
  readonly conf?: Record<string, unknown>;
}

/** Run the plugin in-process against the fake host, as the runtime would call it. */
export function callPlugin(w: FakeWorld, verb: 'DEL' | 'GC', a: Attachment, o: CallOptions = {}): Promise<Outcome> {
  const env: Record<string, string> = { CNI_COMMAND: verb, CNI_CONTAINERID: a.containerId, CNI_IFNAME: o.ifname ?? 'eth0', CNI_NETNS: o.netns ?? '', CNI_PATH: '/opt/cni/bin', PATH: w.path };
  const stdin = JSON.stringify({ cniVersion: verb === 'GC' ? '1.1.0' : '1.0.0', name: a.network, type: 'masq-janitor', stateDir: w.stateDir, logLevel: 'silent', ...o.conf });
  return runPlugin({ env, stdin }, { run: w.host.run, complain: () => {} });
}
