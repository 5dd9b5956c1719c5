/**
 * The numbers `compare` reports, as pure functions of what was sampled during a run, so each
 * is tested with plain numbers: the guest work lost against an unmigrated run, the time until
 * the guest ran at 90% of its normal speed again, and whether a precopy ran past its bound.
 */

/** The guest's work at one moment: operations done on both sides together. */
export interface WorkSample {
  /** ms, any common origin. */
  t: number;
  ops: number;
}

export interface WorkLost {
  /** Share of the work an unmigrated guest would have done in the window, percent. */
  pct: number;
  /** The same, in seconds of the guest's work at its normal speed. */
  seconds: number;
}

/**
 * An unmigrated guest runs at its nominal speed the whole time (the sim's workload is paced:
 * the same seed does nominal × elapsed operations), so the work lost is the integral of the
 * slowdown: nominal × elapsed − the operations done on both sides in the window. A little
 * noise (a sample read a few ms off) can make it slightly negative: that is none lost.
 */
export function workLost(nominalOpsPerSecond: number, elapsedMs: number, opsDone: number): WorkLost {
  const expected = (nominalOpsPerSecond * elapsedMs) / 1000;
  if (!(expected > 0)) return { pct: 0, seconds: 0 };
  const lost = Math.max(0, expected - opsDone);
  return { pct: (lost / expected) * 100, seconds: lost / nominalOpsPerSecond };
}

/** What the guest ran at, over successive windows of at least `windowMs`: (mid-time, ops/s). */
export function rates(samples: readonly WorkSample[], windowMs: number): Array<{ t: number; opsPerSecond: number }> {
  const out: Array<{ t: number; opsPerSecond: number }> = [];
  let j = 0;
  for (let i = 1; i < samples.length; i++) {
    // The latest earlier sample that still leaves a window of at least windowMs.
    while (j + 1 < i && samples[i]!.t - samples[j + 1]!.t >= windowMs) j++;
    const a = samples[j]!;
    const b = samples[i]!;
    if (b.t - a.t < windowMs) continue;
    out.push({ t: (a.t + b.t) / 2, opsPerSecond: ((b.ops - a.ops) * 1000) / (b.t - a.t) });
  }
  return out;
}

export const RECOVER_SHARE = 0.9;

/**
 * How long the guest ran below 90% of its normal speed after `from` (the switchover, or the
 * first dirty sync, where a throttle can begin): from the first window below it to the window
 * from which it stayed at or above it to the end. 0 when it never dropped; null when it was
 * still below at the last sample (it did not recover within the run). Windows of `windowMs`
 * (about half a second) keep one late tick from counting as a drop; a hiccup while the
 * migration sets up (before `from`) is not what this column is about.
 */
export function recoverTo90(samples: readonly WorkSample[], nominalOpsPerSecond: number, from = -Infinity, windowMs = 500): number | null {
  const r = rates(samples, windowMs).filter((x) => x.t >= from);
  const floor = nominalOpsPerSecond * RECOVER_SHARE;
  const first = r.findIndex((x) => x.opsPerSecond < floor);
  if (first < 0) return 0;
  let last = first;
  for (let i = first; i < r.length; i++) if (r[i]!.opsPerSecond < floor) last = i;
  if (last === r.length - 1) return null;
  return Math.round(r[last + 1]!.t - r[first]!.t);
}

/** The bound a precopy is given before it is called unconverged (QEMU would go on forever). */
export interface ConvergeBound {
  maxPasses: number;
  maxSeconds: number;
}

/** Which bound a still-running precopy has reached, if any, in words for the table. */
export function boundReached(passes: number, elapsedMs: number, b: ConvergeBound): string | null {
  if (passes >= b.maxPasses) return `${b.maxPasses} passes`;
  if (elapsedMs >= b.maxSeconds * 1000) return `${b.maxSeconds} s`;
  return null;
}

/**
 * Why an unconverged precopy stopped: auto-converge that had throttled to its maximum and
 * still did not converge says so (the thread's point about many-vCPU guests).
 */
export function unconvergedReason(throttlePct: number, maxCpuThrottle: number | null): 'max throttle reached' | 'did not converge' {
  return maxCpuThrottle !== null && throttlePct >= maxCpuThrottle ? 'max throttle reached' : 'did not converge';
}
