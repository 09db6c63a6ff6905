import { canonicalIp } from '../address.js';

/** The one canonical spelling lives in address.ts; re-exported for the hostport code. */
export { canonicalIp };

/** An unspecified host IP (`0.0.0.0`, `::`) binds every local address, like no host IP at all. */
export function isUnspecified(ip: string): boolean {
  const c = canonicalIp(ip);
  return c === '0.0.0.0' || c === '::';
}
