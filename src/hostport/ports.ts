/** One published host port, as a DNAT rule serves it. */
export interface HostPort {
  /** `tcp`, `udp`, `sctp`. */
  readonly proto: string;
  readonly port: number;
  /** The host address the mapping is bound to; undefined for every local address. */
  readonly hostIp: string | undefined;
  /** Where the DNAT sends it: `ip:port` (`[ip6]:port` on iptables v6), as the table prints it. */
  readonly destination: string;
}

/** `10.0.0.2:80`, `[fd00::2]:80` -> the IP; undefined if it is neither. */
export function destinationIp(destination: string): string | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:\d+$/.exec(destination) ?? /^([0-9.]+):\d+$/.exec(destination);
  return m?.[1];
}
