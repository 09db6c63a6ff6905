import pkg from '../../package.json' with { type: 'json' };
import { stdio, type Io } from './output.js';
import { closest } from './usage.js';

/** From package.json, inlined by the bundler: one place to bump it. */
export const VERSION: string = pkg.version;

interface Command {
  /** One line for the top-level help. */
  readonly summary: string;
  /** Each command lives in its own module and is loaded on demand. */
  readonly load: () => Promise<(argv: string[]) => Promise<number>>;
}

/** Operator commands, in the order the help lists them. Adding one is one entry here. */
const COMMANDS: Readonly<Record<string, Command>> = {
  install: {
    summary: 'copy masq-janitor into the CNI bin dir and append it to the network lists whose bridge/ptp has ipMasq: true',
    load: async () => (await import('./install.js')).install,
  },
  uninstall: { summary: 'remove exactly what install added', load: async () => (await import('./install.js')).uninstall },
  check: { summary: "report what would break a container's teardown on this node (exit 0/1, --json)", load: async () => (await import('./check.js')).check },
  sweep: { summary: 'find (and with --apply remove) masquerade state leaked before the janitor was installed', load: async () => (await import('./sweep.js')).sweep },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const indent = ' '.repeat(width + 4);
  // Wrapped to 80 columns, continuation lines under the summary.
  const wrap = (text: string): string => {
    const out: string[] = [];
    let line = '';
    for (const word of text.split(' ')) {
      if (line !== '' && indent.length + line.length + word.length + 1 > 80) {
        out.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    return [...out, line].join(`\n${indent}`);
  };
  const lines = Object.entries(COMMANDS).map(([c, { summary }]) => `  ${c.padEnd(width)}  ${wrap(summary)}`);
  return `masq-janitor ${VERSION}
usage: masq-janitor <command> [options]

As a CNI plugin it is run by the container runtime (CNI_COMMAND set).
Operator commands:
${lines.join('\n')}

  masq-janitor help <command>   that command's options
  masq-janitor --version        print the version
`;
}

/** Own entries only: `masq-janitor constructor` is not a command. */
const commandNamed = (name: string): Command | undefined => (Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined);

function unknownCommand(io: Io, cmd: string): number {
  const hint = closest(cmd, Object.keys(COMMANDS));
  io.err(`masq-janitor: unknown command ${JSON.stringify(cmd)}${hint ? ` (did you mean ${hint}?)` : ''}\nRun 'masq-janitor --help' for the commands.\n`);
  return 2;
}

export async function cli(argv: string[], io: Io = stdio): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'help' && rest[0] !== undefined) {
    // `help sweep` is `sweep --help`: each command owns its help text.
    const command = commandNamed(rest[0]);
    return command ? (await command.load())(['--help']) : unknownCommand(io, rest[0]);
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.out(usage());
    return 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    io.out(`masq-janitor ${VERSION}\n`);
    return 0;
  }
  const command = cmd === undefined ? undefined : commandNamed(cmd);
  if (!command) return unknownCommand(io, cmd ?? '');
  return (await command.load())(rest);
}
