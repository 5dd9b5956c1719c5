/**
 * `compare`'s engine: the same guest on the same link, migrated once per strategy, one after
 * another, each on a fresh pair of VMs started by the orchestrator (src/driver/orchestrator.ts)
 * through the relay. While a migration runs, both sides' guest work is sampled; at the end the
 * samples become the table's columns (src/compare/metrics.ts).
 *
 * A precopy that has not converged within the bound (passes or seconds) is cancelled with
 * migrate_cancel, as an operator would: QEMU itself would go on forever.
 */
import { Orchestrator, tcpUri } from '../driver/orchestrator.js';
import type { GuestSpec, GuestWork, VmBackend } from '../driver/backend.js';
import { QemuBackend } from '../driver/qemu-backend.js';
import { makeVmBackend } from '../driver/select-backend.js';
import { RelayLink } from '../link/relay.js';
import { QmpError } from '../qmp/error.js';
import type { MigrationStatus, Side } from '../types.js';
import { boundReached, recoverTo90, unconvergedReason, workLost, type WorkSample } from './metrics.js';
import { planStrategies, type StrategyPlan } from './strategies.js';
import type { CompareOptions } from './options.js';

export { formatCompareTable } from './table.js';

/** One strategy's row. Null where a number could not be measured (`guestNote` says why). */
export interface StrategyResult {
  strategy: string;
  completed: boolean;
  /** Why not completed: 'did not converge', 'max throttle reached', 'refused: …', 'failed: …'; null when completed. */
  reason: string | null;
  /** The bound an unconverged precopy reached, in words ("30 passes", "20 s"). */
  bound: string | null;
  totalMs: number;
  /** query-migrate's `downtime` (QEMU's; the sim's stop-to-resume); null when it never switched over. */
  downtimeMs: number | null;
  /** ram.transferred at the end. */
  bytesSent: number;
  /** Precopy passes (dirty syncs after the one at setup). */
  passes: number;
  /** The highest cpu-throttle-percentage seen. */
  throttlePct: number;
  guestWorkLostPct: number | null;
  guestWorkLostS: number | null;
  worstStallMs: number | null;
  recoverTo90Ms: number | null;
  /** Why the guest columns are empty, or what they do not show. */
  guestNote?: string;
  /** What the reader should know about this row (e.g. the sim does not model a difference). */
  note?: string;
}

/** What a caller sees while the comparison runs. */
export type CompareProgress =
  | { kind: 'start'; index: number; total: number; strategy: string; description: string }
  | { kind: 'tick'; index: number; total: number; strategy: string; elapsedMs: number; status: MigrationStatus; passes: number; throttlePct: number; bytesSent: number }
  | { kind: 'done'; index: number; total: number; result: StrategyResult };

export interface CompareControl {
  /** Aborting stops the running strategy's VMs and link; runCompare then rejects. */
  signal?: AbortSignal;
  /** A backend already built (tests, a lab's run); else one is made from the options. */
  backend?: VmBackend;
}

const POLL_MS = 250;
/** After completion or cancel, keep sampling this long so the guest's return to speed is seen. */
const SETTLE_MS = 1500;
/** QEMU's default max-cpu-throttle (the sim's too), when the options do not set one. */
const QEMU_MAX_CPU_THROTTLE = 99;

export class CompareAborted extends Error {
  constructor() {
    super('the comparison was stopped');
  }
}

/** Run every strategy in turn; never leaves a process behind. Rejects only on abort or a broken setup. */
export async function runCompare(options: CompareOptions, onProgress: (p: CompareProgress) => void = () => {}, control: CompareControl = {}): Promise<StrategyResult[]> {
  const plans = planStrategies(options.strategies, options.postcopyAfter);
  const backend = control.backend ?? (await makeVmBackend(options.backend, { qemu: options.qemu, emulate: options.emulate }));
  const results: StrategyResult[] = [];
  for (const [index, plan] of plans.entries()) {
    if (control.signal?.aborted) throw new CompareAborted();
    onProgress({ kind: 'start', index, total: plans.length, strategy: plan.name, description: plan.description });
    const result = await runStrategy(plan, options, await backendFor(plan, backend), (t) => onProgress({ ...t, kind: 'tick', index, total: plans.length, strategy: plan.name }), control.signal);
    results.push(result);
    onProgress({ kind: 'done', index, total: plans.length, result });
  }
  return results;
}

/**
 * dirty-limit on QEMU needs KVM's dirty ring, which is a machine option (`-accel
 * kvm,dirty-ring-size=`): that strategy gets its own QEMU backend with it, so the others keep
 * QEMU's usual dirty bitmap. Where the ring cannot be had (QEMU before 8.1, TCG), the strategy's
 * migrate-set-capabilities says so as QEMU does.
 */
async function backendFor(plan: StrategyPlan, shared: VmBackend): Promise<VmBackend> {
  if (!(shared instanceof QemuBackend) || !plan.capabilities['dirty-limit'] || shared.opts.dirtyRing) return shared;
  const ring = new QemuBackend({ ...shared.opts, dirtyRing: true });
  return ring.dirtyLimitRefusal() ? shared : ring;
}

/** The guest a comparison runs, as the orchestrator takes it. */
export function guestSpec(o: CompareOptions): GuestSpec {
  return { ...o.guest, seed: o.seed };
}

interface QueryMigrate {
  status?: MigrationStatus;
  'total-time'?: number;
  downtime?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  ram?: { transferred?: number; 'dirty-sync-count'?: number };
}

/** A side that does no work: a destination that has exited. */
const NO_WORK: GuestWork = { ops: 0, opsPerSecond: 0, nominalOpsPerSecond: 0, runningMs: 0, throttlePercentage: 0, worstStallMs: 0 };

type Tick = { elapsedMs: number; status: MigrationStatus; passes: number; throttlePct: number; bytesSent: number };

async function runStrategy(plan: StrategyPlan, o: CompareOptions, backend: VmBackend, tick: (t: Tick) => void, signal?: AbortSignal): Promise<StrategyResult> {
  let died: string | null = null;
  const orch = new Orchestrator({
    guest: guestSpec(o),
    makeLink: (dir) => new RelayLink({ runtimeDir: dir, seed: o.seed }),
    backend,
    onEvent: () => {},
    onVmExit: (side, info) => {
      died ??= `the ${side} VM exited (${info.signal ?? `exit code ${info.code}`}): ${info.stderrTail.slice(-2).join(' | ')}`;
    },
  });
  // One stop, awaited by whoever comes last (an abort starts it; the finally waits for it).
  let stopping: Promise<void> | null = null;
  const stop = () => (stopping ??= orch.stop());
  const onAbort = () => void stop();
  signal?.addEventListener('abort', onAbort);
  const result = base(plan.name);
  try {
    const ep = await orch.start();
    for (const f of o.link) await orch.link!.apply(f);
    const caps = { events: true, ...plan.capabilities };
    const list = Object.entries(caps).map(([capability, state]) => ({ capability, state }));
    try {
      for (const side of ['source', 'destination'] as const) await orch.qmp(side).execute('migrate-set-capabilities', { capabilities: list });
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
      // The version in use does not have it (dirty-limit before 8.1): say so, the others still run.
      return { ...result, reason: `refused: ${e.desc}`, note: `QEMU ${backend.qemuVersion} refused migrate-set-capabilities` };
    }
    // The link is the bottleneck, not QEMU's default max-bandwidth (128 MiB/s in 7.2).
    const params: Record<string, number | string | boolean> = { 'max-bandwidth': 100 * 1024 ** 3, ...o.parameters };
    if (o.maxCpuThrottle !== undefined && plan.capabilities['auto-converge']) params['max-cpu-throttle'] = o.maxCpuThrottle;
    await orch.qmp('source').execute('migrate-set-parameters', params);
    const src = () => orch.qmp('source');
    const readGuest = backend.readGuest?.bind(backend);
    const samples: WorkSample[] = [];
    let worstStall = 0;
    /** Why a side cannot see vCPU stalls (QEMU without postcopy-blocktime), once one said so. */
    let stallBlind: string | undefined;
    let nominal = 0;
    let guestUnavailable = readGuest ? null : `the ${backend.kind} backend does not read the guest's work yet`;
    const sample = async (): Promise<void> => {
      if (!readGuest || guestUnavailable) return;
      const before = performance.now();
      // A destination that exited has done all the work it will (QEMU's leaves after a cancelled
      // incoming migration): the source's count is the guest's. orch.qmp throws for it, and threw
      // out of this sample, failing a cancelled precopy with "the destination VM is not running".
      const read = async (s: Side): Promise<GuestWork | null> => {
        if (s === 'destination' && !orch.running(s)) return { ...NO_WORK, nominalOpsPerSecond: nominal };
        return readGuest(s, orch.qmp(s));
      };
      const sides = await Promise.all((['source', 'destination'] as Side[]).map((s) => read(s).catch(() => null)));
      const t = (before + performance.now()) / 2;
      if (sides.some((g) => g === null)) {
        guestUnavailable ??= `the ${backend.kind} backend could not read the guest's work`;
        return;
      }
      const [s, d] = sides as GuestWork[];
      nominal = s.nominalOpsPerSecond;
      if (s.worstStallMs === null || d.worstStallMs === null) stallBlind ??= (s.worstStallMs === null ? s.note : d.note) ?? `the ${backend.kind} backend cannot see vCPU stalls`;
      worstStall = Math.max(worstStall, s.worstStallMs ?? 0, d.worstStallMs ?? 0);
      samples.push({ t, ops: s.ops + d.ops });
    };

    await sample();
    const t0 = performance.now();
    await orch.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
    await src().execute('migrate', { uri: tcpUri(ep.incoming.connect) });
    let switched = false;
    let last: QueryMigrate = {};
    let finish: 'completed' | 'cancelled' | 'failed' | null = null;
    // From when a slowdown is the strategy's doing: the switchover, or the first dirty sync
    // (a throttle starts at a sync, never before).
    let eventAt = Infinity;
    const hardLimitMs = Math.max(120_000, o.maxSeconds * 5000);
    for (;;) {
      if (signal?.aborted) throw new CompareAborted();
      if (died) throw new Error(died);
      const q = await src().execute<QueryMigrate>('query-migrate', undefined, { timeoutMs: 5000 });
      last = q;
      const status = q.status ?? 'none';
      const passes = Math.max(0, (q.ram?.['dirty-sync-count'] ?? 1) - 1);
      result.passes = Math.max(result.passes, passes);
      result.throttlePct = Math.max(result.throttlePct, q['cpu-throttle-percentage'] ?? 0);
      result.bytesSent = q.ram?.transferred ?? result.bytesSent;
      const elapsed = performance.now() - t0;
      if (eventAt === Infinity && (passes >= 1 || (status !== 'setup' && status !== 'active'))) eventAt = performance.now();
      tick({ elapsedMs: elapsed, status, passes, throttlePct: q['cpu-throttle-percentage'] ?? 0, bytesSent: result.bytesSent });
      if (status === 'completed') {
        finish = 'completed';
        break;
      }
      if (status === 'failed' || status === 'cancelled') {
        finish = 'failed';
        result.reason = `failed: ${q['error-desc'] ?? status}`;
        break;
      }
      const inPostcopy = status.startsWith('postcopy') || switched;
      if (!switched && plan.postcopyAfterPasses !== null && status === 'active' && passes >= plan.postcopyAfterPasses) {
        await src().execute('migrate-start-postcopy');
        switched = true;
      } else if (!inPostcopy && status !== 'device') {
        const bound = boundReached(passes, elapsed, { maxPasses: o.maxPasses, maxSeconds: o.maxSeconds });
        if (bound) {
          result.bound = bound;
          result.reason = unconvergedReason(result.throttlePct, plan.capabilities['auto-converge'] ? (o.maxCpuThrottle ?? QEMU_MAX_CPU_THROTTLE) : null);
          await cancel(src, (q2) => (last = q2));
          // It may have converged between the last look and the cancel.
          finish = last.status === 'completed' ? 'completed' : 'cancelled';
          if (finish === 'completed') result.reason = result.bound = null;
          break;
        }
      } else if (elapsed > hardLimitMs) {
        // Postcopy always finishes on a working link; a run this long is broken, not slow.
        result.reason = `failed: still ${status} after ${Math.round(elapsed / 1000)} s`;
        finish = 'failed';
        break;
      }
      await Promise.all([sample(), sleep(POLL_MS)]);
    }
    result.completed = finish === 'completed';
    // QEMU 7.2 has answered completed with total-time 0 and downtime 0 (twice in four loaded
    // precopy runs near their bound; not pinned down): then the run's own clock, and no downtime.
    const timed = finish === 'completed' && (last['total-time'] ?? 0) > 0;
    result.totalMs = Math.round(timed ? last['total-time']! : performance.now() - t0);
    result.downtimeMs = timed && last.downtime !== undefined ? last.downtime : null;
    result.bytesSent = last.ram?.transferred ?? result.bytesSent;
    // Watch the guest a little longer: the throttle lifts, the last pages arrive.
    const settleEnd = performance.now() + SETTLE_MS;
    while (performance.now() < settleEnd && !died) await Promise.all([sample(), sleep(POLL_MS)]);
    await sample();
    if (guestUnavailable || samples.length < 2) {
      result.guestNote = guestUnavailable ?? 'too few samples of the guest';
    } else {
      const first = samples[0]!;
      const end = samples[samples.length - 1]!;
      const lost = workLost(nominal, end.t - first.t, end.ops - first.ops);
      result.guestWorkLostPct = round(lost.pct, 2);
      result.guestWorkLostS = round(lost.seconds, 2);
      // Only postcopy makes a vCPU wait for a page: without it, 0 is known, not guessed.
      const stallUnknown = switched || last.status?.startsWith('postcopy') ? stallBlind : undefined;
      result.worstStallMs = stallUnknown ? null : Math.round(worstStall);
      if (stallUnknown) result.guestNote = stallUnknown;
      result.recoverTo90Ms = recoverTo90(samples, nominal, eventAt === Infinity ? end.t : eventAt);
    }
    if (plan.name === 'precopy-postcopy-ram' && backend.kind === 'sim') {
      result.note = 'the sim does not model a cost of postcopy-ram during precopy: compare on --backend qemu';
    }
    return result;
  } catch (e) {
    if (signal?.aborted) throw new CompareAborted();
    return { ...result, completed: false, reason: `failed: ${(e as Error).message}` };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await stop();
  }
}

/** migrate_cancel, then wait until the source says cancelled (QEMU passes through cancelling). */
async function cancel(src: () => { execute<T>(c: string, a?: Record<string, unknown>, o?: { timeoutMs?: number }): Promise<T> }, seen: (q: QueryMigrate) => void): Promise<void> {
  await src().execute('migrate_cancel');
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    const q = await src().execute<QueryMigrate>('query-migrate', undefined, { timeoutMs: 5000 });
    seen(q);
    if (q.status === 'cancelled' || q.status === 'failed' || q.status === 'completed') return;
    await sleep(100);
  }
  throw new Error('migrate_cancel: the source did not reach cancelled within 10 s');
}

function base(strategy: string): StrategyResult {
  return {
    strategy,
    completed: false,
    reason: null,
    bound: null,
    totalMs: 0,
    downtimeMs: null,
    bytesSent: 0,
    passes: 0,
    throttlePct: 0,
    guestWorkLostPct: null,
    guestWorkLostS: null,
    worstStallMs: null,
    recoverTo90Ms: null,
  };
}

const round = (n: number, d: number) => Math.round(n * 10 ** d) / 10 ** d;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

