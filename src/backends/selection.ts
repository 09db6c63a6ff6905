import type { Attachment } from '../identity.js';

/**
 * What DEL, GC and sweep differ in: which attachments' state is doomed.
 * Every backend's planner asks only these questions; the answers come from
 * evidence (prevResult, the netns, libcni's cache, IPAM, the runtime's valid
 * list) read after the tables, and are built by the pure functions in
 * records/selections.ts.
 */

/** One interface of one container on one network, as far as a backend can name it. */
export interface InterfaceRef {
  readonly network: string;
  readonly containerId: string;
  /** nft rules name their interface; iptables jumps do not (the chain is per container). */
  readonly ifname?: string;
  /** An iptables jump's source (`10.0.0.2/32`, or an old subnet form); canonical address text. */
  readonly source?: string;
  /** The nft comment was cut at 128 characters: containerId (and maybe ifname) is only a prefix. */
  readonly truncated?: boolean;
  /** nft: the instance hash (`<net hash>-<ifname:id hash>`), whole even when the comment was cut. */
  readonly instance?: string;
  /** nft: the comment's text does not hash to `instance`; only the instance hash itself identifies it. */
  readonly unverified?: boolean;
}

export interface Selection {
  /** Is this interface's state doomed? */
  interfaceGone(ref: InterfaceRef): boolean;
  /** Is every interface of this container on this network gone, so that what they share may go? */
  containerGone(a: Attachment): boolean;
  /** DEL only: an empty chain with this name, entered by nothing we can see, is ours to take. */
  claimsEmptyChain?(chain: string): boolean;
  /**
   * DEL only, per table: bridge will still run its own teardown here (the
   * netns is alive with an address of this family), and bridge up to v1.5
   * fails its whole DEL if the chain is gone by then: delete it and create
   * it again, empty, in the same transaction.
   */
  readonly recreateChains?: boolean;
}

export const NOTHING: Selection = { interfaceGone: () => false, containerGone: () => false };

/** How a plan may delete a chain. */
export interface ChainMode {
  /** Create doomed chains again, empty, after deleting them (see recreateChains). */
  readonly recreate: boolean;
  /**
   * Count uncertain lines as entering every chain they mention. The first
   * attempt lets the kernel answer (a referenced chain fails its `-X`, and
   * with it the transaction); a retry after a refusal is conservative.
   */
  readonly conservative: boolean;
}
