import type { Lab } from '../support/lab.js';
import { addWithPorts, connectFromHost, delWithPorts, EchoServer, secondNetwork, withPortmap, type PortMapping } from './support.js';
import { resultIps } from '../support/expect.js';

const PUBLISH: readonly PortMapping[] = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];

export interface HijackOptions {
  readonly janitor: boolean;
  /** A third container (C, no published port) gets A's released IP and serves port 80 there. */
  readonly reuseOldIp: boolean;
  /** Second octet of the second network's 10.x.7.0/24. */
  readonly octet: number;
}

export interface HijackReplies {
  /** What a connection to <host>:8080 got. */
  readonly viaStale: string;
  /** What a connection straight to B's IP:80 got (B is alive). */
  readonly direct: string;
}

/**
 * A (network 1, one-address range) publishes 8080 and answers "A"; it
 * stops, and its DEL comes with CNI_NETNS="" and no portMappings. With
 * `reuseOldIp`, C takes A's address on network 1 and answers "C". B
 * (network 2) publishes 8080 and answers "B". Then the host connects to
 * network 1's gateway address on 8080.
 */
export async function hijackScenario(lab: Lab, opts: HijackOptions): Promise<HijackReplies> {
  const net1 = withPortmap(lab.bridgeList({ janitor: opts.janitor, singleAddress: true }));
  const net2 = secondNetwork(lab, { janitor: opts.janitor, octet: opts.octet });
  const servers: EchoServer[] = [];
  try {
    const a = await lab.container();
    const resultA = await addWithPorts(lab, net1, a, PUBLISH);
    const ipA = resultIps(resultA, 4)[0] as string;
    const serverA = await EchoServer.start(a.ns.name, 80, 'A');
    const gateway = ipA.replace(/\.\d+$/, '.1');
    const before = await connectFromHost(lab, gateway, 8080);
    if (before !== 'A') throw new Error(`setup: host port 8080 should reach A first, got ${before}`);
    await serverA.stop();
    const delA = await delWithPorts(lab, net1, a, 'empty', resultA, undefined);
    if (delA.failure) throw new Error(`DEL of A failed at ${delA.failure.plugin}`);

    if (opts.reuseOldIp) {
      const c = await lab.container();
      const resultC = await addWithPorts(lab, net1, c, undefined);
      if (resultIps(resultC, 4)[0] !== ipA) throw new Error('setup: C did not get A\'s address');
      servers.push(await EchoServer.start(c.ns.name, 80, 'C'));
    }
    const b = await lab.container();
    const resultB = await addWithPorts(lab, net2, b, PUBLISH);
    servers.push(await EchoServer.start(b.ns.name, 80, 'B'));
    const ipB = resultIps(resultB, 4)[0] as string;
    return { viaStale: await connectFromHost(lab, gateway, 8080), direct: await connectFromHost(lab, ipB, 80) };
  } finally {
    for (const s of servers) await s.stop();
  }
}
