import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp, contains, isHost, parseCidr } from '../src/address.js';

describe('canonicalIp', () => {
  it('gives one spelling per address', () => {
    expect(canonicalIp('fd00:0::5')).toBe('fd00::5');
    expect(canonicalIp('FD00:0000:0000::0005')).toBe('fd00::5');
    expect(canonicalIp('fd00::5')).toBe('fd00::5');
    expect(canonicalIp('::ffff:10.0.0.1')).toBe(canonicalIp('::ffff:a00:1'));
    expect(canonicalIp('10.0.0.2')).toBe('10.0.0.2');
  });

  it.each(['', '10.0.0', '10.0.0.256', 'fd00:::5', 'x', '10.0.0.2/32', 'fd00::5%eth0', ' 10.0.0.2'])('refuses %j', (s) => {
    expect(canonicalIp(s)).toBeUndefined();
  });

  it('is idempotent and keeps the family', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const c = canonicalIp(ip);
        expect(c).toBeDefined();
        expect(canonicalIp(c as string)).toBe(c);
        expect((c as string).includes(':')).toBe(ip.includes(':'));
      }),
    );
  });
});

describe('parseCidr', () => {
  it('reads host routes, bare addresses and subnets', () => {
    expect(parseCidr('10.0.0.2/32')).toEqual({ ip: '10.0.0.2', prefix: 32, family: 4 });
    expect(parseCidr('10.0.0.2')).toEqual({ ip: '10.0.0.2', prefix: 32, family: 4 });
    expect(parseCidr('fd00:0::5/128')).toEqual({ ip: 'fd00::5', prefix: 128, family: 6 });
    expect(parseCidr('fd00::5')).toEqual({ ip: 'fd00::5', prefix: 128, family: 6 });
    expect(parseCidr('10.4.0.0/24')).toEqual({ ip: '10.4.0.0', prefix: 24, family: 4 });
  });

  it.each(['10.0.0.2/33', 'fd00::/129', '10.0.0.2/-1', '10.0.0.2/', '10.0.0.2/3/4', '10.0.0.2/1e1', 'x/8'])('refuses %j', (s) => {
    expect(parseCidr(s)).toBeUndefined();
  });
});

describe('contains / isHost', () => {
  const c = (s: string) => parseCidr(s) as NonNullable<ReturnType<typeof parseCidr>>;
  it('an old subnet-form jump covers every address of its subnet', () => {
    expect(contains(c('10.4.0.0/24'), c('10.4.0.9'))).toBe(true);
    expect(contains(c('10.4.0.0/24'), c('10.4.1.9'))).toBe(false);
    expect(contains(c('fd00::/64'), c('fd00:0::5'))).toBe(true);
    expect(contains(c('fd00::/64'), c('fd00:0:0:1::5'))).toBe(false);
    expect(contains(c('0.0.0.0/0'), c('1.2.3.4'))).toBe(true);
    expect(contains(c('10.4.0.0/24'), c('fd00::5'))).toBe(false);
    // A narrower net never contains a wider one.
    expect(contains(c('10.4.0.2/32'), c('10.4.0.0/24'))).toBe(false);
  });

  it('isHost', () => {
    expect(isHost(c('10.0.0.2/32'))).toBe(true);
    expect(isHost(c('fd00::2'))).toBe(true);
    expect(isHost(c('10.0.0.0/24'))).toBe(false);
  });

  it('a host is contained exactly by the nets that agree with it on their prefix bits', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (ip, prefix) => {
        const host = c(ip);
        const net = c(`${ip}/${prefix}`);
        expect(contains(net, host)).toBe(true);
        expect(contains(host, host)).toBe(true);
      }),
    );
  });
});
