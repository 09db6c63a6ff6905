import { CONTAINERD_NET, CONTAINERD_NET_FILE } from './conflists.js';
import { containerdSuite } from './suite.js';

// containerd's install-cni default (dual-stack): bridge + portmap, masquerading in iptables and ip6tables.
containerdSuite("containerd + ctr run --cni, containerd's dual-stack 10-containerd-net.conflist", {
  label: 'ctrdnet',
  fileName: CONTAINERD_NET_FILE,
  list: CONTAINERD_NET,
  families: [4, 6],
  addresses: [/inet 10\.88\.\d+\.\d+\/16/, /inet6 2001:4860:4860::[0-9a-f:]+\/64/],
});
