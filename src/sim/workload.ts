/**
 * The guest: K vCPUs running a memory workload at a set rate of reads and writes. Each access
 * goes through the owning VM's `access` hook, which on the destination may block that vCPU
 * on a missing page (as a userfaultfd fault would); only that vCPU stops, the others go on.
 * The vCPU state (RNG, position, op count) is plain data so it can cross the wire as "device
 * state" at switchover, and the guest carries on at the destination where it left off.
 *
 * During precopy the source may throttle the vCPUs (src/sim/throttle.ts): a vCPU throttled by
 * p% runs only (100-p)% of the time, as QEMU's cpu_throttle_thread makes it sleep the rest; a
 * dirty-rate limit lets each vCPU write at most so many pages per period and stops it for the
 * rest of the period once they are written (as KVM's dirty ring full exits make it sleep).
 */
import type { PagesInfo } from '../types.js';

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
}

export interface VcpuState {
  rng: number;
  pos: number;
  ops: number;
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

interface Vcpu extends VcpuState {
  blockedOn: { page: number; write: boolean } | null;
  budget: number;
  /** Operations done on this side (not carried over with the device state). */
  done: number;
  /** When the current wait for a missing page began, and the longest such wait so far. */
  blockedSince: number;
  longestStallMs: number;
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
  vcpus: Array<{ ops: number; blocked: boolean; 'longest-stall-ms': number }>;
}

export class Guest {
  private readonly vcpus: Vcpu[];
  private timer: NodeJS.Timeout | null = null;
  private lastTick = 0;
  private readonly writeShare: number;
  private readonly opsPerMs: number;
  /** Samples of `done` (operations done on this side), for the guest's rate. */
  private rateWindow: { t: number; done: number }[] = [];
  /** Operations done here, never the ones carried over with the device state at switchover. */
  private done = 0;
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
    this.vcpus = [];
    for (let i = 0; i < spec.vcpus; i++) {
      this.vcpus.push({
        rng: (spec.seed * 0x9e3779b1 + i * 0x85ebca6b) >>> 0,
        pos: Math.floor((i * pageCount) / Math.max(1, spec.vcpus)),
        ops: 0,
        blockedOn: null,
        budget: 0,
        done: 0,
        blockedSince: 0,
        longestStallMs: 0,
        periodWrites: 0,
      });
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

  get blockedCount(): number {
    return this.vcpus.filter((v) => v.blockedOn).length;
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
      vcpus: this.vcpus.map((v) => ({
        ops: v.done,
        blocked: v.blockedOn !== null,
        // A wait still going on counts for as long as it has lasted.
        'longest-stall-ms': Math.round(Math.max(v.longestStallMs, v.blockedOn ? now - v.blockedSince : 0)),
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
    return this.vcpus.map(({ rng, pos, ops }) => ({ rng, pos, ops }));
  }

  importState(state: unknown): void {
    if (!Array.isArray(state)) return;
    state.forEach((s: Partial<VcpuState>, i) => {
      const v = this.vcpus[i];
      if (!v || typeof s !== 'object' || s === null) return;
      if (Number.isInteger(s.rng)) v.rng = (s.rng as number) >>> 0;
      if (Number.isInteger(s.pos)) v.pos = (s.pos as number) % this.pageCount;
      if (Number.isInteger(s.ops)) v.ops = s.ops as number;
    });
  }

  /** A missing page a vCPU was blocked on has been placed: retry its access and carry on. */
  unblock(vcpu: number): void {
    const v = this.vcpus[vcpu];
    if (!v?.blockedOn) return;
    const { page, write } = v.blockedOn;
    if (this.hooks.access(vcpu, page, write) === 'ok') {
      v.blockedOn = null;
      v.longestStallMs = Math.max(v.longestStallMs, performance.now() - v.blockedSince);
      v.ops++;
      v.done++;
      this.done++;
    }
  }

  private nextPage(v: Vcpu): number {
    const n = this.pageCount;
    switch (this.spec.kind) {
      case 'sequential':
        v.pos = (v.pos + 1) % n;
        return v.pos;
      case 'hotset': {
        let r: number;
        [r, v.rng] = mulberry32(v.rng);
        const hot = Math.max(1, Math.floor(n * this.spec.hotFraction));
        let r2: number;
        [r2, v.rng] = mulberry32(v.rng);
        return r < this.spec.hotShare ? Math.floor(r2 * hot) : Math.floor(r2 * n);
      }
      default: {
        let r: number;
        [r, v.rng] = mulberry32(v.rng);
        return Math.floor(r * n);
      }
    }
  }

  private tick(): void {
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
      if (v.blockedOn) continue;
      v.budget += dt * this.opsPerMs * share;
      while (v.budget >= 1) {
        if (v.periodWrites >= quota) {
          // Its writes for this period are spent: the vCPU sleeps until the next one.
          v.budget = 0;
          break;
        }
        v.budget -= 1;
        const page = this.nextPage(v);
        let write = false;
        if (this.writeShare > 0) {
          let r: number;
          [r, v.rng] = mulberry32(v.rng);
          write = r < this.writeShare;
        }
        if (write) v.periodWrites++;
        if (this.hooks.access(i, page, write) === 'blocked') {
          v.blockedOn = { page, write };
          v.blockedSince = now;
          v.budget = 0;
          break;
        }
        v.ops++;
        v.done++;
        this.done++;
      }
    }
  }
}
