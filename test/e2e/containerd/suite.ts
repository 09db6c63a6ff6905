import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Conflist } from '../../support/conflist.js';
import { describeProc } from '../../support/proc.js';
import { withJanitor } from './conflists.js';
import { chainName, EMPTY_CENSUS, show, type NatCensus } from './nat.js';
import { ContainerdWorld, disposeAllWorlds, type Lifecycle } from './world.js';

/** One runtime default network, as the tests drive it. */
export interface Shape {
  /** Short, for names of netns and temp dirs. */
  readonly label: string;
  /** How the runtime names the file in /etc/cni/net.d. */
  readonly fileName: string;
  readonly list: Conflist;
  /** Families bridge masquerades in (one chain per container in each). */
  readonly families: readonly (4 | 6)[];
  /** What `ip -o addr show dev eth0` prints inside a container once ADD gave it its addresses. */
  readonly addresses: readonly RegExp[];
}

export const RUNS = 5;
/** Short and foreground: prints the addresses ADD gave the container, then exits. */
const COMMAND = 'ip -o addr show dev eth0';

async function lifecycles(world: ContainerdWorld, prefix: string, shape: Shape): Promise<Lifecycle[]> {
  const done: Lifecycle[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const l = await world.lifecycle(`${prefix}-${i}`, COMMAND);
    // ctr exits non-zero when ADD or DEL fails (a failing plugin halts libcni's chain).
    expect(l.result.exitCode, `ctr run ${l.id}:\n${describeProc(l.result)}`).toBe(0);
    for (const a of shape.addresses) expect(l.result.stdout, `addresses inside ${l.id}`).toMatch(a);
    done.push(l);
  }
  const ms = done.map((l) => l.result.ms);
  console.info(`[containerd e2e] ${world.label}: ${RUNS} ctr run --rm --cni lifecycles, ${Math.min(...ms)}-${Math.max(...ms)} ms each`);
  return done;
}

function expectNoMasquerade(family: 4 | 6, c: NatCensus): void {
  expect(c, `IPv${family} nat after the runs: ${show(c)}`).toEqual(EMPTY_CENSUS);
}

/** What is true after every run whether or not the janitor is there: DEL went through bridge and IPAM. */
function expectDelCompleted(world: ContainerdWorld, shape: Shape): void {
  expect(world.ipamReservations(shape.list.name), 'host-local reservations').toEqual([]);
  expect(world.cachedResults(), "libcni's result cache (kept when a DEL plugin fails)").toEqual([]);
}

/** The janitor test and its control for one conflist shape. */
export function containerdSuite(title: string, shape: Shape): void {
  describe(title, () => {
    // No beforeAll guard: a failing beforeAll makes vitest report the tests as skipped.
    // ContainerdWorld.start() runs requireContainerdEnvironment() first, so each test FAILS with its message.
    afterAll(() => disposeAllWorlds());

    it(`with masq-janitor appended: ${RUNS} lifecycles leave no CNI chain, no CNI-commented rule in either nat table, and no IPAM reservation`, async () => {
      const world = await ContainerdWorld.start(`${shape.label}-jan`);
      onTestFinished(() => world.dispose());
      world.installConflist(shape.fileName, withJanitor(shape.list));

      await lifecycles(world, 'jan', shape);

      const nat = await world.nat();
      expectNoMasquerade(4, nat.v4);
      expectNoMasquerade(6, nat.v6);
      expectDelCompleted(world, shape);
    });

    it(`control, conflist as shipped: the same ${RUNS} lifecycles leak one masquerade chain per run (IPv${shape.families.join(' and IPv')})`, async () => {
      const world = await ContainerdWorld.start(`${shape.label}-ctl`);
      onTestFinished(() => world.dispose());
      world.installConflist(shape.fileName, shape.list);

      const runs = await lifecycles(world, 'ctl', shape);

      const nat = await world.nat();
      const expectedChains = runs.map((l) => chainName(shape.list.name, l.cniContainerId)).sort();
      for (const family of [4, 6] as const) {
        const c = family === 4 ? nat.v4 : nat.v6;
        if (!shape.families.includes(family)) {
          expectNoMasquerade(family, c);
          continue;
        }
        expect(c.masqChains, `IPv${family}: one leaked chain per run, named after "${shape.list.name}" + default-<id>`).toEqual(expectedChains);
        expect(c.cniChains, `IPv${family}: no other CNI chain in nat`).toEqual(expectedChains);
        for (const l of runs) {
          const mine = c.commentedRules.filter((r) => r.includes(`id: \\"${l.cniContainerId}\\"`));
          expect(mine.length, `IPv${family}: ${l.cniContainerId}'s jump, ACCEPT and MASQUERADE:\n${mine.join('\n')}`).toBe(3);
        }
        expect(c.commentedRules.length, show(c)).toBe(3 * RUNS);
      }
      // bridge's DEL with CNI_NETNS="" still releases the address: only the masquerade state leaks.
      expectDelCompleted(world, shape);
    });
  });
}
