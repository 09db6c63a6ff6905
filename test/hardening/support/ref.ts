import { createHash } from 'node:crypto';

/**
 * Independent statements of what upstream bridge/ptp create and what the
 * janitor may touch, written from the upstream formats (pkg/utils,
 * ipmasq_*_linux.go), not imported from src/: a test that reused the
 * planner's own helpers could not catch the planner being wrong.
 */

export const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
/** CNI names and container IDs (libcni pkg/utils). */
export const CNI_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const sha512 = (s: string): string => createHash('sha512').update(s).digest('hex');

/** `CNI-` + 24 hex of sha512(network + containerID), and the 25-hex form of plugins < v0.7. */
export function chainsOf(network: string, containerId: string): [string, string] {
  const h = sha512(network + containerId);
  return [`CNI-${h.slice(0, 24)}`, `CNI-${h.slice(0, 25)}`];
}

export const chainOf = (network: string, containerId: string): string => chainsOf(network, containerId)[0];

/** `--comment` argument exactly as iptables-save prints bridge's `name: %q id: %q`. */
export function savedComment(network: string, containerId: string): string {
  return `--comment "name: \\"${network}\\" id: \\"${containerId}\\""`;
}

/** The rules bridge writes for one address: POSTROUTING jump, ACCEPT to the subnet, MASQUERADE. */
export function bridgeState(family: 4 | 6, network: string, containerId: string, ip: string, subnet: string): { declare: string; jump: string; rules: string[] } {
  const chain = chainOf(network, containerId);
  const c = savedComment(network, containerId);
  const host = family === 4 ? `${ip}/32` : `${ip}/128`;
  const mcast = family === 4 ? '224.0.0.0/4' : 'ff00::/8';
  return {
    declare: `:${chain} - [0:0]`,
    jump: `-A POSTROUTING -s ${host} -m comment ${c} -j ${chain}`,
    rules: [`-A ${chain} -d ${subnet} -m comment ${c} -j ACCEPT`, `-A ${chain} ! -d ${mcast} -m comment ${c} -j MASQUERADE`],
  };
}

/** nftables backend (plugins >= v1.6): comment of one instance, cut to 128 like knftables. */
export function nftComment(network: string, ifname: string, containerId: string): string {
  const strip = (s: string): string => s.replaceAll('"', '');
  const full = `${nftPrefix(network, ifname, containerId)}, net: ${strip(network)}, if: ${strip(ifname)}, id: ${strip(containerId)}`;
  return full.slice(0, 128);
}

export function nftPrefix(network: string, ifname: string, containerId: string): string {
  return `${sha512(network).slice(0, 16)}-${sha512(`${ifname}:${containerId}`).slice(0, 16)}`;
}

/** Split a rule line the way iptables-restore does (quotes group, backslash escapes inside quotes). */
export function tokens(line: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let inTok = false;
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (q) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') {
      q = true;
      inTok = true;
    } else if (c === ' ' || c === '\t') {
      if (inTok) out.push(cur);
      cur = '';
      inTok = false;
    } else {
      cur += c;
      inTok = true;
    }
  }
  if (q) return undefined;
  if (inTok) out.push(cur);
  return out;
}

/**
 * The whole restore grammar the planners may emit:
 *   *nat / :CNI-<24|25 hex> - [0:0] / -D <chain> <saved rule> / -X CNI-<hex> / COMMIT
 * Returns the problems found, given which chains and which saved lines (`-A ...`) the case allows.
 */
export function restoreProblems(input: string, allowedChains: ReadonlySet<string>, allowedLines: ReadonlySet<string>, ownComment?: string): string[] {
  const problems: string[] = [];
  if (!input.endsWith('\n')) problems.push('restore input does not end with a newline');
  const lines = input.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines[0] !== '*nat') problems.push(`first line ${JSON.stringify(lines[0])} is not *nat`);
  if (lines.at(-1) !== 'COMMIT') problems.push(`last line ${JSON.stringify(lines.at(-1))} is not COMMIT`);
  if (lines.filter((l) => l === 'COMMIT').length !== 1 || lines.filter((l) => l.startsWith('*')).length !== 1) problems.push('not exactly one *nat ... COMMIT transaction');
  for (const l of lines.slice(1, -1)) {
    let m: RegExpExecArray | null;
    if ((m = /^:(CNI-[0-9a-f]{24,25}) - \[0:0\]$/.exec(l))) {
      if (!allowedChains.has(m[1] as string)) problems.push(`declares a chain that is not the case's own: ${l}`);
    } else if ((m = /^-[XN] (CNI-[0-9a-f]{24,25})$/.exec(l))) {
      if (!allowedChains.has(m[1] as string)) problems.push(`deletes or creates a chain that is not the case's own: ${l}`);
    } else if (l.startsWith('-D ')) {
      // A listed rule by its exact text, or (DEL's fast path, planned from prevResult without reading) a rule
      // spec that carries the case's own comment in or into the case's own chain: -D matches by meaning.
      const t = tokens(`-A ${l.slice(3)}`) ?? [];
      const comment = t[t.indexOf('--comment') + 1];
      const target = t[t.indexOf('-j') + 1];
      const own = ownComment !== undefined && t.indexOf('--comment') > 0 && comment === ownComment && (allowedChains.has(t[1] ?? '') || allowedChains.has(target ?? ''));
      if (!allowedLines.has(`-A ${l.slice(3)}`) && !own) problems.push(`deletes a rule that is not one of the case's own listed rules: ${JSON.stringify(l)}`);
    } else {
      problems.push(`line outside the planner grammar: ${JSON.stringify(l)}`);
    }
  }
  return problems;
}

/** `delete rule inet cni_plugins_masquerade masq_checks handle <int>` lines only, each an allowed handle. */
export function nftProblems(input: string, allowedHandles: ReadonlySet<number>): string[] {
  const problems: string[] = [];
  const lines = input.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const l of lines) {
    const m = /^delete rule inet cni_plugins_masquerade masq_checks handle (\d+)$/.exec(l);
    if (!m) problems.push(`nft line outside the grammar: ${JSON.stringify(l)}`);
    else if (!allowedHandles.has(Number(m[1]))) problems.push(`nft deletes handle ${m[1]}, which is not the case's own`);
  }
  return problems;
}
