import { fail, ok, type Result } from '../cni/errors.js';
import { NFT_CHAIN, NFT_TABLE, parseNftListing, type NftRule } from '../plan/nft-rules.js';
import type { Runner } from './exec.js';

export type NftError =
  | { readonly kind: 'missing-tool'; readonly message: string }
  | { readonly kind: 'vanished'; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string };

const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ');

/** masq_checks rules; an absent table or chain is simply no rules. */
export async function listMasqChecks(run: Runner): Promise<Result<NftRule[], NftError>> {
  const r = await run('nft', ['-j', 'list', 'chain', 'inet', NFT_TABLE, NFT_CHAIN], { timeoutMs: 120_000 });
  if (r.notFound) return fail({ kind: 'missing-tool', message: 'nft: not found on PATH' });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return ok([]);
    return fail({ kind: 'failed', message: `nft list: exit ${r.exitCode ?? '?'}: ${tail(r.stderr)}` });
  }
  try {
    return ok(parseNftListing(r.stdout));
  } catch (e) {
    return fail({ kind: 'failed', message: `nft list: unreadable JSON: ${(e as Error).message}` });
  }
}

/** All deletes apply, or none (nft -f is one transaction). A vanished handle fails it as 'vanished'. */
export async function applyNft(run: Runner, text: string): Promise<Result<void, NftError>> {
  const r = await run('nft', ['-f', '-'], { input: text, timeoutMs: 120_000 });
  if (r.notFound) return fail({ kind: 'missing-tool', message: 'nft: not found on PATH' });
  if (r.exitCode === 0) return ok(undefined);
  const kind = /No such file or directory/.test(r.stderr) ? 'vanished' : 'failed';
  return fail({ kind, message: `nft -f: exit ${r.exitCode ?? '?'}: ${tail(r.stderr)}` });
}
