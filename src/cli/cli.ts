import { stdio } from './output.js';

/** Operator commands. Each lives in its own module and is loaded on demand. */
const COMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  sweep: async () => (await import('./sweep.js')).sweep,
  install: async () => (await import('./install.js')).install,
  uninstall: async () => (await import('./install.js')).uninstall,
  check: async () => (await import('./check.js')).check,
};

const USAGE = `usage: masq-janitor <command> [options]

As a CNI plugin it is run by the container runtime (CNI_COMMAND set).
Operator commands:
  install      copy masq-janitor into the CNI bin dir and append it to the
               network lists whose bridge/ptp has ipMasq: true
  uninstall    remove what install added
  check        report what would break a container's teardown (exit 0/1, --json)
  sweep        find (and with --apply remove) masquerade state leaked before the janitor was installed
  --help       this text
  --version    print the version
`;

export async function cli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    stdio.out(USAGE);
    return 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    stdio.out('masq-janitor 0.1.0\n');
    return 0;
  }
  const load = cmd === undefined ? undefined : COMMANDS[cmd];
  if (!load) {
    stdio.err(`masq-janitor: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
    return 2;
  }
  return (await load())(rest);
}
