/**
 * A parsed view of `iptables-save -t nat` or `iptables -t nat -S <chain>`
 * output: the only input planners trust, so parsing never guesses.
 */

export interface Rule {
  readonly chain: string;
  /** Arguments after `-A <chain>`, unquoted as iptables-restore reads them. */
  readonly args: readonly string[];
  /** The line exactly as the kernel printed it, starting with `-A`. */
  readonly line: string;
  readonly comment: string | undefined;
  /** Target of `-j`, if any. */
  readonly jump: string | undefined;
}

export interface Snapshot {
  /** Chains declared in the text (`:NAME` from save, `-N NAME` from -S). */
  readonly chains: ReadonlySet<string>;
  readonly rules: readonly Rule[];
}

/**
 * Split one rule line the way iptables-restore does: whitespace separates,
 * double quotes group, and inside quotes a backslash escapes the next char.
 * Returns undefined for a line with an unterminated quote.
 */
export function tokenize(line: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i];
      } else if (c === '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c === '"') {
      quoted = true;
      inToken = true;
    } else if (c === ' ' || c === '\t') {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += c;
      inToken = true;
    }
  }
  if (quoted) return undefined;
  if (inToken) out.push(cur);
  return out;
}

function optionValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

export function parseRuleLine(line: string): Rule | undefined {
  if (!line.startsWith('-A ')) return undefined;
  const tokens = tokenize(line);
  if (!tokens || tokens.length < 2) return undefined;
  const [, chain, ...args] = tokens as [string, string, ...string[]];
  return { chain, args, line, comment: optionValue(args, '--comment'), jump: optionValue(args, '-j') };
}

/** Parse save or -S text of one table; lines of other tables are ignored. */
export function parseSave(text: string, table = 'nat'): Snapshot {
  const chains = new Set<string>();
  const rules: Rule[] = [];
  // `-S` output has no `*table` header; save output has one per table.
  let current: string | undefined = text.includes('\n*') || text.startsWith('*') ? undefined : table;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      current = line.slice(1);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current !== table) {
      continue;
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0];
      if (name) chains.add(name);
    } else if (line.startsWith('-N ') || line.startsWith('-P ')) {
      const name = line.split(' ')[1];
      if (name) chains.add(name);
    } else {
      const rule = parseRuleLine(line);
      if (rule) rules.push(rule);
    }
  }
  return { chains, rules };
}
