/** Small measurement helpers shared by both sides of the sim. */

/** A rate over a sliding window (two seconds by default, so rates read smoothly), fed with cumulative counters. */
export class RateMeter {
  private samples: { t: number; v: number }[] = [];
  constructor(private readonly windowMs = 2000) {}

  /** Record the cumulative value now; returns the rate per second over the window. */
  sample(value: number, now = performance.now()): number {
    this.samples.push({ t: now, v: value });
    while (this.samples.length > 2 && now - this.samples[0].t > this.windowMs) this.samples.shift();
    const first = this.samples[0];
    const dt = now - first.t;
    return dt > 0 ? ((value - first.v) * 1000) / dt : 0;
  }

  reset(): void {
    this.samples = [];
  }
}

/** The most recent N latency samples (microseconds), for p50/p99 without unbounded memory. */
export class LatencyRing {
  private readonly ring: Float64Array;
  private n = 0;
  total = 0;

  constructor(size = 8192) {
    this.ring = new Float64Array(size);
  }

  add(us: number): void {
    this.ring[this.n % this.ring.length] = us;
    this.n++;
    this.total++;
  }

  percentiles(): { p50: number; p99: number; count: number } {
    const k = Math.min(this.n, this.ring.length);
    if (k === 0) return { p50: 0, p99: 0, count: 0 };
    const a = Float64Array.from(this.ring.subarray(0, k)).sort();
    const at = (q: number) => Math.round(a[Math.min(k - 1, Math.floor(q * (k - 1)))]);
    return { p50: at(0.5), p99: at(0.99), count: this.total };
  }
}

/** Coarse page map: one character per cell. See PagesInfo.map. */
export function pageMap(
  cells: number,
  pageCount: number,
  present: { countRange(s: number, e: number): number },
  pending: Iterable<number>,
  /** Pages placed from a recovery file: a cell all present with some of them is 'F'. */
  fromFile?: { countRange(s: number, e: number): number },
): string {
  const n = Math.max(1, Math.min(cells, pageCount));
  const hasPending = new Uint8Array(n);
  for (const p of pending) hasPending[Math.min(n - 1, Math.floor((p * n) / pageCount))] = 1;
  let out = '';
  for (let c = 0; c < n; c++) {
    const s = Math.floor((c * pageCount) / n);
    const e = Math.floor(((c + 1) * pageCount) / n);
    const have = present.countRange(s, e);
    if (have === e - s) out += fromFile && fromFile.countRange(s, e) > 0 ? 'F' : 'R';
    else if (hasPending[c]) out += 'q';
    else if (have > 0) out += 'r';
    else out += '.';
  }
  return out;
}
