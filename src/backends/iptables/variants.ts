import { readFileSync, realpathSync } from 'node:fs';
import { which } from '../tools.js';
import { xtables, type Xtables } from './run.js';

/**
 * Which iptables variants can hold masquerade state here. Bridge used
 * whatever `iptables` was on PATH when it ran; a host that switched
 * alternatives (or runs a legacy-only tool) keeps state in the other one.
 */

type Kind = 'legacy' | 'nft' | 'unknown';

function kindOf(binary: string, path: string): Kind {
  const found = which(binary, path);
  if (!found) return 'unknown';
  try {
    const real = realpathSync(found);
    return real.includes('legacy') ? 'legacy' : real.includes('nft') ? 'nft' : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Legacy tables of this netns are listed in /proc; reading it loads nothing (a legacy save would). */
export function legacyHasNat(family: 4 | 6): boolean {
  try {
    return readFileSync(family === 4 ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names', 'utf8').split('\n').includes('nat');
  } catch {
    return false;
  }
}

/**
 * For DEL: the default `iptables`, plus legacy when the default is nft and
 * legacy nat state exists (free to detect). The opposite case would cost a
 * process on every DEL; `sweep` covers it.
 */
export function delVariants(family: 4 | 6, path: string): Xtables[] {
  const stem = family === 4 ? 'iptables' : 'ip6tables';
  const kind = kindOf(stem, path);
  const out = [xtables(family, 'default', kind)];
  if (kind === 'nft' && legacyHasNat(family) && which(`${stem}-legacy`, path)) out.push(xtables(family, 'legacy'));
  return out;
}

/** For GC and sweep: every variant that exists and may hold state. */
export function allVariants(family: 4 | 6, path: string): Xtables[] {
  const stem = family === 4 ? 'iptables' : 'ip6tables';
  const hasLegacy = which(`${stem}-legacy`, path) !== undefined;
  const hasNft = which(`${stem}-nft`, path) !== undefined;
  if (!hasLegacy && !hasNft) return which(stem, path) ? [xtables(family, 'default', kindOf(stem, path))] : [];
  const out: Xtables[] = [];
  if (hasNft) out.push(xtables(family, 'nft'));
  if (hasLegacy && legacyHasNat(family)) out.push(xtables(family, 'legacy'));
  // A default that is neither (a distro's own build) still gets looked at.
  if (kindOf(stem, path) === 'unknown' && which(stem, path)) out.push(xtables(family, 'default', 'unknown'));
  return out;
}
