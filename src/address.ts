import { isIP } from 'node:net';

/**
 * One spelling per address, so that prevResult's text, libcni's cache and
 * what iptables prints compare equal (`fd00:0::5` and `fd00::5`).
 */
export function canonicalIp(ip: string): string | undefined {
  const v = isIP(ip);
  if (v === 4) return ip;
  if (v !== 6) return undefined;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

export interface Cidr {
  readonly ip: string;
  readonly prefix: number;
  readonly family: 4 | 6;
}

/** `10.0.0.2/32`, `fd00::2/128`, or a bare address (a host route). */
export function parseCidr(text: string): Cidr | undefined {
  const [ip = '', len, ...rest] = text.split('/');
  if (rest.length > 0) return undefined;
  const canon = canonicalIp(ip);
  if (canon === undefined) return undefined;
  const family = isIP(canon) === 4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { ip: canon, prefix, family };
}

function bits(c: Cidr): bigint {
  if (c.family === 4) return c.ip.split('.').reduce((n, o) => (n << 8n) | BigInt(o), 0n);
  const [head = '', tail = ''] = c.ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = c.ip.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = c.ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Is `ip` inside `net`? (An old subnet-form jump `-s 10.4.0.0/24` covers every address of its subnet.) */
export function contains(net: Cidr, ip: Cidr): boolean {
  if (net.family !== ip.family || net.prefix > ip.prefix) return false;
  const width = BigInt(net.family === 4 ? 32 : 128);
  const shift = width - BigInt(net.prefix);
  return bits(net) >> shift === bits(ip) >> shift;
}

/** Is this CIDR one address (`/32`, `/128`)? */
export const isHost = (c: Cidr): boolean => c.prefix === (c.family === 4 ? 32 : 128);

/** The network a CIDR lies in, as iptables prints it (`10.4.0.2/24` -> `10.4.0.0/24`). */
export function networkOf(c: Cidr): string {
  const width = c.family === 4 ? 32 : 128;
  const shift = BigInt(width - c.prefix);
  const n = (bits(c) >> shift) << shift;
  if (c.family === 4) return `${[24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.')}/${c.prefix}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${canonicalIp(groups.join(':')) ?? groups.join(':')}/${c.prefix}`;
}
