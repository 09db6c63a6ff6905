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
  /** Target of `-g` (goto), if any: it enters a chain as much as a jump does. */
  readonly goto: string | undefined;
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

/** Does this rule send packets into `chain` (by -j or -g)? */
export function enters(rule: Rule, chain: string): boolean {
  return rule.jump === chain || rule.goto === chain;
}

export function parseRuleLine(line: string): Rule | undefined {
  if (!line.startsWith('-A ')) return undefined;
  const tokens = tokenize(line);
  if (!tokens || tokens.length < 2) return undefined;
  const [, chain, ...args] = tokens as [string, string, ...string[]];
  return { chain, args, line, comment: optionValue(args, '--comment'), jump: optionValue(args, '-j'), goto: optionValue(args, '-g') };
}

/**
 * iptables prints a comment's newline raw, so one rule can span several
 * text lines. Join lines while a quote is open, so that a comment can never
 * pose as a table header, a COMMIT or a rule of its own.
 */
export function logicalLines(text: string): string[] {
  const out: string[] = [];
  let pending: string | undefined;
  for (const raw of text.split('\n')) {
    const line = pending === undefined ? raw : `${pending}\n${raw}`;
    if (line.startsWith('-A ') && tokenize(line) === undefined) {
      pending = line;
      continue;
    }
    pending = undefined;
    out.push(line.trimEnd());
  }
  if (pending !== undefined) out.push(pending);
  return out;
}

function addChainDeclaration(line: string, chains: Set<string>): boolean {
  const name = line.startsWith(':') ? line.slice(1).split(' ')[0] : line.startsWith('-N ') || line.startsWith('-P ') ? line.split(' ')[1] : undefined;
  if (name) chains.add(name);
  return name !== undefined;
}

/** `iptables-save` output; only `table`'s section is read. */
export function parseSave(text: string, table = 'nat'): Snapshot {
  const chains = new Set<string>();
  const rules: Rule[] = [];
  let current: string | undefined;
  for (const line of logicalLines(text)) {
    if (line.startsWith('*')) current = line.slice(1);
    else if (line === 'COMMIT') current = undefined;
    else if (current !== table || addChainDeclaration(line, chains)) continue;
    else {
      const rule = parseRuleLine(line);
      if (rule) rules.push(rule);
    }
  }
  return { chains, rules };
}

/** `iptables -t <table> -S [chain]` output: one table, no headers, ever. */
export function parseListing(text: string): Snapshot {
  const chains = new Set<string>();
  const rules: Rule[] = [];
  for (const line of logicalLines(text)) {
    if (addChainDeclaration(line, chains)) continue;
    const rule = parseRuleLine(line);
    if (rule) rules.push(rule);
  }
  return { chains, rules };
}
