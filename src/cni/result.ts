import { isIP } from 'node:net';
import * as z from 'zod/mini';
import { fail, ok, type Result } from './errors.js';
import { issueText } from './zod.js';
import { resultHasIpVersion, type SupportedVersion } from './versions.js';

/**
 * The prevResult shapes of 0.3.x/0.4.0 and 1.x. Only what masq-janitor reads
 * is checked strictly; everything else passes through untouched because ADD
 * must return prevResult as it came.
 */

const Address = z.union([z.cidrv4(), z.cidrv6()], { error: 'not an IP address with a prefix length' });

const Ip = z.looseObject({
  address: Address,
  version: z.optional(z.enum(['4', '6'])),
  gateway: z.optional(z.union([z.ipv4(), z.ipv6()])),
  interface: z.optional(z.int().check(z.nonnegative())),
});

const Interface = z.looseObject({
  name: z.string(),
  mac: z.optional(z.string()),
  sandbox: z.optional(z.string()),
});

const ResultShape = z.looseObject({
  cniVersion: z.optional(z.string()),
  interfaces: z.optional(z.array(Interface)),
  ips: z.optional(z.array(Ip)),
  routes: z.optional(z.array(z.unknown())),
  dns: z.optional(z.unknown()),
});

export interface PrevIp {
  /** Host address without prefix, in the textual form the runtime gave. */
  readonly ip: string;
  readonly prefix: number;
  readonly family: 4 | 6;
  /** Interface name this IP was assigned to, if the result says. */
  readonly ifname?: string;
}

export interface PrevResult {
  /** The object exactly as received, for pass-through. */
  readonly raw: Record<string, unknown>;
  readonly ips: readonly PrevIp[];
}

/** Validate a prevResult for the config's version; errors name the bad field. */
export function parsePrevResult(input: unknown, version: SupportedVersion): Result<PrevResult, string> {
  const parsed = ResultShape.safeParse(input);
  if (!parsed.success) {
    return fail(issueText(parsed.error));
  }
  const r = parsed.data;
  const interfaces = r.interfaces ?? [];
  const ips: PrevIp[] = [];
  for (const [i, entry] of (r.ips ?? []).entries()) {
    const [ip, len] = entry.address.split('/') as [string, string];
    const family = isIP(ip) === 4 ? 4 : 6;
    if (resultHasIpVersion(version) && entry.version !== undefined && entry.version !== String(family)) {
      return fail(`ips[${i}]: version "${entry.version}" does not match address ${entry.address}`);
    }
    if (entry.interface !== undefined && entry.interface >= interfaces.length) {
      return fail(`ips[${i}]: interface index ${entry.interface} out of range`);
    }
    const ifname = entry.interface === undefined ? undefined : interfaces[entry.interface]?.name;
    ips.push({ ip, prefix: Number(len), family, ...(ifname === undefined ? {} : { ifname }) });
  }
  return ok({ raw: input as Record<string, unknown>, ips });
}
