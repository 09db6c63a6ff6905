import { describe, expect, it } from 'vitest';
import { canonicalIp, isUnspecified } from '../../src/hostport/ip.js';
import { destinationIp } from '../../src/hostport/ports.js';

describe('canonicalIp', () => {
  it('gives IPv6 one spelling (compressed, lowercase) and leaves IPv4 alone', () => {
    expect(canonicalIp('FD00:88:0:0::2')).toBe('fd00:88::2');
    expect(canonicalIp('fd00:0088:0000::0002')).toBe('fd00:88::2');
    expect(canonicalIp('::ffff:10.0.0.1')).toBe('::ffff:a00:1');
    expect(canonicalIp('10.88.0.2')).toBe('10.88.0.2');
  });

  it('refuses what is not an address', () => {
    for (const s of ['', '10.88.0.2/24', 'fd00::2%eth0', '10.0.0.256', 'example.com', '[fd00::2]']) expect(canonicalIp(s), s).toBeUndefined();
  });

  it('knows unspecified addresses bind everything', () => {
    expect(isUnspecified('0.0.0.0')).toBe(true);
    expect(isUnspecified('::')).toBe(true);
    expect(isUnspecified('0:0::0')).toBe(true);
    expect(isUnspecified('127.0.0.1')).toBe(false);
  });
});

describe('destinationIp', () => {
  it('reads iptables and nft DNAT targets', () => {
    expect(destinationIp('10.77.0.2:80')).toBe('10.77.0.2');
    expect(destinationIp('[fd00:77::2]:80')).toBe('fd00:77::2');
    expect(destinationIp('10.77.0.2')).toBeUndefined();
    expect(destinationIp('fd00::2:80')).toBeUndefined();
  });
});
