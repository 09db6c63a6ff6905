import { contains, isHost, parseCidr, type Cidr } from '../address.js';
import { chainNames, nftInstancePrefix, type Attachment } from '../identity.js';
import type { InterfaceRef, Selection } from '../backends/selection.js';
import type { RecordedInterface, Records } from './recorded.js';

/**
 * The three answers to "which state is doomed", built from evidence. Pure:
 * the verbs read the evidence, the planners ask these. An iptables jump
 * names its container but not its interface, so it is attributed by its
 * source address; nft rules name the interface.
 */

export interface Me {
  readonly network: string;
  readonly containerId: string;
  readonly ifname: string;
}

/** Does a jump's source cover this address (a host jump equal to it, or an old subnet-form jump containing it)? */
function covers(source: Cidr, ip: Cidr): boolean {
  return isHost(source) ? source.ip === ip.ip : contains(source, ip);
}

const parseAll = (ips: readonly string[]): Cidr[] => ips.flatMap((ip) => parseCidr(ip) ?? []);

export interface DelEvidence {
  /** This interface's addresses from prevResult; undefined without prevResult. */
  readonly prevIps: readonly string[] | undefined;
  /** The container's other interfaces on this network that libcni still records. */
  readonly others: readonly RecordedInterface[];
  /** bridge will run its own teardown in this table after us (netns alive, an address of this family). */
  readonly bridgeTearsDown: boolean;
  /**
   * The netns is still there (whatever its interface looks like, or when it cannot be told). Then an
   * empty chain is not ours to take: a concurrent DEL of the same container (a second runtime, a retry)
   * may have seen the interface, and its bridge fails without the chain.
   */
  readonly netnsAlive?: boolean;
}

/** DEL: exactly this interface; what it shares with the container's other interfaces goes with the last of them. */
export function delSelection(me: Me, ev: DelEvidence): Selection {
  const mine = ev.prevIps === undefined ? undefined : parseAll(ev.prevIps);
  const othersKnown = ev.others.every((o) => o.ips !== undefined);
  const otherIps = parseAll(ev.others.flatMap((o) => o.ips ?? []));
  const instance = nftInstancePrefix(me.network, me.ifname, me.containerId);
  const isMe = (ref: InterfaceRef): boolean => ref.network === me.network && (ref.truncated === true || ref.containerId === me.containerId);
  return {
    interfaceGone(ref) {
      if (!isMe(ref)) return false;
      // nft: the instance hash is sha512 of this interface's raw name and ID: it is the proof (the text may be cut or stripped).
      if (ref.instance !== undefined) return ref.instance === instance;
      const source = ref.source === undefined ? undefined : parseCidr(ref.source);
      if (mine !== undefined && mine.length > 0) return source !== undefined && mine.some((ip) => covers(source, ip));
      // No prevResult: ours is whatever no other live interface of the container can claim.
      if (ev.others.length === 0) return true;
      if (!othersKnown || source === undefined) return false;
      return !otherIps.some((ip) => covers(source, ip));
    },
    containerGone: (a) => a.network === me.network && a.containerId === me.containerId && ev.others.length === 0,
    claimsEmptyChain: (chain) => ev.others.length === 0 && ev.netnsAlive !== true && chainNames(me).includes(chain),
    recreateChains: ev.bridgeTearsDown,
  };
}

export interface ValidAttachment {
  readonly containerId: string;
  readonly ifname: string;
}

/**
 * GC: what the runtime does not list as valid. An iptables jump of a
 * container that is still valid on another interface goes only if libcni's
 * cache says its address is an invalid interface's and no valid one's.
 */
export function gcSelection(network: string, valid: readonly ValidAttachment[], records: Records | undefined): Selection {
  const validIds = new Set(valid.map((a) => a.containerId));
  const validPairs = new Set(valid.map((a) => `${a.containerId}\u0000${a.ifname}`));
  const validInstances = new Set(valid.map((a) => nftInstancePrefix(network, a.ifname, a.containerId)));
  return {
    interfaceGone(ref) {
      if (ref.network !== network) return false;
      // A comment whose text does not hash to its instance names no identity GC could list: it stays.
      if (ref.instance !== undefined) return ref.unverified !== true && !validInstances.has(ref.instance);
      if (!validIds.has(ref.containerId)) return true;
      const source = ref.source === undefined ? undefined : parseCidr(ref.source);
      if (source === undefined || records === undefined || records.doubtful(network, ref.containerId)) return false;
      const ifaces = records.interfaces(network, ref.containerId);
      const isValid = (i: RecordedInterface): boolean => i.ifname === undefined || validPairs.has(`${ref.containerId}\u0000${i.ifname}`);
      const claimed = (list: readonly RecordedInterface[]): boolean => list.some((i) => i.ips === undefined || parseAll(i.ips).some((ip) => covers(source, ip)));
      return claimed(ifaces.filter((i) => !isValid(i))) && !claimed(ifaces.filter(isValid));
    },
    containerGone: (a) => a.network === network && !validIds.has(a.containerId),
  };
}

/** Sweep: what neither libcni's cache nor host-local records, per interface where the records can tell. */
export function sweepSelection(records: Records, inScope: (network: string) => boolean): Selection {
  const recorded = (a: Attachment): boolean => records.has(a.network, a.containerId);
  // nft rules name their interface by hash: the instance hashes of every recorded interface, built on first use.
  let instances: Set<string> | undefined;
  const recordedInstance = (instance: string): boolean => {
    if (instances === undefined) {
      instances = new Set();
      for (const net of records.networks) for (const [id, ifname] of records.pairs(net)) if (ifname !== undefined) instances.add(nftInstancePrefix(net, ifname, id));
    }
    // The instance hash starts with the network's: membership is per network too.
    return instances.has(instance);
  };
  return {
    interfaceGone(ref) {
      if (!inScope(ref.network)) return false;
      if (ref.instance !== undefined || ref.ifname !== undefined) {
        // Never by text we cannot verify: the rule stays until a DEL that knows its identity.
        if (ref.unverified === true) return false;
        if (ref.instance !== undefined && recordedInstance(ref.instance)) return false;
        if (ref.truncated === true) return !records.hasPrefix(ref.network, ref.containerId);
        if (records.doubtful(ref.network, ref.containerId)) return false;
        // A record that does not name its interface (old host-local) keeps every interface of the container.
        return !records.interfaces(ref.network, ref.containerId).some((i) => i.ifname === undefined || (ref.instance === undefined && i.ifname === ref.ifname));
      }
      if (!recorded(ref)) return true;
      if (records.doubtful(ref.network, ref.containerId)) return false;
      const ifaces = records.interfaces(ref.network, ref.containerId);
      const source = ref.source === undefined ? undefined : parseCidr(ref.source);
      // A recorded container keeps a jump unless every record of it names its addresses, some of them in
      // this family (host-local records one file per address: a v4 record says nothing of v6), and none is this one.
      if (source === undefined || ifaces.some((i) => i.ips === undefined)) return false;
      const known = parseAll(ifaces.flatMap((i) => i.ips ?? [])).filter((ip) => ip.family === source.family);
      return known.length > 0 && !known.some((ip) => covers(source, ip));
    },
    containerGone: (a) => inScope(a.network) && !recorded(a),
  };
}
