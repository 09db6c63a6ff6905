import { describe, expect, it } from 'vitest';
import { parsePrevResult } from '../../src/cni/result.js';

const v1 = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'nerdctl0', mac: 'aa' }, { name: 'veth1', mac: 'bb' }, { name: 'eth0', mac: 'cc', sandbox: '/var/run/netns/c1' }],
  ips: [{ address: '10.4.0.2/24', gateway: '10.4.0.1', interface: 2 }, { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2 }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};
const v04 = { ...v1, cniVersion: '0.4.0', ips: [{ version: '4', address: '10.4.0.2/24', gateway: '10.4.0.1', interface: 2 }] };

describe('parsePrevResult', () => {
  it('reads 1.x results', () => {
    const r = parsePrevResult(v1, '1.0.0');
    expect(r.ok && r.value.ips).toEqual([
      { ip: '10.4.0.2', prefix: 24, family: 4, ifname: 'eth0' },
      { ip: 'fd00::2', prefix: 64, family: 6, ifname: 'eth0' },
    ]);
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'] as const)('reads %s results with ip versions', (v) => {
    const r = parsePrevResult({ ...v04, cniVersion: v }, v);
    expect(r.ok && r.value.ips).toEqual([{ ip: '10.4.0.2', prefix: 24, family: 4, ifname: 'eth0' }]);
  });

  it('rejects a version that contradicts the address', () => {
    const r = parsePrevResult({ ...v04, ips: [{ version: '6', address: '10.4.0.2/24' }] }, '0.4.0');
    expect(r.ok).toBe(false);
  });

  it('rejects an out-of-range interface index', () => {
    expect(parsePrevResult({ ips: [{ address: '10.0.0.1/8', interface: 7 }] }, '1.0.0').ok).toBe(false);
  });

  it('keeps unknown keys for pass-through', () => {
    const r = parsePrevResult({ ...v1, extra: { x: 1 } }, '1.0.0');
    expect(r.ok && r.value.raw).toHaveProperty('extra');
  });

  it.each(['10.0.0.1', '10.0.0.1/33', 'fd00::1/129', '10.0.0.01/8', 'fe80::1%eth0/64', '10.0.0.1/8/8', '10.0.0.1/-1', '10.0.0.1/ 8', 'x/8'])('rejects address %j', (a) => {
    expect(parsePrevResult({ ips: [{ address: a }] }, '1.0.0').ok).toBe(false);
  });

  it.each(['10.0.0.1/32', '::ffff:10.0.0.1/128', 'fd00::1/128', '0.0.0.0/0'])('accepts address %j', (a) => {
    expect(parsePrevResult({ ips: [{ address: a }] }, '1.0.0').ok).toBe(true);
  });
});
