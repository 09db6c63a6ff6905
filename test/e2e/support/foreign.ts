import type { Netns } from '../../support/netns.js';
import { restore, type Family, type Toolchain } from '../../support/xtables.js';
import { masqChain } from './iptables.js';

/** Another network's CNI state, in the exact shape bridge writes it. */
function foreignCniRules(family: Family, network: string, containerId: string, hostIp: string, subnet: string): { declare: string; rules: string[] } {
  const chain = masqChain(network, containerId);
  const comment = `-m comment --comment "name: \\"${network}\\" id: \\"${containerId}\\""`;
  const multicast = family === 4 ? '224.0.0.0/4' : 'ff00::/8';
  return {
    declare: `:${chain} - [0:0]`,
    rules: [`-A POSTROUTING -s ${hostIp} ${comment} -j ${chain}`, `-A ${chain} -d ${subnet} ${comment} -j ACCEPT`, `-A ${chain} ! -d ${multicast} ${comment} -j MASQUERADE`],
  };
}

export const FOREIGN_NETWORK = 'othernet';

/**
 * What a real host already has before our containers: kube-proxy and Docker
 * chains, a user's own MASQUERADE, and CNI chains of another network (one of
 * them for a container ID this lab also uses on its own network).
 */
export async function installForeignRules(host: Netns, tc: Toolchain, sharedId: string, families: readonly Family[]): Promise<void> {
  for (const family of families) {
    const v4 = family === 4;
    const a = foreignCniRules(family, FOREIGN_NETWORK, sharedId, v4 ? '10.250.0.5/32' : 'fd77:250::5/128', v4 ? '10.250.0.0/24' : 'fd77:250::/64');
    const b = foreignCniRules(family, FOREIGN_NETWORK, 'default-otherctr', v4 ? '10.250.0.6/32' : 'fd77:250::6/128', v4 ? '10.250.0.0/24' : 'fd77:250::/64');
    const text = [
      '*nat',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-MARK-MASQ - [0:0]',
      ':DOCKER - [0:0]',
      a.declare,
      b.declare,
      '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
      '-A OUTPUT -j KUBE-SERVICES',
      `-A KUBE-SERVICES -d ${v4 ? '10.96.0.1/32' : 'fd96::1/128'} -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ`,
      '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
      '-A DOCKER -i docker0 -j RETURN',
      `-A POSTROUTING -s ${v4 ? '192.168.77.0/24' : 'fd77:77::/64'} -j MASQUERADE`,
      ...a.rules,
      ...b.rules,
      'COMMIT',
      '',
    ].join('\n');
    await restore(host, tc, family, text);
  }
}
