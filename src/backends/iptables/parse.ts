/**
 * A parsed view of `iptables-save -t nat` or `iptables -t nat -S <chain>`
 * output: the only input planners trust, so parsing never guesses. A rule's
 * target is read the way iptables-restore reads the line (getopt: an option
 * that takes a value consumes the next token, whatever it looks like); a
 * line that cannot be read with certainty says so and is never doomed.
 */

export interface Rule {
  readonly chain: string;
  /** The line exactly as the kernel printed it, starting with `-A`. */
  readonly line: string;
  /** The top-level comment match's text (`-m comment --comment X`). */
  readonly comment: string | undefined;
  /** Top-level `-j`/`--jump` target. */
  readonly jump: string | undefined;
  /** Top-level `-g`/`--goto` target: it enters a chain as much as a jump does. */
  readonly goto: string | undefined;
  /** Top-level `-s`/`--source`, as printed (e.g. `10.0.0.2/32`). */
  readonly source: string | undefined;
  /**
   * false when the line cannot be read with certainty (an option of unknown
   * arity before a target, a stray word, two targets). Such a rule is never
   * deleted; `mentions` holds every chain it might enter.
   */
  readonly certain: boolean;
  /** Uncertain lines only (empty otherwise): every word that follows a -j/-g/--jump/--goto token anywhere in the line. */
  readonly mentions: readonly string[];
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

/**
 * Does `line` leave a double quote open, as tokenize reads quotes (a
 * backslash escapes the next character inside quotes only)? The same
 * answer as `tokenize(line) === undefined`, without building the tokens:
 * a sweep asks it of 300,000 lines.
 */
export function quoteOpen(line: string): boolean {
  let open = line.indexOf('"');
  while (open >= 0) {
    let from = open + 1;
    for (;;) {
      const close = line.indexOf('"', from);
      if (close < 0) return true;
      const escape = line.indexOf('\\', from);
      if (escape < 0 || escape > close) {
        open = line.indexOf('"', close + 1);
        break;
      }
      // An escape as the last character escapes nothing: the quote stays open.
      if (escape + 1 >= line.length) return true;
      from = escape + 2;
    }
  }
  return false;
}

/** Top-level options iptables-save prints, and how many values each takes. */
const TOP: Record<string, number> = {
  '-s': 1, '--source': 1, '-d': 1, '--destination': 1, '-i': 1, '--in-interface': 1, '-o': 1, '--out-interface': 1,
  '-p': 1, '--protocol': 1, '-f': 0, '--fragment': 0, '-m': 1, '--match': 1, '-j': 1, '--jump': 1, '-g': 1, '--goto': 1,
  '-c': 2, '--set-counters': 2,
};
const TARGET_FLAGS = new Set(['-j', '--jump', '-g', '--goto']);

/**
 * Value counts of the options of matches and targets seen in nat tables
 * (bridge, portmap, kube-proxy, Docker, firewalld, Calico). An option not
 * listed here has an unknown arity: what follows it cannot be read for sure.
 */
const EXT: Record<string, Record<string, number>> = {
  comment: { '--comment': 1 },
  recent: { '--name': 1, '--set': 0, '--rcheck': 0, '--update': 0, '--remove': 0, '--seconds': 1, '--reap': 0, '--hitcount': 1, '--rttl': 0, '--rsource': 0, '--rdest': 0, '--mask': 1 },
  multiport: { '--dports': 1, '--sports': 1, '--ports': 1, '--destination-ports': 1, '--source-ports': 1 },
  addrtype: { '--src-type': 1, '--dst-type': 1, '--limit-iface-in': 0, '--limit-iface-out': 0 },
  mark: { '--mark': 1 },
  connmark: { '--mark': 1 },
  conntrack: { '--ctstate': 1, '--ctproto': 1, '--ctorigsrc': 1, '--ctorigdst': 1, '--ctreplsrc': 1, '--ctrepldst': 1, '--ctorigsrcport': 1, '--ctorigdstport': 1, '--ctreplsrcport': 1, '--ctrepldstport': 1, '--ctstatus': 1, '--ctexpire': 1, '--ctdir': 1 },
  state: { '--state': 1 },
  tcp: { '--sport': 1, '--dport': 1, '--source-port': 1, '--destination-port': 1, '--tcp-flags': 2, '--syn': 0, '--tcp-option': 1 },
  udp: { '--sport': 1, '--dport': 1, '--source-port': 1, '--destination-port': 1 },
  sctp: { '--sport': 1, '--dport': 1 },
  icmp: { '--icmp-type': 1 },
  icmp6: { '--icmpv6-type': 1 },
  set: { '--match-set': 2, '--return-nomatch': 0, '--update-counters': 0, '--update-subcounters': 0, '--packets-eq': 1, '--packets-lt': 1, '--packets-gt': 1, '--bytes-eq': 1, '--bytes-lt': 1, '--bytes-gt': 1 },
  statistic: { '--mode': 1, '--probability': 1, '--every': 1, '--packet': 1 },
  physdev: { '--physdev-in': 1, '--physdev-out': 1, '--physdev-is-in': 0, '--physdev-is-out': 0, '--physdev-is-bridged': 0 },
  iprange: { '--src-range': 1, '--dst-range': 1 },
  mac: { '--mac-source': 1 },
  owner: { '--uid-owner': 1, '--gid-owner': 1, '--socket-exists': 0, '--suppl-groups': 0 },
  limit: { '--limit': 1, '--limit-burst': 1 },
  length: { '--length': 1 },
  ttl: { '--ttl-eq': 1, '--ttl-gt': 1, '--ttl-lt': 1 },
  hl: { '--hl-eq': 1, '--hl-gt': 1, '--hl-lt': 1 },
  pkttype: { '--pkt-type': 1 },
  devgroup: { '--src-group': 1, '--dst-group': 1 },
  socket: { '--transparent': 0, '--nowildcard': 0, '--restore-skmark': 0 },
  // Targets
  MASQUERADE: { '--to-ports': 1, '--random': 0, '--random-fully': 0 },
  SNAT: { '--to-source': 1, '--random': 0, '--random-fully': 0, '--persistent': 0 },
  DNAT: { '--to-destination': 1, '--random': 0, '--persistent': 0 },
  REDIRECT: { '--to-ports': 1, '--random': 0 },
  NETMAP: { '--to': 1 },
  MARK: { '--set-xmark': 1, '--set-mark': 1, '--and-mark': 1, '--or-mark': 1, '--xor-mark': 1 },
  CONNMARK: { '--set-xmark': 1, '--save-mark': 0, '--restore-mark': 0, '--nfmask': 1, '--ctmask': 1, '--mask': 1, '--set-mark': 1 },
  LOG: { '--log-level': 1, '--log-prefix': 1, '--log-tcp-sequence': 0, '--log-tcp-options': 0, '--log-ip-options': 0, '--log-uid': 0, '--log-macdecode': 0 },
  NFLOG: { '--nflog-group': 1, '--nflog-prefix': 1, '--nflog-range': 1, '--nflog-size': 1, '--nflog-threshold': 1 },
  RETURN: {},
  ACCEPT: {},
  DROP: {},
};

interface Reading {
  comment: string | undefined;
  jump: string | undefined;
  goto: string | undefined;
  source: string | undefined;
  certain: boolean;
}

/** getopt over the tokens after `-A <chain>`, with the arities above. */
function read(args: readonly string[]): Reading {
  const r: Reading = { comment: undefined, jump: undefined, goto: undefined, source: undefined, certain: true };
  // Options of the extension (match or target) whose options may follow now.
  let ext: Record<string, number> | undefined;
  let extName = '';
  for (let i = 0; i < args.length; i++) {
    const t = args[i] as string;
    if (t === '!') continue;
    const top = TOP[t];
    const own = ext?.[t];
    if (own !== undefined) {
      // A match's own option wins over a top-level one of the same spelling, as getopt's merged table does.
      if (extName === 'comment' && t === '--comment') r.comment ??= args[i + 1];
      i += own;
      if (i >= args.length) r.certain = false;
      continue;
    }
    if (top !== undefined) {
      const value = args[i + 1];
      if (value === undefined && top > 0) {
        r.certain = false;
        break;
      }
      if (t === '-m' || t === '--match') {
        extName = value as string;
        ext = EXT[extName];
        if (ext === undefined) ext = {};
      } else if (TARGET_FLAGS.has(t)) {
        // iptables refuses a second target; a line that shows one was not written by iptables' own save.
        if (r.jump !== undefined || r.goto !== undefined) r.certain = false;
        if (t === '-j' || t === '--jump') r.jump = value;
        else r.goto = value;
        extName = value as string;
        ext = EXT[extName] ?? {};
      } else if (t === '-s' || t === '--source') {
        r.source = value;
      }
      i += top;
      continue;
    }
    if (t.startsWith('--') && ext !== undefined && EXT[extName] === undefined) {
      // An option of an extension we do not know: its values are the words up to the next option. If
      // the next "option" is a target flag, getopt could have taken it as this option's value.
      let j = i + 1;
      while (j < args.length && !(args[j] as string).startsWith('-') && args[j] !== '!') j++;
      if (j === i + 1 && j < args.length && TARGET_FLAGS.has(args[j] as string)) r.certain = false;
      i = j - 1;
      continue;
    }
    // A word no option claims, or an option unknown where it stands: iptables-restore would refuse this line.
    r.certain = false;
  }
  return r;
}

function mentionsOf(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < args.length; i++) {
    if (TARGET_FLAGS.has(args[i] as string)) out.push(args[i + 1] as string);
  }
  return out;
}

/**
 * A rule's words after `-A <chain>`, unquoted as iptables-restore reads
 * them. Not kept on every rule (a sweep holds 300,000): computed for the few
 * that need their options read (portmap's DNAT rules, for the port report).
 */
export function argsOf(rule: Pick<Rule, 'line'>): readonly string[] {
  return tokenize(rule.line)?.slice(2) ?? [];
}

/** Does this rule send packets into `chain` (by a top-level -j or -g)? */
export function enters(rule: Rule, chain: string): boolean {
  return rule.jump === chain || rule.goto === chain;
}

/** Might it, read with the least certainty (any -j/-g word anywhere)? */
export function mayEnter(rule: Rule, chain: string): boolean {
  return enters(rule, chain) || (!rule.certain && rule.mentions.includes(chain));
}

/**
 * The shape bridge, ptp and portmap print for every rule they make: address
 * matches, one comment match, one target with no options. Its arities are all
 * known, so it reads exactly as the general path would, ~10x faster: a sweep
 * of 100,000 leaked setups parses 300,000 such lines.
 */
const PLAIN = /^-A (\S+)((?: (?:! )?-[sd] [0-9A-Fa-f.:/]+)*) -m comment --comment "((?:[^"\\]|\\.)*)" -j ([A-Za-z0-9_.-]+)$/;
const ADDR = / (!)? ?-([sd]) ([0-9A-Fa-f.:/]+)/g;

/** Shared by every certain rule: a sweep holds 300,000 of them. */
const NO_MENTIONS: readonly string[] = Object.freeze([]);

function plainRule(line: string): Rule | undefined {
  const m = PLAIN.exec(line);
  if (!m) return undefined;
  const [, chain, addrs, quoted, target] = m as unknown as [string, string, string, string, string];
  let source: string | undefined;
  // Most of bridge's rules match on -d only (ACCEPT, MASQUERADE): no iterator for them.
  if (addrs.includes('-s ')) for (const a of addrs.matchAll(ADDR)) if (a[2] === 's' && !a[1]) source = a[3];
  const comment = quoted.includes('\\') ? quoted.replace(/\\(.)/g, '$1') : quoted;
  return { chain, line, comment, jump: target, goto: undefined, source, certain: true, mentions: NO_MENTIONS };
}

export function parseRuleLine(line: string): Rule | undefined {
  if (!line.startsWith('-A ')) return undefined;
  const plain = plainRule(line);
  if (plain) return plain;
  const tokens = tokenize(line);
  if (!tokens || tokens.length < 2) return undefined;
  const [, chain, ...args] = tokens as [string, string, ...string[]];
  const reading = read(args);
  // An uncertain reading names no target: only `mentions` says where it might go.
  return reading.certain
    ? { chain, line, ...reading, mentions: NO_MENTIONS }
    : { chain, line, comment: reading.comment, jump: undefined, goto: undefined, source: reading.source, certain: false, mentions: mentionsOf(args) };
}

/**
 * iptables prints a comment's newline raw, so one rule can span several
 * text lines. Join lines while a quote is open, so that a comment can never
 * pose as a table header, a COMMIT or a rule of its own.
 */
export function logicalLines(text: string): string[] {
  const out: string[] = [];
  forEachLogicalLine(text, (l) => out.push(l));
  return out;
}

/**
 * The same, streamed: big saves (100,000 chains) are never held twice. From
 * a Buffer each line is decoded on its own, so what a snapshot keeps (rule
 * lines, and names cut from them) never pins the whole 40 MiB output.
 */
export function forEachLogicalLine(text: string | Buffer, each: (line: string) => void): void {
  let pending: string | undefined;
  let start = 0;
  const length = text.length;
  while (start <= length) {
    let end = typeof text === 'string' ? text.indexOf('\n', start) : text.indexOf(10, start);
    if (end < 0) end = length;
    // A newline byte never occurs inside a multi-byte UTF-8 sequence, so each line decodes alone.
    const raw = typeof text === 'string' ? text.slice(start, end) : text.toString('utf8', start, end);
    start = end + 1;
    const line = pending === undefined ? raw : `${pending}\n${raw}`;
    // Only a line with a quote can leave one open; most lines have none and skip the scan.
    if (line.startsWith('-A ') && quoteOpen(line)) {
      pending = line;
      continue;
    }
    pending = undefined;
    each(line.trimEnd());
  }
  if (pending !== undefined) each(pending);
}

function addChainDeclaration(line: string, chains: Set<string>): boolean {
  const name = line.startsWith(':') ? line.slice(1).split(' ')[0] : line.startsWith('-N ') || line.startsWith('-P ') ? line.split(' ')[1] : undefined;
  if (name) chains.add(name);
  return name !== undefined;
}

/**
 * `iptables-save` output; only `table`'s section is read. `keep` lets a
 * caller drop rules it will never need (most of a kube-proxy table) before
 * they are parsed and held.
 */
export function parseSave(text: string | Buffer, table = 'nat', keep: (line: string) => boolean = () => true): Snapshot {
  const chains = new Set<string>();
  const rules: Rule[] = [];
  let current: string | undefined;
  forEachLogicalLine(text, (line) => {
    if (line.startsWith('*')) current = line.slice(1);
    else if (line === 'COMMIT') current = undefined;
    else if (current !== table || addChainDeclaration(line, chains)) return;
    else if (keep(line)) {
      const rule = parseRuleLine(line);
      if (rule) rules.push(rule);
    }
  });
  return { chains, rules };
}

/** `iptables -t <table> -S [chain]` output: one table, no headers, ever. */
export function parseListing(text: string): Snapshot {
  const chains = new Set<string>();
  const rules: Rule[] = [];
  forEachLogicalLine(text, (line) => {
    if (addChainDeclaration(line, chains)) return;
    const rule = parseRuleLine(line);
    if (rule) rules.push(rule);
  });
  return { chains, rules };
}

/** Two listings of one table as one snapshot (POSTROUTING plus the attachment's own chain). */
export function mergeSnapshots(...parts: readonly Snapshot[]): Snapshot {
  const chains = new Set<string>();
  const seen = new Set<string>();
  const rules: Rule[] = [];
  for (const p of parts) {
    for (const c of p.chains) chains.add(c);
    for (const r of p.rules) {
      if (seen.has(r.line)) continue;
      seen.add(r.line);
      rules.push(r);
    }
  }
  return { chains, rules };
}
