import { teardownAttachment, type TeardownReport } from '../apply/iptables.js';
import { removeNftRules, type NftReport } from '../apply/nft.js';
import { bridgeWillTearDown, inspectNetns } from '../backends/netns.js';
import { delVariants } from '../backends/variants.js';
import type { Xtables } from '../backends/xtables.js';
import { planNftAttachment } from '../plan/nft-plan.js';
import { Code, cniError } from '../cni/errors.js';
import { parsePrevResult, type PrevIp } from '../cni/result.js';
import type { Attachment } from '../identity.js';
import type { ChainPolicy } from '../plan/iptables-plan.js';
import { NONE, type Reply, type VerbContext } from './context.js';

/**
 * DEL runs before bridge (plugins are deleted in reverse order) and removes
 * this attachment's masquerade state whatever the netns looks like.
 *
 * Policy: libcni stops the whole DEL chain at the first plugin error, and a
 * stopped chain means bridge never releases the IP. So cleanup problems are
 * logged and DEL succeeds, unless the config says `"strict": true`.
 */
export async function del(ctx: VerbContext): Promise<Reply> {
  const { env, conf, run, log } = ctx;
  const attachment: Attachment = { network: conf.name, containerId: env.containerId };

  // prevResult is a hint (family order, the fast path), never a need: nerdctl's pre-emptive DEL has none.
  let families: (4 | 6)[] = [4, 6];
  let ips: readonly PrevIp[] = [];
  if (conf.prevResult !== undefined && conf.prevResult !== null) {
    const prev = parsePrevResult(conf.prevResult, conf.cniVersion);
    if (prev.ok) {
      ips = prev.value.ips;
      if (ips.length > 0 && ips.every((i) => i.family === 6)) families = [6, 4];
    } else {
      log.warn({ error: prev.error }, 'ignoring invalid prevResult');
    }
  }

  const netns = await inspectNetns(run, env.netns, env.ifname);
  // Bridge up to v1.5 fails its whole DEL if our chain is already gone when it tears down; leave it the empty
  // chain, in the families bridge will still see. Bridge only ever tears down in the iptables on PATH.
  const policy = (xt: Xtables): ChainPolicy => (xt.variant === 'default' && bridgeWillTearDown(netns, xt.family) ? 'keep-empty-chain' : 'remove-chain');

  const tables = families.flatMap((f) => delVariants(f, ctx.path));
  // The nft backend keys on ifname too, and bridge >= v1.6 tolerates its rules being gone already.
  const nftPlan = (rules: Parameters<typeof planNftAttachment>[0]) => planNftAttachment(rules, conf.name, env.ifname, env.containerId);
  const [nft, ...results] = await Promise.all([
    removeNftRules(run, nftPlan),
    ...tables.map((xt) =>
      teardownAttachment(run, xt, attachment, policy(xt), conf.settings.lockWait, log, xt.variant === 'default' ? ips.filter((i) => i.family === xt.family).map((i) => i.ip) : []),
    ),
  ]);
  const reports: (TeardownReport | NftReport)[] = [];
  const errors: { kind: string; message: string }[] = [];
  for (const r of [nft, ...results]) (r.ok ? reports.push(r.value) : errors.push(r.error));

  const netnsState = netns.kind === 'iface-present' ? `iface-present (IPv${[...netns.families].join(', IPv') || ' none'})` : netns.kind;
  const fields = { containerId: env.containerId, network: conf.name, ifname: env.ifname, netns: env.netns, netnsState };
  if (errors.length === 0) {
    const removed = reports.reduce((n, r) => n + ('rules' in r ? r.rules : r.jumps + r.chainsRemoved), 0);
    log.info({ ...fields, reports }, removed > 0 ? 'removed masquerade state' : 'nothing to remove');
    return NONE;
  }
  const message = errors.map((e) => e.message).join('; ');
  if (!conf.settings.strict) {
    log.error({ ...fields, reports, errors: message }, 'masquerade cleanup failed; DEL continues so the runtime can release the IP');
    return NONE;
  }
  const code = errors.some((e) => e.kind === 'lock') ? Code.TryAgainLater : Code.IoFailure;
  return { kind: 'error', error: cniError(code, 'masquerade cleanup failed', message) };
}
