/**
 * Throttling as QEMU does it: the percentages follow mig_throttle_guest_down's sequence for any
 * parameters, the trigger fires on every second period whose dirtying exceeds the threshold
 * (periods closing only after a second), and a throttled or dirty-limited guest never does more
 * than its vCPUs are allowed to run for (on a fake clock).
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { THROTTLE_DEFAULTS, ThrottleState, throttleGuestDown, type ThrottleParams } from '../../../src/sim/throttle.js';
import { Guest, type AccessResult, type WorkloadSpec } from '../../../src/sim/workload.js';

const params = fc.record({
  'cpu-throttle-initial': fc.integer({ min: 1, max: 99 }),
  'cpu-throttle-increment': fc.integer({ min: 1, max: 99 }),
  'cpu-throttle-tailslow': fc.boolean(),
  'max-cpu-throttle': fc.integer({ min: 1, max: 99 }),
  'throttle-trigger-threshold': fc.integer({ min: 1, max: 100 }),
});

describe('throttleGuestDown (mig_throttle_guest_down)', () => {
  it('without tailslow: initial, then +increment per trigger, capped at max-cpu-throttle', () => {
    fc.assert(
      fc.property(params, fc.integer({ min: 1, max: 30 }), (p, n) => {
        const q = { ...p, 'cpu-throttle-tailslow': false };
        fc.pre(q['cpu-throttle-initial'] <= q['max-cpu-throttle']);
        let pct = 0;
        for (let i = 1; i <= n; i++) {
          pct = throttleGuestDown(pct, q, 2_000_000, 1_000_000);
          expect(pct).toBe(Math.min(q['cpu-throttle-initial'] + (i - 1) * q['cpu-throttle-increment'], q['max-cpu-throttle']));
        }
      }),
    );
  });

  it('the defaults give 20, 30, ... 90, 99, 99', () => {
    const seq: number[] = [];
    let pct = 0;
    for (let i = 0; i < 11; i++) seq.push((pct = throttleGuestDown(pct, THROTTLE_DEFAULTS, 2, 1)));
    expect(seq).toEqual([20, 30, 40, 50, 60, 70, 80, 90, 99, 99, 99]);
  });

  it('an initial above max-cpu-throttle is not capped at first (QEMU does not), the next trigger brings it to max', () => {
    const p: ThrottleParams = { ...THROTTLE_DEFAULTS, 'cpu-throttle-initial': 60, 'max-cpu-throttle': 40 };
    const first = throttleGuestDown(0, p, 2, 1);
    expect(first).toBe(60);
    expect(throttleGuestDown(first, p, 2, 1)).toBe(40);
  });

  it('tailslow: each step is at least 1 and at most the increment, sized by how far the dirtying is above the threshold', () => {
    fc.assert(
      fc.property(
        params,
        fc.integer({ min: 1, max: 98 }),
        fc.integer({ min: 1, max: 1e9 }),
        fc.integer({ min: 1, max: 1e9 }),
        (p, current, dirty, extra) => {
          const q = { ...p, 'cpu-throttle-tailslow': true };
          fc.pre(current < q['max-cpu-throttle']);
          const threshold = dirty; // the period's dirtying is above it by `extra`
          const next = throttleGuestDown(current, q, dirty + extra, threshold);
          expect(next - current).toBeGreaterThanOrEqual(1);
          expect(next - current).toBeLessThanOrEqual(q['cpu-throttle-increment']);
          expect(next).toBeLessThanOrEqual(q['max-cpu-throttle']);
          const cpuNow = 100 - current;
          // QEMU computes it in double as cpu_now * (threshold / dirty): same order here.
          const ideal = Math.trunc(cpuNow * (threshold / (dirty + extra)));
          expect(next).toBe(Math.min(current + Math.min(cpuNow - ideal, q['cpu-throttle-increment']), q['max-cpu-throttle']));
        },
      ),
    );
  });

  it('tailslow: dirtying just above the threshold takes a small step, far above it the whole increment', () => {
    const p = { ...THROTTLE_DEFAULTS, 'cpu-throttle-tailslow': true };
    expect(throttleGuestDown(50, p, 1_020_000, 1_000_000)).toBe(51);
    expect(throttleGuestDown(50, p, 10_000_000, 1_000_000)).toBe(60);
  });
});

describe('ThrottleState (migration_bitmap_sync + migration_trigger_throttle)', () => {
  const PAGE = 4096;
  const auto = { autoConverge: true, dirtyLimit: false };

  it('throttles on every second period whose dirtying exceeds the threshold, calm periods in between or not', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), (highs) => {
        const s = new ThrottleState(0);
        let t = 0;
        let sent = 0;
        let expectedHigh = 0;
        let expectedPct = 0;
        for (const high of highs) {
          t += 1500;
          sent += 100 * PAGE;
          // 50% of 100 pages sent is 50 pages: 51 is above the threshold, 50 is not.
          const action = s.sync(t, high ? 51 : 50, sent, PAGE, auto, THROTTLE_DEFAULTS);
          if (high && ++expectedHigh === 2) {
            expectedHigh = 0;
            expectedPct = throttleGuestDown(expectedPct, THROTTLE_DEFAULTS, 51 * PAGE, 50 * PAGE);
            expect(action).toBe('throttle');
          } else expect(action).toBeNull();
          expect(s.pct).toBe(expectedPct);
        }
      }),
    );
  });

  it('syncs less than a second apart add up into one period', () => {
    const s = new ThrottleState(0);
    s.sync(0, 0, 0, PAGE, auto, THROTTLE_DEFAULTS);
    // Three quick syncs of 20 pages each while 100 pages go out: 60 > 50 only once summed.
    for (const [t, sent] of [[300, 30], [600, 60], [900, 90]]) expect(s.sync(t, 20, sent * PAGE, PAGE, auto, THROTTLE_DEFAULTS)).toBeNull();
    expect(s.sync(1100, 0, 100 * PAGE, PAGE, auto, THROTTLE_DEFAULTS)).toBeNull(); // first high period
    expect(s.sync(2200, 60, 200 * PAGE, PAGE, auto, THROTTLE_DEFAULTS)).toBe('throttle'); // second
    expect(s.pct).toBe(20);
  });

  it('dirty-limit switches the limit on at the same trigger and never sets a CPU throttle', () => {
    const s = new ThrottleState(0);
    const mode = { autoConverge: false, dirtyLimit: true };
    s.sync(0, 0, 0, PAGE, mode, THROTTLE_DEFAULTS);
    expect(s.sync(1500, 100, 10 * PAGE, PAGE, mode, THROTTLE_DEFAULTS)).toBeNull();
    expect(s.sync(3000, 100, 20 * PAGE, PAGE, mode, THROTTLE_DEFAULTS)).toBe('dirty-limit');
    expect(s.dirtyLimitActive).toBe(true);
    expect(s.pct).toBe(0);
    s.stop();
    expect(s.dirtyLimitActive).toBe(false);
  });

  it('without either capability nothing is switched on', () => {
    const s = new ThrottleState(0);
    const none = { autoConverge: false, dirtyLimit: false };
    for (let i = 0; i < 10; i++) expect(s.sync(i * 1500, 1000, i * PAGE, PAGE, none, THROTTLE_DEFAULTS)).toBeNull();
    expect(s.pct).toBe(0);
  });
});

describe('a throttled guest', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const TICK = 10;
  function spec(vcpus: number, rate: number): WorkloadSpec {
    return { kind: 'random', vcpus, readRate: rate, dirtyRate: rate, hotFraction: 0.1, hotShare: 0.9, seed: 3 };
  }

  it('never does more than (100-p)% of the unthrottled work over any window, plus one tick', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 99 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 100, max: 5000 }),
        fc.integer({ min: 0, max: 500 }),
        fc.integer({ min: 10, max: 2000 }),
        (p, vcpus, rate, before, window) => {
          const g = new Guest(spec(vcpus, rate), 1024, { access: () => 'ok' });
          g.start();
          vi.advanceTimersByTime(before);
          g.setThrottle(p);
          const at = g.accounting().ops;
          vi.advanceTimersByTime(window);
          const done = g.accounting().ops - at;
          g.stop();
          const perMsAll = ((2 * rate) / 1000) * vcpus;
          const allowed = ((100 - p) / 100) * perMsAll * window;
          // One tick's worth of unthrottled work, and each vCPU's fraction of an op carried over.
          expect(done).toBeLessThanOrEqual(allowed + perMsAll * TICK + vcpus);
          // And the throttle is not a stop: the guest still runs its share (within a tick).
          expect(done).toBeGreaterThanOrEqual(allowed - perMsAll * TICK - vcpus);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a dirty-limited vCPU writes at most its quota in each period, then sleeps until the next', () => {
    fc.assert(
      // Periods of whole ticks, so each one starts on a tick.
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 10, max: 400 }), fc.integer({ min: 5, max: 100 }).map((n) => n * TICK), (vcpus, pagesPerSec, periodMs) => {
        const writes: number[][] = [];
        const t0 = performance.now();
        const g = new Guest(spec(vcpus, 5000), 1024, {
          access: (v, _p, w) => {
            // The tick at the period's end opens the next period before it runs.
            const period = Math.floor((performance.now() - t0) / periodMs);
            if (w) (writes[period] ??= new Array<number>(vcpus).fill(0))[v]++;
            return 'ok';
          },
        });
        g.start();
        g.setDirtyLimit({ pagesPerSec, periodMs });
        vi.advanceTimersByTime(3 * periodMs);
        g.stop();
        const quota = Math.ceil((pagesPerSec * periodMs) / 1000);
        for (const w of writes) for (const n of w ?? []) expect(n).toBeLessThanOrEqual(quota);
        // Unlimited, each vCPU would write 5000/s: the limit is what held it.
        const total = writes.flat().reduce((a, b) => a + b, 0);
        expect(total).toBeLessThan((5000 * vcpus * 3 * periodMs) / 1000);
      }),
      { numRuns: 40 },
    );
  });

  it('reports per vCPU the work done and the longest wait for a missing page', () => {
    let missing = true;
    const g = new Guest(spec(2, 1000), 1024, { access: (v): AccessResult => (v === 1 && missing ? 'blocked' : 'ok') });
    g.start();
    vi.advanceTimersByTime(300);
    expect(g.accounting().vcpus[1]).toMatchObject({ blocked: true, ops: 0 });
    expect(g.accounting().vcpus[1]['longest-stall-ms']).toBeGreaterThanOrEqual(280);
    missing = false;
    g.unblock(1);
    vi.advanceTimersByTime(500);
    const a = g.accounting();
    g.stop();
    expect(a.vcpus[1].blocked).toBe(false);
    expect(a.vcpus[1]['longest-stall-ms']).toBeGreaterThanOrEqual(280);
    expect(a.vcpus[1]['longest-stall-ms']).toBeLessThanOrEqual(300);
    expect(a.vcpus[0]['longest-stall-ms']).toBe(0);
    expect(a.vcpus[0].ops).toBeGreaterThan(a.vcpus[1].ops);
    expect(a.ops).toBe(a.vcpus[0].ops + a.vcpus[1].ops);
    expect(a['nominal-ops-per-second']).toBe(4000);
    expect(a['running-ms']).toBe(800);
  });
});
