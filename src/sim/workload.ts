/**
 * The guest: K vCPUs running a memory workload at a set rate of reads and writes. Each access
 * goes through the owning VM's `access` hook, which on the destination may block the thread
 * that made it on a missing page (as a userfaultfd fault would); the others go on.
 *
 * Each vCPU runs T guest threads (default 1), each with its own access stream, taking turns
 * one access at a time. With async page faults a thread that touches a missing page blocks
 * alone and its vCPU runs another thread, so postcopy blocks threads, not vCPUs (Gilbert in
 * the 2016 thread); the vCPU stalls only when all its threads are blocked. The threads share
 * their vCPU's rate: T threads do not make a vCPU faster. The vCPU state (the threads' RNGs
 * and positions, the op count) is plain data so it can cross the wire as "device state" at
 * switchover, and the guest carries on at the destination where it left off.
 *
 * During precopy the source may throttle the vCPUs (src/sim/throttle.ts): a vCPU throttled by
 * p% runs only (100-p)% of the time, as QEMU's cpu_throttle_thread makes it sleep the rest; a
 * dirty-rate limit lets each vCPU write at most so many pages per period and stops it for the
 * rest of the period once they are written (as KVM's dirty ring full exits make it sleep).
 */
import type { PagesInfo } from '../types.js';
import { task, taskStart } from './loop-stats.js';

export type WorkloadKind = 'sequential' | 'random' | 'hotset';

export interface WorkloadSpec {
  kind: WorkloadKind;
  vcpus: number;
  /** Reads per second per vCPU. */
  readRate: number;
  /** Writes per second per vCPU. */
  dirtyRate: number;
  /** hotset: fraction of pages that are hot, and share of accesses that go to them. */
  hotFraction: number;
  hotShare: number;
  seed: number;
  /** Guest threads per vCPU (default 1): see the header. */
  threadsPerVcpu?: number;
}

/** The most threads per vCPU the sim takes (so the device state stays a small frame). */
export const MAX_THREADS_PER_VCPU = 64;

/** One thread's access stream. */
export interface ThreadState {
  rng: number;
  pos: number;
}

/**
 * A vCPU's device state. With one thread it is exactly the format from before threads
 * ({rng, pos, ops}); with more, `rng`/`pos` are still thread 0's (so a reader that knows no
 * threads continues thread 0) and `threads` lists every thread, `next` the one whose turn is next.
 */
export interface VcpuState extends ThreadState {
  /** Operations done by the vCPU, all its threads. */
  ops: number;
  threads?: ThreadState[];
  next?: number;
}

/** What an access returns: done, or blocked until `unblock(vcpu)` is called. */
export type AccessResult = 'ok' | 'blocked';

export interface MemoryHooks {
  access(vcpu: number, page: number, write: boolean): AccessResult;
}

const TICK_MS = 10;
/** The span the guest's ops-per-second is measured over. */
export const RATE_WINDOW_MS = 2000;

function mulberry32(a: number): [number, number] {
  a = (a + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, a];
}

interface Thread extends ThreadState {
  blockedOn: { page: number; write: boolean } | null;
}

interface Vcpu {
  threads: Thread[];
  /** The thread whose turn is next (round-robin). */
  next: number;
  ops: number;
  budget: number;
  /** Operations done on this side (not carried over with the device state). */
  done: number;
  /** When the vCPU stalled (every thread blocked), null while it runs; the longest stall and all of them. */
  stalledSince: number | null;
  longestStallMs: number;
  stalledMs: number;
  /** Pages written in the current dirty-limit period. */
  periodWrites: number;
}

/** What x-query-guest reports (ours): the guest's work and stalls on this side, for comparisons. */
export interface GuestAccounting {
  /** Operations done on this side, all vCPUs (not the ones carried over at switchover). */
  ops: number;
  /** Operations in all, carried over ones included (PagesInfo.guest.progress). */
  progress: number;
  'ops-per-second': number;
  'window-ms': number;
  /** Operations per second of the unthrottled, unblocked guest: its normal speed. */
  'nominal-ops-per-second': number;
  /** Time the guest has run on this side (between start and stop), ms. */
  'running-ms': number;
  /** The vCPU throttle in force, percent (0: none). */
  'throttle-percentage': number;
  /** The per-vCPU dirty-rate limit in force, pages per second (absent: none). */
  'dirty-limit-pages-per-second'?: number;
  'threads-per-vcpu': number;
  /**
   * Per vCPU: `blocked` when every thread is blocked (the vCPU stalls), the threads blocked now,
   * and the longest stall (every thread blocked at once; a thread's own wait is not a stall).
   */
  vcpus: Array<{ ops: number; blocked: boolean; 'blocked-threads': number; 'longest-stall-ms': number }>;
}

/** The vCPUs' stalls on this side: blocked now, and stall time summed (vCPU·ms) and of the worst vCPU. */
export interface VcpuStalls {
  blocked: number;
  totalMs: number;
  worstMs: number;
  /** Each vCPU's stall time, ms (QEMU's postcopy-vcpu-blocktime). */
  perVcpuMs: number[];
  /** The time every vCPU was stalled at once, ms (QEMU's postcopy-blocktime: "overlapped"). */
  allMs: number;
}

export class Guest {
  private readonly vcpus: Vcpu[];
  private timer: NodeJS.Timeout | null = null;
  private lastTick = 0;
  private readonly writeShare: number;
  private readonly opsPerMs: number;
  readonly threadsPerVcpu: number;
  /** Samples of `done` (operations done on this side), for the guest's rate. */
  private rateWindow: { t: number; done: number }[] = [];
  /** Operations done here, never the ones carried over with the device state at switchover. */
  private done = 0;
  /** Since when every vCPU has been stalled at once (null: one runs), and such time before. */
  private allStalledSince: number | null = null;
  private allStalledMs = 0;
  /** The vCPU throttle, percent: each vCPU runs (100 - throttle)% of the time. */
  private throttle = 0;
  /** Pages each vCPU may write per dirty-limit period, and the period; null = no limit. */
  private dirtyLimit: { pagesPerSec: number; periodMs: number } | null = null;
  private periodStart = 0;
  private runningMs = 0;
  private startedAt = 0;

  constructor(
    readonly spec: WorkloadSpec,
    private readonly pageCount: number,
    private readonly hooks: MemoryHooks,
  ) {
    const total = spec.readRate + spec.dirtyRate;
    this.writeShare = total > 0 ? spec.dirtyRate / total : 0;
    this.opsPerMs = total / 1000;
    const T = spec.threadsPerVcpu ?? 1;
    if (!(Number.isInteger(T) && T >= 1 && T <= MAX_THREADS_PER_VCPU)) {
      throw new Error(`threads per vCPU ${T}: expected a whole number from 1 to ${MAX_THREADS_PER_VCPU}`);
    }
    this.threadsPerVcpu = T;
    const streams = Math.max(1, spec.vcpus) * T;
    this.vcpus = [];
    for (let i = 0; i < spec.vcpus; i++) {
      const threads: Thread[] = [];
      for (let t = 0; t < T; t++) {
        // Thread 0 is seeded and placed as the vCPU was before threads, so one thread per vCPU
        // gives the same accesses as ever; the others get their own stream and stretch of memory.
        threads.push({
          rng: (spec.seed * 0x9e3779b1 + i * 0x85ebca6b + t * 0xc2b2ae35) >>> 0,
          pos: Math.floor(((i * T + t) * pageCount) / streams),
          blockedOn: null,
        });
      }
      this.vcpus.push({ threads, next: 0, ops: 0, budget: 0, done: 0, stalledSince: null, longestStallMs: 0, stalledMs: 0, periodWrites: 0 });
    }
  }

  get running(): boolean {
    return this.timer !== null;
  }

  /** Total guest operations completed, all vCPUs. */
  get progress(): number {
    let s = 0;
    for (const v of this.vcpus) s += v.ops;
    return s;
  }

  /** vCPUs stalled now: every one of their threads blocked. */
  get blockedCount(): number {
    return this.vcpus.filter((v) => v.stalledSince !== null).length;
  }

  /**
   * The vCPUs' stalls (every thread blocked) on this side, a stall under way counted for as
   * long as it has lasted: the destination's blocktime, which QEMU counts per vCPU.
   */
  stalls(now = performance.now()): VcpuStalls {
    let blocked = 0;
    let totalMs = 0;
    let worstMs = 0;
    const perVcpuMs: number[] = [];
    for (const v of this.vcpus) {
      const ms = v.stalledMs + (v.stalledSince !== null ? now - v.stalledSince : 0);
      if (v.stalledSince !== null) blocked++;
      totalMs += ms;
      worstMs = Math.max(worstMs, ms);
      perVcpuMs.push(ms);
    }
    const allMs = this.allStalledMs + (this.allStalledSince !== null ? now - this.allStalledSince : 0);
    return { blocked, totalMs, worstMs, perVcpuMs, allMs };
  }

  /** A vCPU stalled at `now`: when it was the last one running, every vCPU now waits. */
  private stalled(v: Vcpu, now: number): void {
    v.stalledSince = now;
    if (this.allStalledSince === null && this.vcpus.every((x) => x.stalledSince !== null)) this.allStalledSince = now;
  }

  /**
   * Guest operations done on this side per second, over the last RATE_WINDOW_MS (about two
   * seconds, so one slow tick or a poll that lands between ticks does not swing it). The
   * operations imported with the device state at switchover were done on the other side and
   * never count here. `windowMs` is the time the rate covers: 0 before there are two samples
   * (the rate is not known yet, which is not the same as a guest making no progress).
   */
  rate(now = performance.now()): { opsPerSecond: number; windowMs: number } {
    this.rateWindow.push({ t: now, done: this.done });
    while (this.rateWindow.length > 2 && now - this.rateWindow[1].t >= RATE_WINDOW_MS) this.rateWindow.shift();
    const first = this.rateWindow[0];
    const dt = now - first.t;
    return { opsPerSecond: dt > 0 ? ((this.done - first.done) * 1000) / dt : 0, windowMs: Math.round(dt) };
  }

  /** The rate alone (see `rate`). */
  opsPerSecond(now = performance.now()): number {
    return this.rate(now).opsPerSecond;
  }

  /** What x-query-pages reports about the guest (PagesInfo.guest). */
  info(now = performance.now()): PagesInfo['guest'] {
    const r = this.rate(now);
    return { progress: this.progress, 'ops-per-second': Math.round(r.opsPerSecond), 'window-ms': r.windowMs };
  }

  /** Throttle the vCPUs by `pct` percent (0 = run freely); QEMU's cpu_throttle_set/stop. */
  setThrottle(pct: number): void {
    if (!(pct >= 0 && pct < 100)) throw new Error(`throttle ${pct}%: expected 0 to 99`);
    this.throttle = pct;
  }

  get throttlePercentage(): number {
    return this.throttle;
  }

  /** Cap each vCPU's writes at `pagesPerSec`, enforced per `periodMs`; null lifts the cap. */
  setDirtyLimit(limit: { pagesPerSec: number; periodMs: number } | null): void {
    if (limit && !(limit.pagesPerSec > 0 && limit.periodMs > 0)) throw new Error(`dirty limit ${JSON.stringify(limit)}: expected positive pagesPerSec and periodMs`);
    this.dirtyLimit = limit;
    this.periodStart = performance.now();
    for (const v of this.vcpus) v.periodWrites = 0;
  }

  /** The guest's work and stalls on this side (x-query-guest). */
  accounting(now = performance.now()): GuestAccounting {
    const r = this.rate(now);
    const out: GuestAccounting = {
      ops: this.done,
      progress: this.progress,
      'ops-per-second': Math.round(r.opsPerSecond),
      'window-ms': r.windowMs,
      'nominal-ops-per-second': Math.round(this.opsPerMs * 1000 * this.vcpus.length),
      'running-ms': Math.round(this.runningMs + (this.timer ? now - this.startedAt : 0)),
      'throttle-percentage': this.throttle,
      'threads-per-vcpu': this.threadsPerVcpu,
      vcpus: this.vcpus.map((v) => ({
        ops: v.done,
        blocked: v.stalledSince !== null,
        'blocked-threads': v.threads.filter((t) => t.blockedOn).length,
        // A stall still going on counts for as long as it has lasted.
        'longest-stall-ms': Math.round(Math.max(v.longestStallMs, v.stalledSince !== null ? now - v.stalledSince : 0)),
      })),
    };
    if (this.dirtyLimit) out['dirty-limit-pages-per-second'] = this.dirtyLimit.pagesPerSec;
    return out;
  }

  start(): void {
    if (this.timer || this.opsPerMs === 0) return;
    this.lastTick = performance.now();
    this.startedAt = this.lastTick;
    // The rate is measured from the start, not from whenever it is first asked for.
    this.rateWindow = [{ t: this.lastTick, done: this.done }];
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.runningMs += performance.now() - this.startedAt;
    }
    this.timer = null;
    for (const v of this.vcpus) v.budget = 0;
  }

  exportState(): VcpuState[] {
    return this.vcpus.map((v) => {
      const [{ rng, pos }] = v.threads;
      if (v.threads.length === 1) return { rng, pos, ops: v.ops };
      return { rng, pos, ops: v.ops, threads: v.threads.map((t) => ({ rng: t.rng, pos: t.pos })), next: v.next };
    });
  }

  /**
   * Take the device state that crossed at switchover: the guest arrives here, so its stalls on
   * this side start from nothing. Junk is ignored; a state with fewer threads than this guest
   * leaves the rest as they started, one with more gives its extra threads nowhere to go.
   */
  importState(state: unknown): void {
    for (const v of this.vcpus) {
      v.stalledMs = 0;
      v.longestStallMs = 0;
    }
    if (!Array.isArray(state)) return;
    const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
    const setStream = (t: Thread, s: Record<string, unknown>) => {
      if (Number.isInteger(s.rng)) t.rng = (s.rng as number) >>> 0;
      if (Number.isInteger(s.pos)) t.pos = (((s.pos as number) % this.pageCount) + this.pageCount) % this.pageCount;
    };
    state.forEach((s: unknown, i) => {
      const v = this.vcpus[i];
      if (!v || !isObj(s)) return;
      setStream(v.threads[0], s);
      if (Number.isInteger(s.ops) && (s.ops as number) >= 0) v.ops = s.ops as number;
      if (Array.isArray(s.threads)) {
        s.threads.forEach((ts: unknown, j) => {
          if (j < v.threads.length && isObj(ts)) setStream(v.threads[j], ts);
        });
      }
      if (Number.isInteger(s.next) && (s.next as number) >= 0) v.next = (s.next as number) % v.threads.length;
    });
  }

  /**
   * A missing page has been placed: retry the accesses of the vCPU's threads blocked on it
   * (every blocked thread of the vCPU when no page is given) and let them carry on.
   */
  unblock(vcpu: number, page?: number): void {
    const v = this.vcpus[vcpu];
    if (!v) return;
    for (const t of v.threads) {
      if (!t.blockedOn || (page !== undefined && t.blockedOn.page !== page)) continue;
      if (this.hooks.access(vcpu, t.blockedOn.page, t.blockedOn.write) !== 'ok') continue;
      t.blockedOn = null;
      v.ops++;
      v.done++;
      this.done++;
      if (v.stalledSince !== null) {
        // A thread can run again: the vCPU's stall ends.
        const now = performance.now();
        const ms = now - v.stalledSince;
        v.longestStallMs = Math.max(v.longestStallMs, ms);
        v.stalledMs += ms;
        v.stalledSince = null;
        if (this.allStalledSince !== null) {
          this.allStalledMs += now - this.allStalledSince;
          this.allStalledSince = null;
        }
      }
    }
  }

  private nextPage(t: Thread): number {
    const n = this.pageCount;
    switch (this.spec.kind) {
      case 'sequential':
        t.pos = (t.pos + 1) % n;
        return t.pos;
      case 'hotset': {
        let r: number;
        [r, t.rng] = mulberry32(t.rng);
        const hot = Math.max(1, Math.floor(n * this.spec.hotFraction));
        let r2: number;
        [r2, t.rng] = mulberry32(t.rng);
        return r < this.spec.hotShare ? Math.floor(r2 * hot) : Math.floor(r2 * n);
      }
      default: {
        let r: number;
        [r, t.rng] = mulberry32(t.rng);
        return Math.floor(r * n);
      }
    }
  }

  /** The next runnable thread in turn (the vCPU is not stalled, so there is one). */
  private nextThread(v: Vcpu): Thread {
    const T = v.threads.length;
    for (let k = 0; k < T; k++) {
      const idx = (v.next + k) % T;
      if (!v.threads[idx].blockedOn) {
        v.next = (idx + 1) % T;
        return v.threads[idx];
      }
    }
    throw new Error('nextThread on a stalled vCPU');
  }

  private tick(): void {
    const t0 = taskStart();
    try {
      this.runTick();
    } finally {
      task('guest-tick', t0);
    }
  }

  private runTick(): void {
    const now = performance.now();
    const dt = Math.min(now - this.lastTick, 200);
    this.lastTick = now;
    // A throttled vCPU runs (100 - p)% of the time: its work per tick shrinks by as much.
    const share = (100 - this.throttle) / 100;
    const limit = this.dirtyLimit;
    let quota = Infinity;
    if (limit) {
      if (now - this.periodStart >= limit.periodMs) {
        this.periodStart = now;
        for (const v of this.vcpus) v.periodWrites = 0;
      }
      quota = (limit.pagesPerSec * limit.periodMs) / 1000;
    }
    for (let i = 0; i < this.vcpus.length; i++) {
      const v = this.vcpus[i];
      if (v.stalledSince !== null) continue;
      // The vCPU's time, not each thread's: its threads share it.
      v.budget += dt * this.opsPerMs * share;
      while (v.budget >= 1) {
        if (v.periodWrites >= quota) {
          // Its writes for this period are spent: the vCPU sleeps until the next one.
          v.budget = 0;
          break;
        }
        v.budget -= 1;
        const t = this.nextThread(v);
        const page = this.nextPage(t);
        let write = false;
        if (this.writeShare > 0) {
          let r: number;
          [r, t.rng] = mulberry32(t.rng);
          write = r < this.writeShare;
        }
        if (write) v.periodWrites++;
        if (this.hooks.access(i, page, write) === 'blocked') {
          t.blockedOn = { page, write };
          if (v.threads.every((x) => x.blockedOn)) {
            // No thread left to run: the vCPU itself stalls until a page arrives.
            this.stalled(v, now);
            v.budget = 0;
            break;
          }
          // Async page fault: the guest runs another thread; the vCPU's time is not lost.
          continue;
        }
        v.ops++;
        v.done++;
        this.done++;
      }
    }
  }
}
