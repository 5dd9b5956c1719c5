/**
 * Property (fast-check): random fault schedules during a postcopy migration of a small guest,
 * through the real relay, with two real sim VM processes. Faults are cut, blackhole, latency
 * with jitter, a bandwidth cap and flapping, at random times, some of them landing while a
 * recovery is under way (a flap that outlives its hold, or a cut injected right after
 * `migrate resume`). After each fault an operator procedure does what a person would:
 * migrate-pause both sides if the link went silent, then migrate-recover + migrate resume,
 * retried as needed.
 *
 * Every run must end with both sides completed and the destination's memory verified. The only
 * other acceptable ends are documented: running out of the run's time budget while still paused
 * or recovering (everything kept, nothing wrong), and a destination that completed and verified
 * while the relay's blackhole swallowed its final verdict on the way to the source. Never verified === false, never
 * `failed` in postcopy, never a dead VM, and every state change is one the state table allows.
 *
 * Reproduce a failure with the seed fast-check prints: FC_SEED=<seed> FC_PATH=<path> npx vitest run <this file>
 */
import fs from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayLink } from '../../../src/link/relay.js';
import { canTransition } from '../../../src/sim/states.js';
import { DEFAULT_EMULATED_VERSION } from '../../../src/sim/versions.js';
import type { LinkEndpoints, LinkFault, MigrationStatus } from '../../../src/types.js';
import { ensureBuilt, RELAY_MAIN_DIST, setCaps, sleep, startVm, tempDir, type SimVmProcess } from '../../helpers/sim.js';

const RUN_BUDGET_MS = 25_000;

type Fault =
  | { kind: 'cut'; direction: 'both' | 'source-to-destination' | 'destination-to-source' }
  | { kind: 'blackhole'; direction: 'both' | 'source-to-destination' | 'destination-to-source' }
  | { kind: 'latency'; ms: number; jitterMs: number }
  | { kind: 'bandwidth'; bytesPerSec: number }
  | { kind: 'flap'; upMs: number; downMs: number; mode: 'cut' | 'blackhole'; count: number };

interface Step {
  delayMs: number;
  fault: Fault;
  holdMs: number;
}

interface Scenario {
  seed: number;
  walk: boolean;
  steps: Step[];
  /** Cut the link right after `migrate resume` on these recovery attempts (0-based). */
  cutDuringRecovery: number[];
}

const direction = fc.constantFrom('both', 'source-to-destination', 'destination-to-source') as fc.Arbitrary<
  'both' | 'source-to-destination' | 'destination-to-source'
>;
const fault: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({ kind: fc.constant('cut' as const), direction }),
  fc.record({ kind: fc.constant('blackhole' as const), direction }),
  fc.record({ kind: fc.constant('latency' as const), ms: fc.integer({ min: 1, max: 40 }), jitterMs: fc.integer({ min: 0, max: 20 }) }),
  fc.record({ kind: fc.constant('bandwidth' as const), bytesPerSec: fc.integer({ min: 64 * 1024, max: 4 * 1024 * 1024 }) }),
  fc.record({
    kind: fc.constant('flap' as const),
    upMs: fc.integer({ min: 100, max: 500 }),
    downMs: fc.integer({ min: 50, max: 400 }),
    mode: fc.constantFrom('cut' as const, 'blackhole' as const),
    count: fc.integer({ min: 1, max: 3 }),
  }),
);
const scenario: fc.Arbitrary<Scenario> = fc.record({
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  walk: fc.boolean(),
  steps: fc.array(fc.record({ delayMs: fc.integer({ min: 0, max: 1200 }), fault, holdMs: fc.integer({ min: 100, max: 1200 }) }), { minLength: 1, maxLength: 3 }),
  cutDuringRecovery: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { maxLength: 2 }),
});

let root: string;
beforeAll(async () => {
  await ensureBuilt();
  root = tempDir('pcl-faults-');
}, 240_000);
afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

interface Outcome {
  source: string;
  destination: string;
  verified: boolean | null;
  log: string[];
}

/** One migration under one fault schedule, with the operator's recovery procedure. */
async function runScenario(sc: Scenario): Promise<Outcome> {
  const dir = fs.mkdtempSync(`${root}/run-`);
  const log: string[] = [];
  const t0 = Date.now();
  const note = (m: string) => log.push(`${Date.now() - t0}ms ${m}`);
  const link = new RelayLink({ runtimeDir: dir, relayMain: RELAY_MAIN_DIST, seed: sc.seed });
  let src: SimVmProcess | null = null;
  let dst: SimVmProcess | null = null;
  try {
    const ep: LinkEndpoints = await link.start();
    [src, dst] = await Promise.all([
      startVm({ role: 'source', dir, memory: '16M', seed: sc.seed, readRate: 4000, dirtyRate: 400 }),
      startVm({ role: 'destination', dir, memory: '16M', seed: sc.seed }),
    ]);
    const s = src;
    const d = dst;
    const caps = { 'postcopy-ram': true, 'return-path': true, events: true, 'x-recovery-walk': sc.walk };
    await Promise.all([setCaps(s, caps), setCaps(d, caps)]);
    await s.exec('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 * 1024, 'max-postcopy-bandwidth': 3 * 1024 * 1024 });
    await d.exec('migrate-set-parameters', { 'x-walk-window': 32 });
    const uri = (h: { host: string; port: number }) => `tcp:${h.host}:${h.port}`;
    await d.exec('migrate-incoming', { uri: uri(ep.incoming.listen) });
    await s.exec('migrate', { uri: uri(ep.incoming.connect) });
    await sleep(300);
    await s.exec('migrate-start-postcopy');
    const deadline = t0 + RUN_BUDGET_MS;
    const statusBoth = async () => [(await s.status()) as MigrationStatus, (await d.status()) as MigrationStatus] as const;
    while (Date.now() < deadline) {
      const [a, b] = await statusBoth();
      if (a === 'postcopy-active' && b === 'postcopy-active') break;
      await sleep(50);
    }
    note(`postcopy started (${sc.walk ? 'walk' : 'bitmap'})`);

    // Progress: anything the destination receives, or the source sends.
    let lastProgress = -1;
    let lastMoved = Date.now();
    const progressed = async (): Promise<boolean> => {
      const p = await d.pages();
      const q = await s.exec<{ ram?: { transferred?: number } }>('query-migrate');
      const now = p.received + p['duplicates-discarded'] + p.resent + (q.ram?.transferred ?? 0);
      if (now !== lastProgress) {
        lastProgress = now;
        lastMoved = Date.now();
        return true;
      }
      return false;
    };

    let attempts = 0;
    const tryQmp = async (vm: SimVmProcess, cmd: string, args?: Record<string, unknown>, oob = false) => {
      try {
        await (oob ? vm.qmp.executeOob(cmd, args) : vm.exec(cmd, args));
        note(`${vm.role}: ${cmd} ok`);
      } catch (e) {
        note(`${vm.role}: ${cmd} -> ${(e as Error).message}`);
      }
    };
    /** One pass of the operator's procedure; returns true once both sides completed. */
    const operate = async (): Promise<boolean> => {
      const [a, b] = await statusBoth();
      if (a === 'completed' && b === 'completed') return true;
      // The destination finished; only its verdict (MIG_RP_MSG_SHUT) may still be missing at the
      // source (see the property below): nothing is left for the operator to recover.
      if (b === 'completed') return true;
      if (a === 'failed' || b === 'failed') throw new Error(`a side failed during postcopy: source ${a}, destination ${b}`);
      const moved = await progressed();
      if (a === 'postcopy-paused' && b === 'postcopy-paused') {
        await tryQmp(d, 'migrate-recover', { uri: uri(ep.recover.listen) }, true);
        await tryQmp(s, 'migrate', { uri: uri(ep.recover.connect), resume: true });
        if (sc.cutDuringRecovery.includes(attempts)) {
          note('cut during the recovery handshake');
          await link.apply({ kind: 'cut' });
          await sleep(100);
          await link.restore();
        }
        attempts++;
        lastMoved = Date.now();
        await sleep(300);
        return false;
      }
      // A silent link (blackhole, or bytes lost in it): the counters stop. After a grace
      // period the operator pauses whatever is not paused yet, as the blackhole lab teaches.
      if (!moved && Date.now() - lastMoved > 2000) {
        note(`no progress for 2 s (source ${a}, destination ${b}): migrate-pause`);
        if (a === 'postcopy-active' || a === 'postcopy-recover') await tryQmp(s, 'migrate-pause', undefined, true);
        if (b === 'postcopy-active' || b === 'postcopy-recover') await tryQmp(d, 'migrate-pause', undefined, true);
        lastMoved = Date.now();
      }
      await sleep(100);
      return false;
    };

    // The fault schedule, with the operator working in between.
    for (const step of sc.steps) {
      const until = Date.now() + step.delayMs;
      while (Date.now() < until) if (await operate()) break;
      const [a, b] = await statusBoth();
      if (a === 'completed' && b === 'completed') break;
      note(`apply ${JSON.stringify(step.fault)}`);
      await link.apply(step.fault as LinkFault);
      await sleep(step.holdMs);
      // A flap ends by itself (it always ends up) and may still be running into the recovery;
      // everything else is lifted after its hold.
      if (step.fault.kind !== 'flap') await link.restore();
      note('link restored');
    }
    while (Date.now() < deadline) {
      if (await operate()) break;
    }
    await link.restore().catch(() => {});
    const pages = await d.pages();
    const out: Outcome = { source: await s.status(), destination: await d.status(), verified: pages.verified, log };
    note(`end: source ${out.source}, destination ${out.destination}, verified ${out.verified}, recoveries ${pages.recoveries}`);

    // Invariants that hold whatever the outcome.
    expect(s.alive() && d.alive(), log.join('\n')).toBe(true);
    for (const vm of [s, d]) {
      let prev: MigrationStatus = 'none';
      for (const next of vm.statuses as MigrationStatus[]) {
        expect(canTransition(vm.role, DEFAULT_EMULATED_VERSION, prev, next), `${vm.role}: ${prev} -> ${next}\n${log.join('\n')}`).toBe(true);
        prev = next;
      }
    }
    return out;
  } finally {
    await Promise.all([src?.stop(), dst?.stop()]);
    await link.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('random fault schedules during postcopy', () => {
  it('end completed and verified (or still recoverable at the time limit), never with a wrong page', async () => {
    const outcomes: Outcome[] = [];
    const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const o = await runScenario(sc);
        outcomes.push(o);
        if (process.env.FAULTS_VERBOSE) console.log(`${JSON.stringify(sc)}\n  ${o.log.join('\n  ')}`);
        const detail = `${JSON.stringify(sc)}\n${o.log.join('\n')}`;
        expect(o.verified, detail).not.toBe(false);
        if (o.source === 'completed' || o.destination === 'completed') {
          expect(o.verified, detail).toBe(true);
          // Both completed, or: the destination completed and verified while the source is still
          // paused, because the verdict (MIG_RP_MSG_SHUT, the last message on the return path) was
          // dropped by a relay blackhole that had already acked it — bytes a real TCP peer would
          // have retransmitted once the blackhole lifted. The guest is whole on the destination;
          // the source waits for an operator who can see that in its query-migrate.
          if (o.source !== 'completed') {
            expect(o.destination, detail).toBe('completed');
            expect(['postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover', 'postcopy-active'], detail).toContain(o.source);
          }
        } else {
          // The documented unrecoverable-for-now end: out of time, with everything kept.
          expect(['postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-recover-setup'], detail).toContain(o.source);
          expect(['postcopy-active', 'postcopy-paused', 'postcopy-recover'], detail).toContain(o.destination);
        }
      }),
      { numRuns: 6, seed, path: process.env.FC_PATH, endOnFailure: true, verbose: 1 },
    );
    // The procedure works: most runs finish inside their budget.
    const completed = outcomes.filter((o) => o.verified === true).length;
    expect(completed, outcomes.map((o) => o.log.slice(-3).join(' | ')).join('\n')).toBeGreaterThanOrEqual(Math.ceil(outcomes.length / 2));
  }, 240_000);
});
