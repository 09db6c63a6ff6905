import { isIP } from 'node:net';

/**
 * One spelling per address, so an IP from prevResult meets the one nft or
 * iptables prints: IPv6 in its compressed lowercase form (the WHATWG URL
 * parser does exactly that), IPv4 as is. Undefined for anything else.
 */
export function canonicalIp(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family !== 6) return undefined;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** An unspecified host IP (`0.0.0.0`, `::`) binds every local address, like no host IP at all. */
export function isUnspecified(ip: string): boolean {
  const c = canonicalIp(ip);
  return c === '0.0.0.0' || c === '::';
}
