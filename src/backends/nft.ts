import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/**
 * All deletes apply, or none (nft -f is one transaction). The batch goes
 * through a file, not a pipe: nft applies whatever complete lines a pipe
 * delivered if we are killed mid-write, which could split an attachment.
 * A vanished handle fails the batch as 'vanished'.
 */
export async function applyNft(run: Runner, text: string): Promise<Result<void, NftError>> {
  const dir = mkdtempSync(join(tmpdir(), 'masq-janitor-'));
  const file = join(dir, 'batch.nft');
  try {
    writeFileSync(file, text, { mode: 0o600 });
    const r = await run('nft', ['-f', file], { timeoutMs: 120_000 });
    if (r.notFound) return fail({ kind: 'missing-tool', message: 'nft: not found on PATH' });
    if (r.exitCode === 0) return ok(undefined);
    const kind = /No such file or directory/.test(r.stderr) ? 'vanished' : 'failed';
    return fail({ kind, message: `nft -f: exit ${r.exitCode ?? '?'}: ${tail(r.stderr)}` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
