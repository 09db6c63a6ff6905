import { converge, type Attempt, type Outcome } from '../backends/backend.js';
import { planAssumed, type IptablesPlan } from '../backends/iptables/plan.js';
import { iptablesBackend, type Xtables } from '../backends/iptables/run.js';
import { delVariants } from '../backends/iptables/variants.js';
import { nftBackend } from '../backends/nft/run.js';
import { nftHostportBackend } from '../backends/nft/hostport-run.js';
import { coalescingNftLists } from '../backends/nft/listings.js';
import type { Selection } from '../backends/selection.js';
import { Code, cniError } from '../cni/errors.js';
import { parsePrevResult, type PrevIp } from '../cni/result.js';
import type { JanitorError } from '../errors.js';
import { bridgeWillTearDown, inspectNetns, netnsAlive, type NetnsState } from '../records/netns.js';
import { cachedInterfaces, type RecordedInterface } from '../records/recorded.js';
import { delSelection, type Me } from '../records/selections.js';
import { NONE, type Reply, type VerbContext } from './context.js';

/**
 * DEL runs before bridge (plugins are deleted in reverse order) and removes
 * this interface's masquerade state whatever the netns looks like. This
 * file only gathers evidence and runs each table's transaction; what goes
 * is decided by the planners from records/selections.ts's answer.
 *
 * Policy: libcni stops the whole DEL chain at the first plugin error, and a
 * stopped chain means bridge never releases the IP. So cleanup problems are
 * logged and DEL succeeds, unless the config says `"strict": true`.
 */
export async function del(ctx: VerbContext): Promise<Reply> {
  const { env, conf, run, log } = ctx;
  if (env.identityProblem !== undefined) {
    log.warn({ containerId: env.containerId, network: conf.name, problem: env.identityProblem }, 'identity not usable: nothing to remove');
    return NONE;
  }
  const me: Me = { network: conf.name, containerId: env.containerId, ifname: env.ifname };

  // prevResult is a hint (the fast path, this interface's addresses), never a need: nerdctl's pre-emptive DEL has none.
  let ips: readonly PrevIp[] | undefined;
  if (conf.prevResult !== undefined && conf.prevResult !== null) {
    const prev = parsePrevResult(conf.prevResult, conf.cniVersion);
    if (prev.ok) ips = prev.value.ips.filter((i) => i.ifname === undefined || i.ifname === env.ifname);
    else log.warn({ error: prev.error }, 'ignoring invalid prevResult');
  }

  // Evidence, read once per attempt round (round 0: the fast path's), after that round's first table read.
  const memo = <T>(read: () => Promise<T>) => {
    const rounds = new Map<number, Promise<T>>();
    let latest: Promise<T> | undefined;
    const at = (n: number): Promise<T> => {
      let r = rounds.get(n);
      if (!r) rounds.set(n, (r = read()));
      latest = r;
      return r;
    };
    return { at, latest: () => latest };
  };
  // A name that is not valid UTF-8 cannot be passed to `ip` exactly: then we cannot tell, and "unknown" keeps bridge's chain.
  const netns = memo(async (): Promise<NetnsState> => (env.ifnameNotText === true && env.netns !== '' ? { kind: 'unknown' } : inspectNetns(run, env.netns, env.ifname)));
  // The netns check is one process, shared by the tables of a round (this container's netns only ever goes
  // from alive to gone); the cache is read again after every table read.
  let lastOthers: RecordedInterface[] = [];
  const othersNow = (): RecordedInterface[] => (lastOthers = cachedInterfaces(conf.settings.stateDir, me.network, me.containerId).filter((i) => i.ifname !== me.ifname));
  const hostports = conf.settings.hostports;
  const selectionFor = (family: 4 | 6, bridgeTable: boolean) => async (attempt: Pick<Attempt, 'n'>): Promise<Selection> => {
    const state = await netns.at(attempt.n);
    return {
      ...delSelection(me, {
        prevIps: ips?.filter((i) => i.family === family).map((i) => `${i.ip}/${i.prefix}`),
        others: othersNow(),
        // Bridge only ever tears down in the iptables on PATH, and only for families it finds addresses of.
        bridgeTearsDown: bridgeTable && bridgeWillTearDown(state, family),
        netnsAlive: netnsAlive(state),
      }),
      hostports,
    };
  };

  // A family prevResult gives this interface no address of holds nothing of this interface's: bridge made
  // its jumps, and portmap its DNAT rules, for the addresses it was given. sweep covers anything older.
  // (A prevResult that gives this interface no address at all says nothing: both are looked at, as without it.)
  const families = ([4, 6] as const).filter((f) => ips === undefined || ips.length === 0 || ips.some((i) => i.family === f));
  const tables = families.flatMap((f) => delVariants(f, ctx.path));
  const wait = conf.settings.lockWait;
  // iptables first: its restore is a DEL's longest process. The nft listings wait for the next turn of the
  // event loop, so they are spawned after it (the fast path reaches its spawn in microtasks) and run beside it.
  const iptablesRuns = tables.map(async (xt: Xtables) => {
    const evidence = selectionFor(xt.family, xt.variant === 'default');
    const prevIps = ips?.filter((i) => i.family === xt.family).map((i) => `${i.ip}/${i.prefix}`) ?? [];
    // One process instead of two in the case this product exists for: a leak with prevResult in hand.
    // portmap's state cannot be assumed (the runtime passes no mappings): the fast path also declares and
    // deletes this attachment's CNI-DN-/CNI-SN- chains, so a live entry rule into one makes the kernel refuse,
    // and the read path (which lists CNI-HOSTPORT-DNAT) plans both.
    const speculate = prevIps.length > 0;
    const round0 = speculate ? await evidence({ n: 0 }) : undefined;
    const speculative: IptablesPlan | undefined = round0 === undefined ? undefined : planAssumed(me, prevIps, xt.family, round0, { recreate: round0.recreateChains === true, conservative: false });
    return converge(iptablesBackend(run, xt, { kind: 'attachment', attachment: me, hostports }, wait), evidence, { firstWhole: false, ...(speculative ? { speculative } : {}) });
  });
  // The three nft listings of a round go to one nft process.
  const nftRun = coalescingNftLists(run);
  const afterIptables = <T>(start: () => Promise<T>): Promise<T> => new Promise<void>((go) => setImmediate(go)).then(start);
  // portmap's nft tables: this container's rules, restricted to this interface's IPs when prevResult named them.
  const hostportIps = ips?.map((i) => i.ip);
  const nftHostports = hostports
    ? (['ip', 'ip6'] as const).map((family) =>
        afterIptables(() => converge(nftHostportBackend(nftRun, family, { kind: 'del', containerId: me.containerId, ips: hostportIps }), async () => ({ ...delSelection(me, { prevIps: undefined, others: othersNow(), bridgeTearsDown: false }), hostports }), { firstWhole: true })),
      )
    : [];
  const [nft, ...results] = await Promise.all([
    afterIptables(() => converge(nftBackend(nftRun, [me.network]), async () => delSelection(me, { prevIps: undefined, others: othersNow(), bridgeTearsDown: false }), { firstWhole: true })),
    ...nftHostports,
    ...iptablesRuns,
  ]);

  const reports: Outcome<unknown>[] = [];
  const errors: JanitorError[] = [];
  for (const r of [nft, ...results]) (r.ok ? reports.push(r.value) : errors.push(r.error));
  const seen = (await netns.latest()) ?? { kind: 'not looked at' };
  const netnsState = seen.kind === 'iface-present' ? `iface-present (IPv${[...seen.families].join(', IPv') || ' none'})` : seen.kind;
  const fields = {
    containerId: env.containerId,
    network: conf.name,
    ifname: env.ifname,
    netns: env.netns,
    netnsState,
    otherInterfaces: lastOthers.length,
    reports: reports.map((r) => ({ table: r.where, ...r.removed, attempts: r.attempts, ...(r.skipped ? { skipped: r.skipped } : {}) })),
  };
  if (errors.length === 0) {
    const removed = reports.reduce((n, r) => n + r.removed.jumps + r.removed.chains + r.removed.rules, 0);
    log.info(fields, removed > 0 ? 'removed masquerade state' : 'nothing to remove');
    return NONE;
  }
  const message = errors.map((e) => e.message).join('; ');
  if (!conf.settings.strict) {
    log.error({ ...fields, errors: message }, 'masquerade cleanup failed; DEL continues so the runtime can release the IP');
    return NONE;
  }
  const code = errors.some((e) => e.kind === 'lock') ? Code.TryAgainLater : Code.IoFailure;
  return { kind: 'error', error: cniError(code, 'masquerade cleanup failed', message) };
}
