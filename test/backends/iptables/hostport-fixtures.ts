/**
 * Real iptables-save -t nat output (iptables 1.8.9 nf_tables, Debian bookworm) after the Debian
 * bridge + portmap (v1.1.1) ADD of network "hpnet", container "default-c1", dual-stack, with
 * portMappings 8080->80/tcp, 8443->443/tcp, 5353->53/udp and 9090->90/tcp on hostIP 127.0.0.1,
 * captured inside a throwaway netns. Comments and counters as the tool printed them.
 */
export const PORTMAP_V4 = String.raw`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-c0428b25aba41ef1591ff - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-c0428b25aba41ef1591ff3bd - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.77.0.2/32 -m comment --comment "name: \"hpnet\" id: \"default-c1\"" -j CNI-c0428b25aba41ef1591ff3bd
-A CNI-DN-c0428b25aba41ef1591ff -s 10.77.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.77.0.2:80
-A CNI-DN-c0428b25aba41ef1591ff -s 10.77.0.0/24 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -s 127.0.0.1/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -p tcp -m tcp --dport 8443 -j DNAT --to-destination 10.77.0.2:443
-A CNI-DN-c0428b25aba41ef1591ff -s 10.77.0.0/24 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -s 127.0.0.1/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -p udp -m udp --dport 5353 -j DNAT --to-destination 10.77.0.2:53
-A CNI-DN-c0428b25aba41ef1591ff -s 10.77.0.0/24 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.77.0.2:90
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"hpnet\" id: \"default-c1\"" -m multiport --dports 8080,8443,9090 -j CNI-DN-c0428b25aba41ef1591ff
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"hpnet\" id: \"default-c1\"" -m multiport --dports 5353 -j CNI-DN-c0428b25aba41ef1591ff
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A CNI-c0428b25aba41ef1591ff3bd -d 10.77.0.0/24 -m comment --comment "name: \"hpnet\" id: \"default-c1\"" -j ACCEPT
-A CNI-c0428b25aba41ef1591ff3bd ! -d 224.0.0.0/4 -m comment --comment "name: \"hpnet\" id: \"default-c1\"" -j MASQUERADE
COMMIT
`;

export const PORTMAP_V6 = String.raw`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-c0428b25aba41ef1591ff - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-c0428b25aba41ef1591ff3bd - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s fd00:77::2/128 -m comment --comment "name: \"hpnet\" id: \"default-c1\"" -j CNI-c0428b25aba41ef1591ff3bd
-A CNI-DN-c0428b25aba41ef1591ff -s fd00:77::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:77::2]:80
-A CNI-DN-c0428b25aba41ef1591ff -s fd00:77::/64 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -p tcp -m tcp --dport 8443 -j DNAT --to-destination [fd00:77::2]:443
-A CNI-DN-c0428b25aba41ef1591ff -s fd00:77::/64 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-c0428b25aba41ef1591ff -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00:77::2]:53
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"hpnet\" id: \"default-c1\"" -m multiport --dports 8080,8443,9090 -j CNI-DN-c0428b25aba41ef1591ff
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"hpnet\" id: \"default-c1\"" -m multiport --dports 5353 -j CNI-DN-c0428b25aba41ef1591ff
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A CNI-c0428b25aba41ef1591ff3bd -d fd00:77::/64 -m comment --comment "name: \"hpnet\" id: \"default-c1\"" -j ACCEPT
-A CNI-c0428b25aba41ef1591ff3bd ! -d ff00::/8 -m comment --comment "name: \"hpnet\" id: \"default-c1\"" -j MASQUERADE
COMMIT
`;
