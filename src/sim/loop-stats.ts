/**
 * What delays this VM process's event loop during postcopy: every garbage collection (kind and
 * pause) and the loop's delay histogram, measured from postcopy-active to the end of the
 * migration. A page request crosses two event loops (the destination's and the source's), so
 * each process's loop delay is what its hop adds to a fault's latency; counts and pauses per
 * GiB moved are figures the machine's load disturbs little, unlike a wall-clock bench row.
 *
 * Beside those: the loop's busy share (ELU), the process's CPU time and its main thread's
 * run-queue wait (a loop delayed while it waited for a CPU ran nothing late: the kernel did not
 * run it), labelled pieces of work (`task`: what each handler took, so a long one is named),
 * and each page request's hops (`hop`: wall-clock times the bench joins across the two
 * processes to say which hop owns the tail).
 *
 * Off unless the VM process is started with POSTCOPY_LAB_LOOP_STATS=DIR (the bench's
 * fault-tail rows set it); the summary goes to DIR/<name>.json when postcopy ends, and with
 * POSTCOPY_LAB_CPU_PROF=1 also V8's CPU profile of the span to DIR/<name>.cpuprofile.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';

/** V8's GC kinds as perf_hooks reports them (entry.detail.kind). */
const GC_KINDS: Record<number, string> = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental', 8: 'weak-callbacks' };

export interface LoopStats {
  /** Milliseconds measured (postcopy-active to its end). */
  ms: number;
  /** Per GC kind: how many, and their pauses (ms). */
  gc: Record<string, { count: number; totalMs: number; maxMs: number; p50Ms: number }>;
  /** Event-loop delay over the same span, ms, sampled every 1 ms (which an idle loop reads as ~1 ms). */
  loopDelayMs: { p50: number; p99: number; max: number; mean: number };
  /** The loop's busy share of the span (perf_hooks' event-loop utilization), 0..1. */
  elu: number;
  /** CPU time of the whole process over the span, ms (user, system). */
  cpuMs: { user: number; system: number };
  /** Time the main thread waited on a run queue (/proc/self/task/<pid>/schedstat), ms; -1 where unknown. */
  runQueueMs: number;
  /** The main thread (the event loop) and all the others (V8's and libuv's workers): CPU ms and run-queue wait ms over the span. */
  threads: Record<string, { cpuMs: number; waitMs: number }>;
  /** Per labelled task (see `task`): how many ran, the longest, and how many took over 1 and 2 ms. */
  tasks: Record<string, { count: number; maxMs: number; over1: number; over2: number; totalMs: number }>;
  /** Hop times of page requests (see `hop`): per hop name, [page, hopClock ms] pairs. */
  hops: Record<string, Array<[number, number]>>;
}

/** The recorder of this process while it runs, for `task` and `hop`. */
const current: { recorder: LoopStatsRecorder | null } = { recorder: null };

/** performance.now() if a recorder runs, else 0: the start of a task to pass to `task`. */
export function taskStart(): number {
  return current.recorder ? performance.now() : 0;
}

/** A labelled piece of work that began at `t0` (from taskStart) has ended. */
export function task(label: string, t0: number): void {
  if (!current.recorder || t0 === 0) return;
  current.recorder.noteTask(label, performance.now() - t0);
}

/**
 * The clock of hop times, ms: CLOCK_MONOTONIC, one clock for every process and thread on the
 * machine, so hops join across them as read. performance.timeOrigin + now() does not: each
 * process's (and thread's) origin is its own reading of the wall clock, seen off by 0.2-4 ms.
 */
export function hopClock(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A page request passed a point (`name`) on its way, now: kept for the bench to join across processes. */
export function hop(name: string, page: number): void {
  current.recorder?.noteHop(name, page, hopClock());
}

/** As `hop`, at `t` (hopClock) taken elsewhere: in another thread (x-preempt-thread). */
export function hopAt(name: string, page: number, t: number): void {
  current.recorder?.noteHop(name, page, t);
}

/** Every thread's [name, cpu ns, wait ns] (/proc/self/task/<tid>/schedstat). */
function threadTimes(): Map<string, [string, number, number]> {
  const out = new Map<string, [string, number, number]>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const [cpu, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(tid, [tid === String(process.pid) ? 'main' : 'others', cpu, wait]);
    }
  } catch {
    // Not Linux: no per-thread figures.
  }
  return out;
}

export class LoopStatsRecorder {
  private readonly tasks = new Map<string, LoopStats['tasks'][string]>();
  private readonly hops = new Map<string, Array<[number, number]>>();
  private elu0: EventLoopUtilization | null = null;
  private cpu0: NodeJS.CpuUsage | null = null;
  private threads0 = new Map<string, [string, number, number]>();

  noteTask(label: string, ms: number): void {
    let t = this.tasks.get(label);
    if (!t) this.tasks.set(label, (t = { count: 0, maxMs: 0, over1: 0, over2: 0, totalMs: 0 }));
    t.count++;
    t.totalMs += ms;
    if (ms > t.maxMs) t.maxMs = ms;
    if (ms > 1) t.over1++;
    if (ms > 2) t.over2++;
  }

  noteHop(name: string, page: number, t: number): void {
    let a = this.hops.get(name);
    if (!a) this.hops.set(name, (a = []));
    if (a.length < 200_000) a.push([page, t]);
  }

  private readonly pauses = new Map<string, number[]>();
  private readonly obs: PerformanceObserver;
  private readonly eld: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  private startedAt = 0;
  private running = false;

  /** V8's CPU profiler over the same span (POSTCOPY_LAB_CPU_PROF), written beside the summary. */
  private profiler: Session | null = null;

  constructor(
    private readonly file: string,
    private readonly cpuProfile = false,
  ) {
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
    this.tasks.clear();
    this.hops.clear();
    this.elu0 = performance.eventLoopUtilization();
    this.cpu0 = process.cpuUsage();
    this.threads0 = threadTimes();
    current.recorder = this;
    this.eld.reset();
    this.eld.enable();
    this.obs.observe({ entryTypes: ['gc'] });
    if (this.cpuProfile) {
      // --cpu-prof is refused in NODE_OPTIONS, and the VM's argv is the orchestrator's to make.
      const s = (this.profiler = new Session());
      s.connect();
      s.post('Profiler.enable', () => s.post('Profiler.start'));
    }
  }

  /** Stop and write the summary (once per start). */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    if (current.recorder === this) current.recorder = null;
    this.eld.disable();
    this.obs.disconnect();
    writeFileSync(this.file, JSON.stringify(this.summary()) + '\n');
    const s = this.profiler;
    this.profiler = null;
    s?.post('Profiler.stop', (err, r) => {
      if (!err) writeFileSync(this.file.replace(/\.json$/, '') + '.cpuprofile', JSON.stringify(r.profile));
      s.disconnect();
    });
  }

  summary(): LoopStats {
    const gc: LoopStats['gc'] = {};
    for (const [kind, a] of this.pauses) {
      const s = [...a].sort((x, y) => x - y);
      gc[kind] = { count: s.length, totalMs: round(s.reduce((x, y) => x + y, 0)), maxMs: round(s[s.length - 1]), p50Ms: round(s[Math.floor((s.length - 1) / 2)]) };
    }
    const h = this.eld;
    const ms = (ns: number) => round(ns / 1e6);
    const cpu = process.cpuUsage(this.cpu0 ?? undefined);
    const tasks: LoopStats['tasks'] = {};
    for (const [k, t] of this.tasks) tasks[k] = { ...t, maxMs: round(t.maxMs), totalMs: round(t.totalMs) };
    const threads: LoopStats['threads'] = {};
    for (const [tid, [name, c, w]] of threadTimes()) {
      const [, c0, w0] = this.threads0.get(tid) ?? [name, 0, 0];
      const t = (threads[name] ??= { cpuMs: 0, waitMs: 0 });
      t.cpuMs = round(t.cpuMs + (c - c0) / 1e6);
      t.waitMs = round(t.waitMs + (w - w0) / 1e6);
    }
    return {
      threads,
      elu: round(performance.eventLoopUtilization(this.elu0 ?? undefined).utilization),
      cpuMs: { user: round(cpu.user / 1000), system: round(cpu.system / 1000) },
      // The main thread's share of the per-thread figures (none where /proc has no schedstat).
      runQueueMs: threads.main?.waitMs ?? -1,
      tasks,
      hops: Object.fromEntries(this.hops),
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
  return dir ? new LoopStatsRecorder(path.join(dir, `${name}.json`), env.POSTCOPY_LAB_CPU_PROF === '1') : null;
}
