/**
 * The direct fault-latency tail with postcopy-preempt (issue 13): 1 GiB postcopy from the
 * first moment, no link between the VMs, the background push at full speed, and per VM process
 * what delays its event loop meanwhile (src/sim/loop-stats.ts): GC pauses per GiB by kind and
 * the loop's delay p99. A page request crosses both loops, so these are the causes of the tail
 * and, unlike the tail itself, they change little with the machine's load.
 *
 * Then, per run: each fault's hops joined across the two processes by page (the destination
 * wrote the request, the source read it, wrote the page, the destination placed it), which
 * hop owns the tail; and what each loop ran (labelled tasks: their count, mean and longest,
 * how many over 1 and 2 ms) beside its main thread's CPU and run-queue wait as shares of the
 * span. A loop delayed while its main thread waited for a CPU ran nothing late: a long task
 * would be named in the task table, a wait for a CPU shows as run-queue time.
 *
 * Last, a calibration row: the same guest on QEMU 10.0 (KVM) and on the sim, back to back, their
 * mean fault latency side by side (skipped, saying why, without QEMU 10.0 or KVM).
 *
 *   node dist/bench/run.js --only fault-tail [--quick]
 *
 * Extra flags for the VM processes (e.g. V8's) come from NODE_OPTIONS, which they inherit;
 * POSTCOPY_LAB_CPU_PROF=1 keeps a V8 CPU profile of each VM over postcopy (--cpu-prof is not
 * allowed in NODE_OPTIONS).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Orchestrator, tcpUri } from '../src/driver/orchestrator.js';
import { makeBackend } from '../src/driver/select-backend.js';
import { QemuBackend } from '../src/driver/qemu-backend.js';
import { installedQemus } from '../src/qemu/installed.js';
import type { PagesInfo, RamStats, Side } from '../src/types.js';
import type { LoopStats } from '../src/sim/loop-stats.js';
import type { RequestThreadInfo } from '../src/sim/request-thread.js';
import { DirectLink } from './direct-link.js';

const GiB = 1 << 30;

export interface FaultTailRun {
  /** max-postcopy-bandwidth of the run, bytes/s (0: full speed). */
  postcopyBandwidth: number;
  mbPerSec: number;
  faults: number;
  p50Ms: number;
  p99Ms: number;
  loop: Record<Side, LoopStats>;
  /**
   * The bench process's own loop delay over the same run (ms): a process on this machine that
   * mostly sleeps. What the VMs' loops show beyond it is theirs (their work, or waiting for a
   * CPU as processes that hardly ever sleep); what it shows too is the machine's.
   */
  control: LoopStats['loopDelayMs'];
  /** With x-preempt-thread: what the source's request thread answered, and its scheduling. */
  thread?: RequestThreadInfo;
}

async function untilCompleted(o: Orchestrator): Promise<RamStats> {
  for (;;) {
    const r = await o.qmp('source').execute<{ status: string; ram: RamStats }>('query-migrate');
    if (r.status === 'completed') return r.ram;
    if (r.status === 'failed' || r.status === 'postcopy-paused') throw new Error(`the migration went ${r.status}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** The guest of every row, sim or QEMU: the same lab guest, so the rows compare. */
const GUEST = { pageSize: 4096, vcpus: 2, workload: 'random', dirtyRate: 2000, readRate: 20000, seed: 1 } as const;

/**
 * One run; `preempt` false gives the vanilla row for comparison. `simCaps`: the sim's own
 * capabilities to set on both VMs as well (x-preempt-thread, x-preempt-thread-fifo).
 */
export async function faultTailRun(preempt = true, memoryBytes = GiB, postcopyBandwidth = 0, simCaps: string[] = []): Promise<FaultTailRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fault-tail-'));
  const before = process.env.POSTCOPY_LAB_LOOP_STATS;
  process.env.POSTCOPY_LAB_LOOP_STATS = dir;
  const o = new Orchestrator({
    guest: { memoryBytes, ...GUEST },
    makeLink: () => new DirectLink(),
    onEvent: () => {},
  });
  try {
    const ep = await o.start();
    if (before === undefined) delete process.env.POSTCOPY_LAB_LOOP_STATS;
    else process.env.POSTCOPY_LAB_LOOP_STATS = before;
    const capabilities = Object.entries({ 'postcopy-ram': true, 'return-path': true, events: true, 'postcopy-preempt': preempt, ...Object.fromEntries(simCaps.map((c) => [c, true])) }).map(([capability, state]) => ({ capability, state }));
    for (const side of ['source', 'destination'] as const) {
      await o.qmp(side).execute('migrate-set-capabilities', { capabilities });
      await o.qmp(side).execute('migrate-set-parameters', { 'max-bandwidth': 100 * GiB, 'max-postcopy-bandwidth': postcopyBandwidth });
    }
    await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
    await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
    await o.qmp('source').execute('migrate-start-postcopy');
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const ram = await untilCompleted(o);
    eld.disable();
    const ms = (ns: number) => Math.round(ns / 1e3) / 1e3;
    const control = { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), mean: ms(eld.mean) };
    const dst = await o.qmp('destination').execute<PagesInfo>('x-query-pages');
    if (dst.verified !== true) throw new Error('the migration did not verify');
    const thread = (await o.qmp('source').execute<{ 'x-preempt-thread'?: RequestThreadInfo }>('query-migrate'))['x-preempt-thread'];
    const read = (side: Side): LoopStats => JSON.parse(readFileSync(path.join(dir, `${side}.json`), 'utf8')) as LoopStats;
    // The destination writes its figures as it completes, the source when the SHUT arrives.
    const loop = { source: read('source'), destination: read('destination') };
    if (process.env.POSTCOPY_LAB_CPU_PROF === '1') {
      // Each VM writes its profile a moment after its summary.
      for (let i = 0; i < 40 && !(['source', 'destination'] as const).every((s) => existsSync(path.join(dir, `${s}.cpuprofile`))); i++) await new Promise((r) => setTimeout(r, 50));
      console.log(`CPU profiles of the VMs over postcopy: ${dir}/{source,destination}.cpuprofile`);
    }
    const seconds = loop.source.ms / 1000;
    return { postcopyBandwidth, mbPerSec: ram['postcopy-bytes'] / 1e6 / seconds, faults: dst['fault-latency-us'].count, p50Ms: dst['fault-latency-us'].p50 / 1000, p99Ms: dst['fault-latency-us'].p99 / 1000, loop, control, thread };
  } finally {
    await o.stop();
    if (process.env.POSTCOPY_LAB_CPU_PROF !== '1') rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The sim's mean fault latency (ms): each page request from the destination writing it to the
 * page placed, joined by page across the two processes (what QEMU's blocktime counts: a vCPU
 * waits from its fault to the page placed).
 */
export function meanFaultMs(r: FaultTailRun): number {
  const sent = new Map(r.loop.destination.hops?.sent ?? []);
  let sum = 0;
  let n = 0;
  for (const [page, t3] of r.loop.destination.hops?.placed ?? []) {
    const t0 = sent.get(page);
    if (t0 === undefined || t3 < t0) continue;
    sum += t3 - t0;
    n++;
  }
  return n ? sum / n : NaN;
}

export interface QemuTailRun {
  /** "QEMU 10.0.2, kvm". */
  label: string;
  mbPerSec: number;
  /** Page requests the source served (`postcopy-requests`). */
  requests: number;
  /** The destination's `postcopy-vcpu-blocktime`, summed over vCPUs (ms). */
  vcpuBlocktimeMs: number;
  /** vCPU blocktime per page request (ms): QEMU's mean fault latency. */
  meanMs: number;
}

/**
 * The calibration row: the same 1 GiB guest on QEMU 10.0 under KVM, postcopy-preempt, push at
 * full speed, nothing between the VMs. QEMU 10.0 has no `postcopy-latency` (10.1 added it, as
 * blocktime over faults); its `postcopy-vcpu-blocktime` (ms per vCPU, each fault's wait taken
 * from ms timestamps: unbiased over many faults) over the source's `postcopy-requests` is the
 * same mean. The generated guest is one vCPU, and only its faults send requests, so the two
 * count the same faults. Returns why not when there is no QEMU 10.0 or no KVM.
 */
export async function qemuFaultTailRun(memoryBytes = GiB): Promise<QemuTailRun | string> {
  const q10 = (await installedQemus()).find((q) => q.short === '10.0');
  if (!q10) return 'no QEMU 10.0 installed (scripts/provision.sh unpacks it under /opt/qemu-10.0)';
  const backend = await makeBackend('qemu', { qemu: q10.bin });
  if (!(backend instanceof QemuBackend) || backend.opts.accel !== 'kvm') return 'no KVM: under TCG the guest is shrunk and slow, nothing to calibrate against';
  const o = new Orchestrator({ guest: { memoryBytes, ...GUEST }, makeLink: () => new DirectLink(), backend, onEvent: () => {} });
  try {
    const ep = await o.start();
    const capabilities = Object.entries({ 'postcopy-ram': true, 'return-path': true, events: true, 'postcopy-preempt': true, 'postcopy-blocktime': true }).map(([capability, state]) => ({ capability, state }));
    for (const side of ['source', 'destination'] as const) {
      await o.qmp(side).execute('migrate-set-capabilities', { capabilities });
      await o.qmp(side).execute('migrate-set-parameters', { 'max-bandwidth': 100 * GiB, 'max-postcopy-bandwidth': 0 });
    }
    await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
    await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
    await o.qmp('source').execute('migrate-start-postcopy');
    const t0 = performance.now();
    const ram = await untilCompleted(o);
    const seconds = (performance.now() - t0) / 1000;
    const dst = await o.qmp('destination').execute<{ 'postcopy-vcpu-blocktime'?: number[] }>('query-migrate');
    const vcpu = dst['postcopy-vcpu-blocktime'];
    if (!vcpu) throw new Error("the destination's query-migrate has no postcopy-vcpu-blocktime (is the postcopy-blocktime capability on?)");
    const vcpuBlocktimeMs = vcpu.reduce((a, b) => a + b, 0);
    const requests = ram['postcopy-requests'] ?? 0;
    const v = backend.opts.version;
    return { label: `QEMU ${v.major}.${v.minor}.${v.micro}, kvm`, mbPerSec: (ram['postcopy-bytes'] ?? ram.transferred) / 1e6 / seconds, requests, vcpuBlocktimeMs, meanMs: requests ? vcpuBlocktimeMs / requests : NaN };
  } finally {
    await o.stop();
  }
}

/** p50 / p99 / max of a list of ms. */
function pcts(a: number[]): string {
  if (!a.length) return '-';
  const s = [...a].sort((x, y) => x - y);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `${f(p(0.5))} / ${f(p(0.99))} / ${f(s[s.length - 1])}`;
}

/**
 * Where a fault's time goes, hop by hop (CLOCK_MONOTONIC stamps, one clock for both processes
 * and their threads: src/sim/loop-stats.ts hopClock): destination wrote the request → source
 * read it → source wrote the page → destination placed it. A fault whose page the push placed
 * before the requested copy was written counts in the request hop and the whole fault only.
 */
export function hopRows(r: FaultTailRun): string[][] {
  const at = (side: Side, name: string) => new Map(r.loop[side].hops?.[name] ?? []);
  const sent = at('destination', 'sent');
  const read = at('source', 'read');
  const written = at('source', 'written');
  const placed = at('destination', 'placed');
  const a: number[] = [];
  const b: number[] = [];
  const c: number[] = [];
  const all: number[] = [];
  let byPush = 0;
  for (const [page, t0] of sent) {
    const t1 = read.get(page);
    const t2 = written.get(page);
    const t3 = placed.get(page);
    if (t1 === undefined || t2 === undefined || t3 === undefined || t1 < t0 || t3 < t0) continue;
    a.push(t1 - t0);
    all.push(t3 - t0);
    if (t3 < t2) {
      byPush++;
      continue;
    }
    b.push(t2 - t1);
    c.push(t3 - t2);
  }
  return [
    ['request: destination wrote → source read', pcts(a)],
    ['source read → page written (preempt)', pcts(b)],
    [`page written → destination placed${byPush ? ` (${byPush} placed by the push first, left out)` : ''}`, pcts(c)],
    [`whole fault (${all.length} joined)`, pcts(all)],
  ];
}

/** Per side: labelled tasks that ran over 1 ms, the loop's busy share, CPU and run-queue wait. */
export function taskRows(r: FaultTailRun): string[][] {
  const rows: string[][] = [];
  for (const side of ['source', 'destination'] as const) {
    const l = r.loop[side];
    const th = l.threads ?? {};
    const share = (ms: number | undefined) => f((ms ?? NaN) / l.ms);
    const busy = `elu ${f(l.elu ?? NaN)}; main thread: cpu ${share(th.main?.cpuMs)}, run-queue ${share(th.main?.waitMs)}; other threads: cpu ${share(th.others?.cpuMs)} (of wall)`;
    rows.push([side, busy, '', '', '']);
    for (const [k, t] of Object.entries(l.tasks ?? {}).sort((x, y) => y[1].totalMs - x[1].totalMs)) {
      rows.push(['', k, `${t.count}`, `${f(t.totalMs / t.count, 3)} / ${f(t.maxMs)}`, `${t.over1} / ${t.over2}`]);
    }
  }
  return rows;
}

const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');

/** One table row per run and side: the tail, and what each loop was delayed by. */
export function faultTailRows(runs: FaultTailRun[], gib = 1): string[][] {
  const rows: string[][] = [];
  runs.forEach((r, i) => {
    for (const side of ['source', 'destination'] as const) {
      const l = r.loop[side];
      const sc = l.gc.scavenge ?? { count: 0, totalMs: 0, maxMs: 0, p50Ms: 0 };
      let otherMs = 0;
      let otherN = 0;
      for (const [k, g] of Object.entries(l.gc)) {
        if (k === 'scavenge') continue;
        otherMs += g.totalMs;
        otherN += g.count;
      }
      rows.push([
        side === 'source' ? `${i + 1}` : '',
        side === 'source' ? f(r.mbPerSec, 0) : '',
        side === 'source' ? `${f(r.p50Ms)} / ${f(r.p99Ms)}` : '',
        side,
        f(sc.count / gib, 0),
        `${f(sc.p50Ms)} / ${f(sc.maxMs)}`,
        `${f(otherN / gib, 0)} (${f(otherMs / gib, 1)} ms)`,
        `${f(l.loopDelayMs.p50)} / ${f(l.loopDelayMs.p99)} / ${f(l.loopDelayMs.max)}`,
      ]);
    }
    const c = r.control;
    rows.push(['', '', '', 'bench (control)', '', '', '', c ? `${f(c.p50)} / ${f(c.p99)} / ${f(c.max)}` : '-']);
  });
  return rows;
}

export const FAULT_TAIL_HEAD = ['run', 'MB/s', 'fault p50 / p99 ms', 'VM', 'scavenges /GiB', 'scavenge p50 / max ms', 'other GCs /GiB (pause)', 'loop delay p50 / p99 / max ms'];

/** `--only fault-tail`: `reps` direct preempt runs of 1 GiB. */
export async function benchFaultTail(
  o: { quick: boolean },
  print: (head: string[], rows: string[][]) => string,
): Promise<{ runs: FaultTailRun[]; calibration: { sim: FaultTailRun; qemu: QemuTailRun } | string }> {
  const runs: FaultTailRun[] = [];
  for (let i = 0; i < (o.quick ? 1 : 3); i++) runs.push(await faultTailRun(true));
  console.log('Direct fault tail, postcopy-preempt, 1 GiB, push at full speed: what delays each VM process (measured over postcopy)');
  console.log(print(FAULT_TAIL_HEAD, faultTailRows(runs)) + '\n');
  runs.forEach((r, i) => {
    console.log(`Run ${i + 1}: where a fault's time goes (ms, p50 / p99 / max)`);
    console.log(print(['hop', 'ms'], hopRows(r)) + '\n');
    console.log(`Run ${i + 1}: what each loop ran (labelled tasks; busy shares of the measured span)`);
    console.log(print(['VM', 'task', 'count', 'mean / max ms', 'over 1 / 2 ms'], taskRows(r)) + '\n');
  });
  // The same with the push capped at half the full speed just measured: if the tail is the VMs
  // waiting for a CPU on a machine their push saturates, it shrinks here; if it is their own
  // long turns, it does not.
  const full = [...runs].sort((a, b) => a.mbPerSec - b.mbPerSec)[Math.floor(runs.length / 2)].mbPerSec;
  const half = await faultTailRun(true, GiB, Math.round((full * 1e6) / 2));
  console.log(`The same, push capped at ${f(full / 2, 0)} MB/s (half the full speed above)`);
  console.log(print(FAULT_TAIL_HEAD, faultTailRows([half])) + '\n');
  console.log(print(['hop', 'ms'], hopRows(half)) + '\n');
  console.log(print(['VM', 'task', 'count', 'mean / max ms', 'over 1 / 2 ms'], taskRows(half)) + '\n');
  const calibration = await calibrate(print);
  return { runs: [...runs, half], calibration };
}

/** The request path's variants compared by `--only fault-thread`: today's, and x-preempt-thread with and without SCHED_FIFO. */
const THREAD_VARIANTS: Array<[string, string[]]> = [
  ['main threads (default)', []],
  ['x-preempt-thread', ['x-preempt-thread']],
  ['x-preempt-thread + -fifo', ['x-preempt-thread', 'x-preempt-thread-fifo']],
];

/** p99 of one hop row's "p50 / p99 / max" cell. */
const hopP99 = (rows: string[][], i: number) => rows[i][1].split(' / ')[1] ?? '-';

/**
 * `--only fault-thread`: the direct preempt fault tail with the source's request path on its main
 * thread (today's) and in its own thread (x-preempt-thread, src/sim/request-thread.ts), without
 * and with SCHED_FIFO 1, interleaved rep by rep so the machine's load falls on all three alike.
 * The request hop is the source's (its thread's) wait to read a request; the reply hop the
 * destination's main thread's wait to place the page, which the option does not move.
 */
export async function benchFaultThread(o: { quick: boolean }, print: (head: string[], rows: string[][]) => string): Promise<Array<{ variant: string; run: FaultTailRun }>> {
  const out: Array<{ variant: string; run: FaultTailRun }> = [];
  const reps = o.quick ? 1 : 3;
  for (let i = 0; i < reps; i++) for (const [variant, caps] of THREAD_VARIANTS) out.push({ variant, run: await faultTailRun(true, GiB, 0, caps) });
  const load = os.loadavg()[0];
  console.log(`Direct fault tail, postcopy-preempt, 1 GiB, push at full speed: the request path on the main threads or in the source's request thread (${reps} reps interleaved; load average ${f(load)} at the end${load > 1.5 ? ': under load' : ''})`);
  const rows = out.map(({ variant, run }, i) => {
    const hops = hopRows(run);
    return [`${Math.floor(i / THREAD_VARIANTS.length) + 1}`, variant, f(run.mbPerSec, 0), `${run.faults}`, `${f(run.p50Ms)} / ${f(run.p99Ms)}`, hopP99(hops, 0), hopP99(hops, 2), run.thread ? `${run.thread.priority}, ${run.thread.served} served` : '-'];
  });
  console.log(print(['rep', 'request path', 'MB/s', 'faults', 'fault p50 / p99 ms', 'request hop p99', 'reply hop p99', 'thread'], rows) + '\n');
  return out;
}

/**
 * Calibration against QEMU on this machine: a QEMU run and a sim run back to back, same guest,
 * same conditions, their mean fault latency side by side (QEMU 10.0 gives no percentiles).
 */
async function calibrate(print: (head: string[], rows: string[][]) => string): Promise<{ sim: FaultTailRun; qemu: QemuTailRun } | string> {
  const qemu = await qemuFaultTailRun().catch((e: Error) => `the QEMU run failed: ${e.message}`);
  if (typeof qemu === 'string') {
    console.log(`Calibration against QEMU 10.0: skipped (${qemu})\n`);
    return qemu;
  }
  const sim = await faultTailRun(true);
  console.log('Calibration: mean fault latency, the same 1 GiB guest, postcopy-preempt, direct, push at full speed, back to back');
  console.log(
    print(
      ['VMs', 'MB/s', 'faults', 'fault mean ms', 'p50 / p99 ms'],
      [
        ['sim', f(sim.mbPerSec, 0), `${sim.faults}`, f(meanFaultMs(sim)), `${f(sim.p50Ms)} / ${f(sim.p99Ms)}`],
        [qemu.label, f(qemu.mbPerSec, 0), `${qemu.requests}`, `${f(qemu.meanMs)} (vCPU blocktime ${f(qemu.vcpuBlocktimeMs, 0)} ms / requests)`, '- (10.0 reports none)'],
      ],
    ) + '\n',
  );
  return { sim, qemu };
}
