import { closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, janitorError, ok, type JanitorError, type Result } from '../../errors.js';
import type { Backend, Removed } from '../backend.js';
import { NONE_REMOVED } from '../backend.js';
import type { Runner } from '../exec.js';
import { NFT_CHAIN, NFT_TABLE, parseNftListing, type NftRule } from './parse.js';
import { planNft, type NftPlan } from './plan.js';
import { chunkByInstance, renderNft } from './render.js';

export const NFT_WHERE = `nft inet ${NFT_TABLE}`;

const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ');

/** masq_checks rules; an absent table or chain is simply no rules. */
export async function listMasqChecks(run: Runner): Promise<Result<NftRule[], JanitorError>> {
  const r = await run('nft', ['-j', 'list', 'chain', 'inet', NFT_TABLE, NFT_CHAIN], { timeoutMs: 120_000 });
  if (r.notFound) return fail(janitorError('missing-tool', 'nft: not found on PATH'));
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return ok([]);
    return fail(janitorError('failed', `nft list: exit ${r.exitCode ?? '?'}: ${tail(r.stderr)}`));
  }
  try {
    return ok(parseNftListing(r.stdout));
  } catch (e) {
    return fail(janitorError('failed', `nft list: unreadable JSON: ${(e as Error).message}`));
  }
}

const PREFIX = 'masq-janitor-nft-';

/**
 * A private parent for batch files: ours only if it is a real directory,
 * owned by us and closed to others (a user could have made /tmp/masq-janitor
 * first). Leftovers of a run killed before it unlinked its file are removed
 * here by the next run.
 */
function batchParent(): string {
  const parent = join(tmpdir(), 'masq-janitor');
  try {
    mkdirSync(parent, { mode: 0o700 });
  } catch {
    // exists: checked below
  }
  try {
    const st = lstatSync(parent);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) return tmpdir();
  } catch {
    return tmpdir();
  }
  for (const name of readdirSync(parent)) {
    const pid = Number(/^masq-janitor-nft-(\d+)-/.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || alive(pid)) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
  }
  return parent;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * All deletes apply, or none (nft -f is one transaction). The batch reaches
 * nft as a complete regular file, never a pipe (nft applies whatever
 * complete lines a pipe delivered if we are killed mid-write). The file is
 * unlinked before nft starts: nft opens it through our descriptor
 * (/proc/<pid>/fd/<n>), so a SIGTERM or SIGKILL at any point leaves nothing
 * behind. A vanished handle fails the batch as 'vanished'.
 */
export async function applyNft(run: Runner, text: string): Promise<Result<void, JanitorError>> {
  const dir = mkdtempSync(join(batchParent(), `${PREFIX}${process.pid}-`));
  const file = join(dir, 'batch.nft');
  let fd: number;
  try {
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } finally {
    rmSync(file, { force: true });
    try {
      rmdirSync(dir);
    } catch {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  try {
    const r = await run('nft', ['-f', `/proc/${process.pid}/fd/${fd}`], { timeoutMs: 120_000 });
    if (r.notFound) return fail(janitorError('missing-tool', 'nft: not found on PATH'));
    if (r.exitCode === 0) return ok(undefined);
    const kind = /No such file or directory|Could not process rule/.test(r.stderr) ? 'vanished' : 'failed';
    return fail(janitorError(kind, `nft -f: exit ${r.exitCode ?? '?'}: ${tail(r.stderr)}`));
  } finally {
    closeSync(fd);
  }
}

/** Rules per transaction; an instance's v4 and v6 rules are never split. */
const CHUNK = 20_000;

/**
 * `networks`: names the caller knows (DEL's and GC's network), to attribute
 * comments upstream cut inside the network name.
 */
export function nftBackend(run: Runner, networks: readonly string[] = []): Backend<readonly NftRule[], NftPlan> {
  return {
    where: NFT_WHERE,
    read: () => listMasqChecks(run),
    plan: (rules, selection, _attempt, within) => planNft(rules, selection, networks, within === undefined ? undefined : new Set(within.rules.map((r) => r.handle))),
    isEmpty: (p) => p.rules.length === 0,
    async apply(plan, progress) {
      if (plan.rules.length >= 1000) progress(`${NFT_WHERE}: removing ${plan.rules.length} rules`);
      let removed: Removed = NONE_REMOVED;
      for (const part of chunkByInstance(plan.rules, CHUNK)) {
        const r = await applyNft(run, renderNft({ rules: part }));
        if (!r.ok) return { removed, error: r.error };
        removed = { ...removed, rules: removed.rules + part.length, transactions: removed.transactions + 1 };
      }
      return { removed };
    },
  };
}

