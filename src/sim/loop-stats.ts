/**
 * What delays this VM process's event loop during postcopy: every garbage collection (kind and
 * pause) and the loop's delay histogram, measured from postcopy-active to the end of the
 * migration. A page request crosses two event loops (the destination's and the source's), so
 * each process's loop delay is what its hop adds to a fault's latency; counts and pauses per
 * GiB moved are figures the machine's load disturbs little, unlike a wall-clock bench row.
 *
 * Off unless the VM process is started with POSTCOPY_LAB_LOOP_STATS=DIR (the bench's
 * fault-tail rows set it); the summary goes to DIR/<name>.json when postcopy ends.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';

/** V8's GC kinds as perf_hooks reports them (entry.detail.kind). */
const GC_KINDS: Record<number, string> = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental', 8: 'weak-callbacks' };

export interface LoopStats {
  /** Milliseconds measured (postcopy-active to its end). */
  ms: number;
  /** Per GC kind: how many, and their pauses (ms). */
  gc: Record<string, { count: number; totalMs: number; maxMs: number; p50Ms: number }>;
  /** Event-loop delay over the same span, ms, sampled every 1 ms (which an idle loop reads as ~1 ms). */
  loopDelayMs: { p50: number; p99: number; max: number; mean: number };
}

export class LoopStatsRecorder {
  private readonly pauses = new Map<string, number[]>();
  private readonly obs: PerformanceObserver;
  private readonly eld: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  private startedAt = 0;
  private running = false;

  constructor(private readonly file: string) {
    this.obs = new PerformanceObserver((list) => {
      if (!this.running) return;
      for (const e of list.getEntries()) {
        // perf_hooks' GC entries carry their kind in `detail` (Node's typings do not say so).
        const kind = GC_KINDS[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
        let a = this.pauses.get(kind);
        if (!a) this.pauses.set(kind, (a = []));
        a.push(e.duration);
      }
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startedAt = performance.now();
    this.pauses.clear();
    this.eld.reset();
    this.eld.enable();
    this.obs.observe({ entryTypes: ['gc'] });
  }

  /** Stop and write the summary (once per start). */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.eld.disable();
    this.obs.disconnect();
    writeFileSync(this.file, JSON.stringify(this.summary()) + '\n');
  }

  summary(): LoopStats {
    const gc: LoopStats['gc'] = {};
    for (const [kind, a] of this.pauses) {
      const s = [...a].sort((x, y) => x - y);
      gc[kind] = { count: s.length, totalMs: round(s.reduce((x, y) => x + y, 0)), maxMs: round(s[s.length - 1]), p50Ms: round(s[Math.floor((s.length - 1) / 2)]) };
    }
    const h = this.eld;
    const ms = (ns: number) => round(ns / 1e6);
    return {
      ms: round(performance.now() - this.startedAt),
      gc,
      // In ns, and each sample includes the 1 ms sampling period itself (an idle loop reads ~1 ms).
      loopDelayMs: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) },
    };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The recorder for this process, if POSTCOPY_LAB_LOOP_STATS names a directory. */
export function loopStatsFromEnv(name: string, env = process.env): LoopStatsRecorder | null {
  const dir = env.POSTCOPY_LAB_LOOP_STATS;
  return dir ? new LoopStatsRecorder(path.join(dir, `${name}.json`)) : null;
}
