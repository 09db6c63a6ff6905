import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Conflist } from '../../support/conflist.js';
import { REPO_ROOT } from '../../support/guard.js';

function isConflist(v: unknown): v is Conflist {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.cniVersion === 'string' && typeof o.name === 'string' && Array.isArray(o.plugins) && o.plugins.every((p) => typeof p === 'object' && p !== null && typeof (p as Record<string, unknown>).type === 'string');
}

/** nerdctl's default network as it ships: /etc/cni/net.d/nerdctl-bridge.conflist (bridge nerdctl0, IPv4 only). */
export const NERDCTL_BRIDGE: Conflist = (() => {
  const file = join(REPO_ROOT, 'examples/original/nerdctl-bridge.conflist');
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (!isConflist(parsed)) throw new Error(`${file} is not a conflist`);
  return parsed;
})();
export const NERDCTL_BRIDGE_FILE = 'nerdctl-bridge.conflist';

/** containerd's script/setup/install-cni: 10-containerd-net.conflist (bridge cni0, dual-stack). */
export const CONTAINERD_NET: Conflist = {
  cniVersion: '1.0.0',
  name: 'containerd-net',
  plugins: [
    {
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipMasq: true,
      promiscMode: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.88.0.0/16' }], [{ subnet: '2001:4860:4860::/64' }]],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
      },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};
export const CONTAINERD_NET_FILE = '10-containerd-net.conflist';

/** The product's one documented install step: append the janitor as the last plugin. */
export function withJanitor(list: Conflist): Conflist {
  return { ...list, plugins: [...list.plugins, { type: 'masq-janitor' }] };
}
