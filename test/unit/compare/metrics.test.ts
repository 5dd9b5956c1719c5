import { describe, expect, it } from 'vitest';
import { boundReached, rates, recoverTo90, unconvergedReason, workLost, type WorkSample } from '../../../src/compare/metrics.js';

/** A guest sampled every 250 ms running at `rate(t)` ops/s. */
function run(ms: number, rate: (t: number) => number): WorkSample[] {
  const out: WorkSample[] = [{ t: 0, ops: 0 }];
  for (let t = 250; t <= ms; t += 250) out.push({ t, ops: out[out.length - 1]!.ops + (rate(t - 125) * 250) / 1000 });
  return out;
}

describe('workLost: the integral of the slowdown against an unmigrated run', () => {
  it('is nothing for a guest at full speed, and the missing share otherwise', () => {
    expect(workLost(1000, 10_000, 10_000)).toEqual({ pct: 0, seconds: 0 });
    const half = workLost(1000, 10_000, 5_000);
    expect(half.pct).toBeCloseTo(50);
    expect(half.seconds).toBeCloseTo(5);
  });
  it('reads a little more work than expected (sampling noise) as none lost, never negative', () => {
    expect(workLost(1000, 10_000, 10_050)).toEqual({ pct: 0, seconds: 0 });
  });
  it('a guest stopped for 2 s of 10 lost 2 s of work', () => {
    const s = run(10_000, (t) => (t > 3000 && t < 5000 ? 0 : 4000));
    const lost = workLost(4000, 10_000, s[s.length - 1]!.ops);
    expect(lost.seconds).toBeCloseTo(2, 1);
    expect(lost.pct).toBeCloseTo(20, 0);
  });
});

describe('recoverTo90', () => {
  it('is 0 for a guest that never dropped below 90%', () => {
    expect(recoverTo90(run(5000, () => 950), 1000)).toBe(0);
  });
  it('measures from the first drop to the point it stays at 90% or more', () => {
    // Throttled from 2 s to 6 s, then free.
    const r = recoverTo90(run(10_000, (t) => (t >= 2000 && t < 6000 ? 500 : 1000)), 1000);
    expect(r).not.toBeNull();
    expect(r!).toBeGreaterThanOrEqual(3500);
    expect(r!).toBeLessThanOrEqual(4500);
  });
  it('is null when the guest is still slow at the end', () => {
    expect(recoverTo90(run(5000, (t) => (t > 2000 ? 100 : 1000)), 1000)).toBeNull();
  });
  it('ignores a hiccup before `from` (the migration setting up)', () => {
    const s = run(10_000, (t) => (t < 500 ? 100 : t >= 4000 && t < 6000 ? 300 : 1000));
    expect(recoverTo90(s, 1000)).toBeGreaterThan(5000);
    const from = recoverTo90(s, 1000, 3000)!;
    expect(from).toBeGreaterThanOrEqual(1500);
    expect(from).toBeLessThanOrEqual(2500);
  });
  it('a single brief dip inside a window of 500 ms does not count as a drop below 90%', () => {
    const s = run(5000, () => 1000);
    s[10]!.ops -= 20; // one late sample: 20 ops of 1000/s
    expect(recoverTo90(s, 1000)).toBe(0);
  });
  it('rates are taken over windows of at least the given span', () => {
    const r = rates(run(2000, () => 1000), 500);
    expect(r.length).toBeGreaterThan(0);
    for (const x of r) expect(x.opsPerSecond).toBeCloseTo(1000);
  });
});

describe('the did-not-converge bound', () => {
  const b = { maxPasses: 10, maxSeconds: 20 };
  it('holds until passes or seconds reach it, and names which', () => {
    expect(boundReached(9, 19_999, b)).toBeNull();
    expect(boundReached(10, 1000, b)).toBe('10 passes');
    expect(boundReached(3, 20_000, b)).toBe('20 s');
  });
  it('auto-converge at its maximum throttle says so; otherwise it did not converge', () => {
    expect(unconvergedReason(99, 99)).toBe('max throttle reached');
    expect(unconvergedReason(60, 99)).toBe('did not converge');
    expect(unconvergedReason(0, null)).toBe('did not converge');
  });
});
