import { NERDCTL_BRIDGE, NERDCTL_BRIDGE_FILE } from './conflists.js';
import { containerdSuite } from './suite.js';

// nerdctl's default network (IPv4 only): bridge + portmap + firewall + tuning.
containerdSuite("containerd + ctr run --cni, nerdctl's default nerdctl-bridge.conflist", {
  label: 'nerdctl',
  fileName: NERDCTL_BRIDGE_FILE,
  list: NERDCTL_BRIDGE,
  families: [4],
  addresses: [/inet 10\.4\.0\.\d+\/24/],
});
