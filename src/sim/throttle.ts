/**
 * CPU throttling during precopy, as QEMU does it (migration/ram.c): at each dirty bitmap sync
 * that closes a period of more than a second, compare the bytes the guest dirtied in that
 * period with the bytes sent in it; every second time the dirtied bytes exceed
 * `throttle-trigger-threshold`% of the sent ones, either raise the vCPU throttle
 * (`auto-converge`: `cpu-throttle-initial`, then `+cpu-throttle-increment` each time, at most
 * `max-cpu-throttle`; with `cpu-throttle-tailslow` the step shrinks to what the last period
 * suggests is enough), or switch on the per-vCPU dirty-rate limit (`dirty-limit`, QEMU 8.1+,
 * applied once and kept).
 *
 * Pure: the source feeds it each sync's accounting and applies what it decides to its guest.
 */

/** The migration parameters the throttle reads (QEMU's names and defaults). */
export interface ThrottleParams {
  'cpu-throttle-initial': number;
  'cpu-throttle-increment': number;
  'cpu-throttle-tailslow': boolean;
  'max-cpu-throttle': number;
  'throttle-trigger-threshold': number;
}

export const THROTTLE_DEFAULTS: ThrottleParams = {
  'cpu-throttle-initial': 20,
  'cpu-throttle-increment': 10,
  'cpu-throttle-tailslow': false,
  'max-cpu-throttle': 99,
  'throttle-trigger-threshold': 50,
};

/** cpu_throttle_set clamps to these (system/cpu-throttle.c CPU_THROTTLE_PCT_MIN/MAX). */
export const CPU_THROTTLE_PCT_MIN = 1;
export const CPU_THROTTLE_PCT_MAX = 99;

/** QEMU closes a throttle period only at a sync more than this long after the last one that did. */
export const THROTTLE_PERIOD_MS = 1000;

/** cpu_throttle_set: whatever is asked, the throttle stays within 1..99. */
export function cpuThrottleSet(pct: number): number {
  return Math.max(CPU_THROTTLE_PCT_MIN, Math.min(CPU_THROTTLE_PCT_MAX, Math.trunc(pct)));
}

/**
 * mig_throttle_guest_down: the throttle after one more trigger. `current` 0 means not
 * throttling yet: start at the initial value (QEMU does not hold that to max-cpu-throttle).
 * Tailslow: the step is at most what would bring the guest's CPU share down to the share at
 * which the last period's dirtying would have met the threshold (C integer arithmetic kept).
 */
export function throttleGuestDown(current: number, p: ThrottleParams, bytesDirtyPeriod: number, bytesDirtyThreshold: number): number {
  if (current === 0) return cpuThrottleSet(p['cpu-throttle-initial']);
  let inc = p['cpu-throttle-increment'];
  if (p['cpu-throttle-tailslow']) {
    const cpuNow = 100 - current;
    const cpuIdeal = Math.trunc(cpuNow * (bytesDirtyThreshold / bytesDirtyPeriod));
    inc = Math.min(cpuNow - cpuIdeal, inc);
  }
  return cpuThrottleSet(Math.min(current + inc, p['max-cpu-throttle']));
}

/** What a sync decided. */
export type ThrottleAction = 'throttle' | 'dirty-limit' | null;

/**
 * One migration's trigger state (RAMState's dirty_rate_high_cnt, num_dirty_pages_period,
 * bytes_xfer_prev, time_last_bitmap_sync) and the throttle it set.
 */
export class ThrottleState {
  /** The vCPU throttle in percent; 0 = not throttling (cpu_throttle_active() is false). */
  pct = 0;
  /** The dirty-rate limit is in service (dirtylimit_in_service()). */
  dirtyLimitActive = false;
  /** Triggers so far (how often the throttle went up). */
  triggers = 0;
  private periodStart: number;
  private dirtyPagesPeriod = 0;
  private bytesXferPrev = 0;
  private highCount = 0;

  /** `now`: the migration's start (QEMU's first period starts at the setup sync). */
  constructor(now: number) {
    this.periodStart = now;
  }

  /**
   * migration_bitmap_sync: `newDirtyPages` pages joined the migration bitmap at this sync,
   * `transferred` is every byte the migration has sent so far. Returns what it switched on.
   */
  sync(
    now: number,
    newDirtyPages: number,
    transferred: number,
    pageSize: number,
    mode: { autoConverge: boolean; dirtyLimit: boolean },
    p: ThrottleParams,
  ): ThrottleAction {
    this.dirtyPagesPeriod += newDirtyPages;
    if (now <= this.periodStart + THROTTLE_PERIOD_MS) return null;
    let action: ThrottleAction = null;
    // migration_trigger_throttle. The count is not reset by a calm period: any second high one triggers.
    const bytesXferPeriod = transferred - this.bytesXferPrev;
    const bytesDirtyPeriod = this.dirtyPagesPeriod * pageSize;
    const bytesDirtyThreshold = Math.floor((bytesXferPeriod * p['throttle-trigger-threshold']) / 100);
    if (bytesDirtyPeriod > bytesDirtyThreshold && ++this.highCount >= 2) {
      this.highCount = 0;
      if (mode.autoConverge) {
        this.pct = throttleGuestDown(this.pct, p, bytesDirtyPeriod, bytesDirtyThreshold);
        this.triggers++;
        action = 'throttle';
      } else if (mode.dirtyLimit) {
        this.triggers++;
        this.dirtyLimitActive = true;
        action = 'dirty-limit';
      }
    }
    this.periodStart = now;
    this.dirtyPagesPeriod = 0;
    this.bytesXferPrev = transferred;
    return action;
  }

  /** cpu_throttle_stop / cancelling the dirty limit: the migration is over. */
  stop(): void {
    this.pct = 0;
    this.dirtyLimitActive = false;
  }
}

/** vcpu-dirty-limit (MB/s, QEMU's MB being MiB) as pages per second for one vCPU. */
export function dirtyLimitPagesPerSec(mbPerSec: number, pageSize: number): number {
  return (mbPerSec * 1024 * 1024) / pageSize;
}

/** What applying the throttle needs from the source VM. */
export interface ThrottleHost {
  readonly params: ThrottleParams & { 'vcpu-dirty-limit': number; 'x-vcpu-dirty-limit-period': number };
  readonly pageSize: number;
  readonly guest: {
    setThrottle(pct: number): void;
    setDirtyLimit(limit: { pagesPerSec: number; periodMs: number } | null): void;
  };
  cap(c: 'auto-converge' | 'dirty-limit'): boolean;
}

/** A precopy dirty sync: let `state` decide, and throttle the guest as it says. */
export function syncThrottle(host: ThrottleHost, state: ThrottleState, now: number, newDirtyPages: number, transferred: number): void {
  const mode = { autoConverge: host.cap('auto-converge'), dirtyLimit: host.cap('dirty-limit') };
  const action = state.sync(now, newDirtyPages, transferred, host.pageSize, mode, host.params);
  if (action === 'throttle') host.guest.setThrottle(state.pct);
  // Applied again at each trigger, as QEMU does, so a changed vcpu-dirty-limit takes effect.
  else if (action === 'dirty-limit') {
    host.guest.setDirtyLimit({ pagesPerSec: dirtyLimitPagesPerSec(host.params['vcpu-dirty-limit'], host.pageSize), periodMs: host.params['x-vcpu-dirty-limit-period'] });
  }
}

/**
 * The migration is over (completed, failed, cancelled): the guest runs freely again, as
 * QEMU's migration_iteration_finish stops the CPU throttle and migration cleanup cancels the
 * dirty limit. A paused postcopy migration is not over, and keeps them (its source is stopped).
 */
export function stopThrottle(host: ThrottleHost, state: ThrottleState): void {
  state.stop();
  host.guest.setThrottle(0);
  host.guest.setDirtyLimit(null);
}
