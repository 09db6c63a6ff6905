import { readFileSync } from 'node:fs';
import type { ExecOptions, ExecResult, Runner } from '../../src/backends/exec.js';

/**
 * A stateful fake of the tools the janitor drives: iptables / ip6tables
 * (`-S`, `-save`, `-restore --noflush`) per binary family, nft (`-j list
 * chain`, `-f`), and `nsenter ... ip addr` for the netns check. It keeps
 * each rule's REAL target (what the kernel knows), so it refuses `-X` of a
 * chain something still enters exactly as the kernel does, whatever the
 * saved text looks like. Tests can change the world between a read and the
 * next transaction (`beforeApply`), and count and inspect every call.
 */

export interface FakeRule {
  /** Exactly as iptables-save prints it (`-A CHAIN ...`). */
  readonly line: string;
  /** The chain the kernel sends packets to, if any (its real -j/-g target). */
  readonly target?: string;
}

export interface FakeTable {
  chains: Set<string>;
  rules: FakeRule[];
}

export interface FakeNftRule {
  readonly handle: number;
  readonly comment: string;
  readonly saddr?: string;
}

const BUILTIN = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];

export interface Call {
  readonly file: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
}

export class FakeHost {
  /** Keyed by binary base: `iptables`, `ip6tables`, `iptables-legacy`, ... */
  readonly tables = new Map<string, FakeTable>();
  nft: FakeNftRule[] = [];
  nextHandle = 100;
  readonly calls: Call[] = [];
  /** `ip -o addr show dev <if>` output inside the netns; undefined: the device does not exist. */
  netnsAddrs: string | undefined = undefined;
  /** Called before each transaction (restore or nft -f) is applied; may change the world, and return 'fail' to fail it unapplied. */
  beforeApply: ((kind: 'restore' | 'nft', base: string, input: string) => void | 'fail') | undefined;
  /** Fail the next N transactions of this kind with a vanished-like error, without applying them. */
  failNext = { restore: 0, nft: 0 };

  table(base: string): FakeTable {
    let t = this.tables.get(base);
    if (!t) this.tables.set(base, (t = { chains: new Set(), rules: [] }));
    return t;
  }

  addChain(base: string, chain: string): void {
    this.table(base).chains.add(chain);
  }

  addRule(base: string, rule: FakeRule): void {
    const chain = rule.line.split(' ')[1] as string;
    if (!BUILTIN.includes(chain)) this.table(base).chains.add(chain);
    this.table(base).rules.push(rule);
  }

  addNft(comment: string, saddr?: string): number {
    const handle = this.nextHandle++;
    this.nft.push({ handle, comment, ...(saddr ? { saddr } : {}) });
    return handle;
  }

  rulesOf(base: string, chain: string): string[] {
    return this.table(base).rules.filter((r) => r.line.split(' ')[1] === chain).map((r) => r.line);
  }

  count(file: string, first?: string): number {
    return this.calls.filter((c) => c.file === file && (first === undefined || c.args.includes(first))).length;
  }

  readonly run: Runner = async (file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
    const input = file === 'nft' && args[0] === '-f' && args[1] !== undefined ? readFileSync(args[1], 'utf8') : opts.input;
    this.calls.push({ file, args, input });
    const done = (stdout = '', exitCode = 0, stderr = ''): ExecResult => ({ exitCode, stdout, stderr, notFound: false, timedOut: false });
    const m = /^(ip6?tables(?:-legacy|-nft)?)(?:-(save|restore))?$/.exec(file);
    if (m) {
      const base = m[1] as string;
      const t = this.table(base);
      if (m[2] === 'save') return done(this.save(t));
      if (m[2] === 'restore') {
        if (this.failNext.restore > 0) {
          this.failNext.restore--;
          return done('', 1, 'iptables-restore: line 3 failed: Bad rule (does a matching rule exist in that chain?)');
        }
        if (this.beforeApply?.('restore', base, input ?? '') === 'fail') return done('', 1, 'iptables-restore: line 3 failed: Bad rule (does a matching rule exist in that chain?)');
        const err = this.restore(this.table(base), input ?? '');
        return err === undefined ? done() : done('', 1, err);
      }
      const s = args.indexOf('-S');
      if (s >= 0) {
        const chain = args[s + 1] as string;
        if (!BUILTIN.includes(chain) && !t.chains.has(chain)) return done('', 1, 'iptables: No chain/target/match by that name.');
        const head = BUILTIN.includes(chain) ? `-P ${chain} ACCEPT` : `-N ${chain}`;
        return done([head, ...t.rules.filter((r) => r.line.split(' ')[1] === chain).map((r) => r.line)].join('\n') + '\n');
      }
      return done('', 2, `fake: unsupported ${file} ${args.join(' ')}`);
    }
    if (file === 'nft') {
      if (args[0] === '-j' && args[1] === 'list') {
        const r = this.nftList(args.slice(1).join(' '));
        return r.ok ? done(r.json) : done('', 1, r.error);
      }
      // nft -i, as coalescingNftLists uses it: each input line its own command, errors on stderr, exit 0.
      if (args[0] === '-j' && args[1] === '-i') {
        const answers = (input ?? '').split('\n').filter((l) => l !== '').map((l) => this.nftList(l));
        return done(
          answers.map((a) => (a.ok ? `${a.json}\n` : '')).join(''),
          0,
          answers.map((a) => (a.ok ? '' : a.error)).join(''),
        );
      }
      if (args[0] === '-f') {
        if (this.failNext.nft > 0) {
          this.failNext.nft--;
          return done('', 1, 'Error: Could not process rule: No such file or directory');
        }
        if (this.beforeApply?.('nft', 'nft', input ?? '') === 'fail') return done('', 1, 'Error: Could not process rule: No such file or directory');
        return this.nftApply(input ?? '') ? done() : done('', 1, 'Error: Could not process rule: No such file or directory');
      }
    }
    if (file === 'nsenter') {
      return this.netnsAddrs === undefined ? done('', 1, 'Device "eth0" does not exist.') : done(this.netnsAddrs);
    }
    return { exitCode: undefined, stdout: '', stderr: `${file}: not found`, notFound: true, timedOut: false };
  };

  private save(t: FakeTable): string {
    return ['*nat', ...BUILTIN.map((c) => `:${c} ACCEPT [0:0]`), ...[...t.chains].map((c) => `:${c} - [0:0]`), ...t.rules.map((r) => r.line), 'COMMIT', ''].join('\n');
  }

  /** The subset of iptables-restore --noflush the janitor emits, all or nothing, with the kernel's -X check. */
  private restore(t: FakeTable, text: string): string | undefined {
    const chains = new Set(t.chains);
    let rules = [...t.rules];
    const lines = text.split('\n').filter((l) => l !== '');
    if (lines[0] !== '*nat' || lines.at(-1) !== 'COMMIT') return 'fake: not one nat transaction';
    for (const [i, line] of lines.slice(1, -1).entries()) {
      const n = i + 2;
      let mm: RegExpExecArray | null;
      if ((mm = /^:(\S+) - \[0:0\]$/.exec(line))) {
        const c = mm[1] as string;
        chains.add(c);
        rules = rules.filter((r) => r.line.split(' ')[1] !== c);
      } else if ((mm = /^-D (.+)$/.exec(line))) {
        const i2 = rules.findIndex((r) => r.line === `-A ${mm?.[1] as string}`);
        if (i2 < 0) return `iptables-restore: line ${n} failed: Bad rule (does a matching rule exist in that chain?)`;
        rules.splice(i2, 1);
      } else if ((mm = /^-X (\S+)$/.exec(line))) {
        const c = mm[1] as string;
        if (!chains.has(c)) return `iptables-restore: line ${n} failed: No chain/target/match by that name`;
        if (rules.some((r) => r.line.split(' ')[1] === c)) return `iptables-restore: line ${n} failed: Directory not empty`;
        if (rules.some((r) => r.target === c)) return `iptables-restore v1.8.9 (nf_tables): line ${n}: CHAIN_DEL failed (Device or resource busy): chain ${c}`;
        chains.delete(c);
      } else if ((mm = /^-N (\S+)$/.exec(line))) {
        const c = mm[1] as string;
        if (chains.has(c)) return `iptables-restore: line ${n}: CHAIN_USER_ADD failed (File exists): chain ${c}`;
        chains.add(c);
      } else {
        return `fake: line ${n} outside the janitor's grammar: ${line}`;
      }
    }
    t.chains = chains;
    t.rules = rules;
    return undefined;
  }

  /** One `nft -j` listing command: bridge's chain is always there; portmap's nft tables never are. */
  private nftList(command: string): { ok: true; json: string } | { ok: false; error: string } {
    if (command === 'list chain inet cni_plugins_masquerade masq_checks') return { ok: true, json: this.nftJson() };
    const at = command.lastIndexOf(' ') + 1;
    return { ok: false, error: `Error: No such file or directory\n${command}\n${' '.repeat(at)}${'^'.repeat(command.length - at)}\n` };
  }

  private nftJson(): string {
    const items = this.nft.map((r) => ({
      rule: {
        family: 'inet',
        table: 'cni_plugins_masquerade',
        chain: 'masq_checks',
        handle: r.handle,
        comment: r.comment,
        expr: r.saddr ? [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: r.saddr } }] : [],
      },
    }));
    return JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, ...items] });
  }

  private nftApply(text: string): boolean {
    const handles = text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => Number(/^delete rule inet cni_plugins_masquerade masq_checks handle (\d+)$/.exec(l)?.[1] ?? NaN));
    if (handles.some((h) => !this.nft.some((r) => r.handle === h))) return false;
    this.nft = this.nft.filter((r) => !handles.includes(r.handle));
    return true;
  }
}
