/**
 * The fault-tail bench's sim mean, the figure set beside QEMU's blocktime mean: each request
 * from the destination writing it to the page placed, joined by page.
 */
import { describe, expect, it } from 'vitest';
import { meanFaultMs, type FaultTailRun } from '../../../bench/fault-tail.js';
import type { LoopStats } from '../../../src/sim/loop-stats.js';

function run(hops: LoopStats['hops']): FaultTailRun {
  const loop = { hops } as LoopStats;
  return { postcopyBandwidth: 0, mbPerSec: 0, faults: 0, p50Ms: 0, p99Ms: 0, loop: { source: {} as LoopStats, destination: loop }, control: { p50: 0, p99: 0, max: 0, mean: 0 } };
}

describe('meanFaultMs', () => {
  it('averages sent → placed per page, leaving out pages placed without a request of theirs', () => {
    const r = run({
      sent: [
        [7, 100],
        [9, 200],
      ],
      // page 7 waited 2 ms, page 9 waited 6; page 11 came with the push, never asked for.
      placed: [
        [7, 102],
        [9, 206],
        [11, 300],
      ],
    });
    expect(meanFaultMs(r)).toBe(4);
  });

  it('is NaN, not 0, when no request was joined (nothing to set beside QEMU)', () => {
    expect(meanFaultMs(run({ placed: [[1, 5]] }))).toBeNaN();
  });
});
