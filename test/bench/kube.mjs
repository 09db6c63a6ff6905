// A nat table as kube-proxy (iptables mode) leaves it on a busy node: the rules that are
// NOT ours and that a DEL must stay flat against. Shapes follow kube-proxy's own output:
// KUBE-SERVICES holds one jump per service ClusterIP, each KUBE-SVC-* picks one of its
// endpoints by probability, each KUBE-SEP-* marks hairpin traffic and DNATs. POSTROUTING
// gets kube-proxy's one jump to KUBE-POSTROUTING, so our jumps share the chain with a
// foreign rule, as on a real node.

import { createHash } from 'node:crypto';

/** kube-proxy's chain suffix: 16 characters of a base32 hash; any stable 16 upper-case characters do here. */
const suffix = (s) => createHash('sha256').update(s).digest('hex').toUpperCase().slice(0, 16);

const BASE_CHAINS = ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-NODEPORTS'];
const BASE_RULES = [
  '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
  '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
  '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
];
/** Rules one service with two endpoints adds: 1 in KUBE-SERVICES, 2 in its SVC chain, 2 in each SEP chain. */
const PER_SERVICE = 7;

/**
 * iptables-restore --noflush input for a nat table of about `rules` foreign rules (never fewer; 0 gives an
 * empty input). Services get ClusterIPs in 10.96.0.0/12 and endpoints in 10.244.0.0/16, away from every
 * address the benchmark gives containers.
 */
export function kubeProxyTable(rules) {
  if (rules <= 0) return '';
  const chains = BASE_CHAINS.map((c) => `:${c} - [0:0]`);
  const body = [...BASE_RULES];
  const services = Math.max(1, Math.ceil((rules - BASE_RULES.length - 1) / PER_SERVICE));
  for (let s = 0; s < services; s++) {
    const name = `ns-${s % 50}/svc-${s}:http`;
    const svc = `KUBE-SVC-${suffix(`svc ${s}`)}`;
    chains.push(`:${svc} - [0:0]`);
    body.push(`-A KUBE-SERVICES -d 10.${96 + (s >> 16)}.${(s >> 8) & 255}.${s & 255}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport 80 -j ${svc}`);
    for (let e = 0; e < 2; e++) {
      const sep = `KUBE-SEP-${suffix(`sep ${s} ${e}`)}`;
      const pod = `10.244.${(s >> 7) & 255}.${((s & 127) << 1) + e}`;
      chains.push(`:${sep} - [0:0]`);
      const pick = e === 0 ? ' -m statistic --mode random --probability 0.50000000000' : '';
      body.push(`-A ${svc} -m comment --comment "${name} -> ${pod}:8080"${pick} -j ${sep}`);
      body.push(`-A ${sep} -s ${pod}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`);
      body.push(`-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${pod}:8080`);
    }
  }
  body.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return ['*nat', ...chains, ...body, 'COMMIT', ''].join('\n');
}

/** How many rules (-A lines) and KUBE-* chains a table text or iptables-save output holds. */
export function kubeCensus(text) {
  let rules = 0;
  let chains = 0;
  for (const line of text.split('\n')) {
    if (/^:KUBE-/.test(line)) chains++;
    else if (/^-A KUBE-/.test(line) || /^-A [A-Z]+ .* -j KUBE-\S+$/.test(line)) rules++;
  }
  return { rules, chains };
}
