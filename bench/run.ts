/**
 * `npm run bench`: measures the sim on this machine and prints tables. Nothing here asserts;
 * the figures go in the README with how they were obtained.
 *
 *   node dist/bench/run.js [--quick] [--reps N (throughput rows; default 5)] [--only throughput,link-accuracy,recovery,qemu,rss,compare,recovery-file,fault-tail,fault-thread,fault-floor,libvirt-resume] [--json FILE]
 *
 * Every run starts fresh VM processes (and a relay where the row says so) over loopback TCP.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Orchestrator, tcpUri } from '../src/driver/orchestrator.js';
import type { VmBackend } from '../src/driver/backend.js';
import { makeBackend } from '../src/driver/select-backend.js';
import { QemuBackend } from '../src/driver/qemu-backend.js';
import { RelayLink } from '../src/link/relay.js';
import type { LabEvent, Link, MigrationStatus, PagesInfo, RamStats, Side } from '../src/types.js';
import { DirectLink } from './direct-link.js';
import { benchLibvirtResume } from './libvirt-resume.js';
import { benchRecoveryFile } from './recovery-file.js';
import { benchFaultTail, benchFaultThread } from './fault-tail.js';
import { benchFaultFloor } from './fault-floor.js';
import { linkAccuracy } from './link-accuracy.js';
import { SocatLink, socatMissing, SOCAT_BUFFER_BYTES } from './socat-link.js';
import { cpuSeconds, sampleQueued } from './link-probe.js';
import { held, median, pairedDiff, pairedRatio, rotation, spread } from './paired-rows.js';
import { parseCompareFlags } from '../src/compare/options.js';
import { runCompare, type StrategyResult } from '../src/compare/run.js';
import { rowCells } from '../src/compare/table.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** direct: nothing between the VMs; socat: a plain C forwarder; relay: ours, no fault set unless a row sets one. */
type BenchLink = 'direct' | 'socat' | 'relay';

function makeBenchLink(link: BenchLink, runtimeDir: string): Link {
  if (link === 'relay') return new RelayLink({ runtimeDir });
  return link === 'socat' ? new SocatLink() : new DirectLink();
}

interface PairOptions {
  memoryBytes: number;
  link: BenchLink;
  /** The sim unless given (QEMU for the side-by-side rows). */
  backend?: VmBackend;
  readRate?: number;
  dirtyRate?: number;
}

/** Two VMs and a link, with a log of state changes as they happen (MIGRATION events). */
class Pair {
  readonly orch: Orchestrator;
  readonly changes: { t: number; side: Side; to: MigrationStatus }[] = [];
  private waiters: Array<() => void> = [];

  constructor(o: PairOptions) {
    this.orch = new Orchestrator({
      guest: {
        memoryBytes: o.memoryBytes,
        pageSize: 4096,
        vcpus: 2,
        workload: 'random',
        dirtyRate: o.dirtyRate ?? 1000,
        readRate: o.readRate ?? 20000,
        seed: 1,
      },
      makeLink: (dir): Link => makeBenchLink(o.link, dir),
      backend: o.backend,
      onEvent: (e: Omit<LabEvent, 't'>) => {
        if (e.kind === 'state' && e.side) {
          this.changes.push({ t: performance.now(), side: e.side, to: (e.data as { to: MigrationStatus }).to });
          const w = this.waiters;
          this.waiters = [];
          for (const f of w) f();
        }
      },
    });
  }

  q(side: Side) {
    return this.orch.qmp(side);
  }

  /** The time `side` reached `status` (the n-th time), waiting for it. */
  async reached(side: Side, status: MigrationStatus, timeoutMs = 600_000, nth = 1): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hits = this.changes.filter((c) => c.side === side && c.to === status);
      if (hits.length >= nth) return hits[nth - 1].t;
      if (performance.now() > deadline) throw new Error(`${side} did not reach ${status} within ${timeoutMs} ms`);
      // Poll too: a state only seen by query-migrate still counts.
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(50).then(() => this.orch.snapshot().then(() => {}))]);
    }
  }

  async pages(side: Side): Promise<PagesInfo> {
    return this.q(side).execute<PagesInfo>('x-query-pages');
  }

  async ram(): Promise<RamStats> {
    return (await this.q('source').execute<{ ram: RamStats }>('query-migrate')).ram;
  }

  /** VmHWM (peak RSS) of each VM process, bytes. */
  peakRss(): Record<Side, number> {
    const out = { source: 0, destination: 0 } as Record<Side, number>;
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        for (const side of ['source', 'destination'] as const) {
          if (cmd.includes(this.orch.qmpPath(side))) {
            const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
            if (m) out[side] = Number(m[1]) * 1024;
          }
        }
      } catch {
        // a process that went away while we looked
      }
    }
    return out;
  }
}

function sleep(ms: number) {
  return new Promise<void>((r) => setTimeout(r, ms));
}

async function setCaps(p: Pair, caps: Record<string, boolean>, params: Record<string, number>) {
  const list = Object.entries(caps).map(([capability, state]) => ({ capability, state }));
  for (const side of ['source', 'destination'] as const) {
    await p.q(side).execute('migrate-set-capabilities', { capabilities: list });
    await p.q(side).execute('migrate-set-parameters', params);
  }
}

async function withPair<T>(o: PairOptions, f: (p: Pair, ep: Awaited<ReturnType<Orchestrator['start']>>) => Promise<T>): Promise<T> {
  const p = new Pair(o);
  try {
    const ep = await p.orch.start();
    return await f(p, ep);
  } finally {
    await p.orch.stop();
  }
}

// ---- scenarios ----------------------------------------------------------------------------------

interface ThroughputResult {
  seconds: number;
  mbPerSec: number;
  pagesPerSec: number;
  p50us: number;
  p99us: number;
  faults: number;
  rss: Record<Side, number>;
  /** Median bytes in the migration route's socket queues during postcopy (./link-probe.ts). */
  queuedBytes: number;
  /** The forwarder's CPU (user + kernel) per GB moved; NaN when direct. */
  forwarderCpuPerGb: number;
}

/** Which processes forward for `link`, for their CPU (none when direct). */
function forwarderMatch(link: Link | null | undefined): ((pid: number, pgid: number) => boolean) | undefined {
  if (link instanceof RelayLink) {
    const pid = link.pid;
    return (p) => p === pid;
  }
  if (link instanceof SocatLink) {
    const groups = link.groups;
    return (_p, pgid) => groups.includes(pgid);
  }
  return undefined;
}

/** Postcopy from the first moment, no caps: how fast the sim moves a guest, and fault latency meanwhile. */
async function postcopyRun(memoryBytes: number, link: BenchLink, preempt: boolean): Promise<ThroughputResult> {
  return withPair({ memoryBytes, link, readRate: 20000, dirtyRate: 2000 }, async (p, ep) => {
    await setCaps(
      p,
      { 'postcopy-ram': true, 'return-path': true, events: true, 'postcopy-preempt': preempt },
      { 'max-bandwidth': 100 * GiB, 'max-postcopy-bandwidth': 0 },
    );
    const match = forwarderMatch(p.orch.link);
    const cpu0 = match ? cpuSeconds(match) : undefined;
    const queued = sampleQueued(new Set([ep.incoming.connect.port, ep.incoming.listen.port]));
    const { seconds, ram } = await timedPostcopy(p, ep);
    const queuedSamples = queued.stop();
    // Read before the VMs stop: socat's per-connection children are gone after.
    const cpu1 = match ? cpuSeconds(match) : undefined;
    const dst = await p.pages('destination');
    if (dst.verified !== true) throw new Error('the migration did not verify');
    const forwarderCpu = cpu0 && cpu1 ? cpu1.user + cpu1.system - cpu0.user - cpu0.system : NaN;
    return {
      queuedBytes: median(queuedSamples),
      forwarderCpuPerGb: forwarderCpu / (ram.transferred / 1e9),
      seconds,
      mbPerSec: ram['postcopy-bytes'] / 1e6 / seconds,
      pagesPerSec: ram.normal / seconds,
      p50us: dst['fault-latency-us'].p50,
      p99us: dst['fault-latency-us'].p99,
      faults: dst['fault-latency-us'].count,
      rss: p.peakRss(),
    };
  });
}

/** A postcopy migration through the relay capped at `bytesPerSec`, switched over at once. Returns how to re-apply the cap. */
async function startShapedPostcopy(p: Pair, ep: Endpoints, bytesPerSec: number): Promise<() => Promise<void>> {
  const shape = () => p.orch.link!.apply({ kind: 'bandwidth', bytesPerSec });
  await shape();
  await startPostcopy(p, ep);
  return shape;
}

type Endpoints = Awaited<ReturnType<Orchestrator['start']>>;

/** Incoming, migrate, and switch to postcopy at once. */
async function startPostcopy(p: Pair, ep: Endpoints): Promise<void> {
  await p.q('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
  await p.q('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
  await p.q('source').execute('migrate-start-postcopy');
}

/** A postcopy migration from its start, timed from the switchover to completion. */
async function timedPostcopy(p: Pair, ep: Endpoints): Promise<{ seconds: number; ram: RamStats }> {
  await startPostcopy(p, ep);
  const t0 = await p.reached('source', 'postcopy-active');
  const t1 = await p.reached('source', 'completed');
  return { seconds: (t1 - t0) / 1000, ram: await p.ram() };
}

interface RecoveryResult {
  seconds: number;
  floorSeconds: number;
  missingPages: number;
  resent: number;
  duplicates: number;
}

/** Cut a postcopy migration at ~30%, recover, and time the rest against missing bytes / bandwidth. */
async function recoveryRun(strategy: 'bitmap' | 'walk', walkWindow: number, linkBytesPerSec: number): Promise<RecoveryResult> {
  const memoryBytes = 256 * MiB;
  return withPair({ memoryBytes, link: 'relay', readRate: 20000, dirtyRate: 2000 }, async (p, ep) => {
    await setCaps(
      p,
      { 'postcopy-ram': true, 'return-path': true, events: true, 'x-recovery-walk': strategy === 'walk' },
      { 'max-bandwidth': 100 * GiB, 'max-postcopy-bandwidth': 0, 'x-walk-window': walkWindow },
    );
    const link = p.orch.link!;
    const shape = await startShapedPostcopy(p, ep, linkBytesPerSec);
    await p.reached('destination', 'postcopy-active');
    const total = memoryBytes / 4096;
    while ((await p.pages('destination')).received < total * 0.3) await sleep(20);
    await link.apply({ kind: 'cut' });
    await p.reached('source', 'postcopy-paused');
    await p.reached('destination', 'postcopy-paused');
    await link.restore();
    await shape();
    const missingPages = total - (await p.pages('destination')).received;
    await p.q('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    await p.q('source').execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
    const tResume = await p.reached('source', 'postcopy-active', 60_000, 2);
    const tDone = await p.reached('source', 'completed');
    const dst = await p.pages('destination');
    const src = await p.pages('source');
    if (dst.verified !== true) throw new Error('the migration did not verify');
    return {
      seconds: (tDone - tResume) / 1000,
      // Each page costs its bytes plus the frame header on the wire.
      floorSeconds: (missingPages * (4096 + 13)) / linkBytesPerSec,
      missingPages,
      resent: src.resent,
      duplicates: dst['duplicates-discarded'],
    };
  });
}

// ---- the same runs on QEMU ------------------------------------------------------------------------

/** Postcopy from the first moment on real QEMU: the sim's figures, read against the real thing. */
async function qemuPostcopyRun(backend: VmBackend, memoryBytes: number, link: 'direct' | 'relay'): Promise<{ seconds: number; mbPerSec: number; requests: number }> {
  return withPair({ memoryBytes, link, backend }, async (p, ep) => {
    await setCaps(p, { 'postcopy-ram': true, 'return-path': true, events: true }, { 'max-bandwidth': 100 * GiB, 'max-postcopy-bandwidth': 0 });
    const { seconds, ram } = await timedPostcopy(p, ep);
    return { seconds, mbPerSec: (ram['postcopy-bytes'] ?? ram.transferred) / 1e6 / seconds, requests: ram['postcopy-requests'] ?? 0 };
  });
}

/** Cut at ~30% of postcopy, recover, time the rest (QEMU: missing = the source's remaining at resume). */
async function qemuRecoveryRun(backend: VmBackend, linkBytesPerSec: number): Promise<RecoveryResult> {
  const memoryBytes = 256 * MiB;
  return withPair({ memoryBytes, link: 'relay', backend }, async (p, ep) => {
    await setCaps(p, { 'postcopy-ram': true, 'return-path': true, events: true }, { 'max-bandwidth': 100 * GiB, 'max-postcopy-bandwidth': 0 });
    const link = p.orch.link!;
    const shape = await startShapedPostcopy(p, ep, linkBytesPerSec);
    await p.reached('source', 'postcopy-active');
    while ((await p.ram()).remaining > memoryBytes * 0.7) await sleep(20);
    await link.apply({ kind: 'cut' });
    await p.reached('source', 'postcopy-paused');
    await p.reached('destination', 'postcopy-paused');
    await link.restore();
    await shape();
    const missingBytes = (await p.ram()).remaining;
    await p.q('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    await p.q('source').execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
    const tResume = await p.reached('source', 'postcopy-active', 60_000, 2);
    const tDone = await p.reached('source', 'completed');
    return { seconds: (tDone - tResume) / 1000, floorSeconds: missingBytes / linkBytesPerSec, missingPages: Math.round(missingBytes / 4096), resent: 0, duplicates: 0 };
  });
}

// ---- output --------------------------------------------------------------------------------------

async function backendLabel(b: VmBackend): Promise<string> {
  if (!(b instanceof QemuBackend)) return 'sim';
  const v = b.opts.version;
  return `QEMU ${v.major}.${v.minor}.${v.micro}, ${b.opts.accel}`;
}

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');

async function main() {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, json: { type: 'string' }, reps: { type: 'string' } },
  });
  const only = new Set((values.only ?? 'throughput,link-accuracy,recovery,qemu,rss,compare,recovery-file,fault-tail').split(','));
  const reps = values.quick ? 1 : 3;
  // The relay-vs-socat rows move by ms between runs: 5 reps each (~3.5 s a run, 30 runs, ~2 min).
  const throughputReps = values.reps !== undefined ? Number(values.reps) : values.quick ? 1 : 5;
  if (!Number.isInteger(throughputReps) || throughputReps < 1) throw new Error(`--reps must be a whole number ≥ 1, got ${values.reps}`);
  const results: Record<string, unknown> = {};
  const load = os.loadavg()[0].toFixed(2);
  console.log(`postcopy-lab bench: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load ${load}, ${reps} run(s) per row (median)\n`);

  if (only.has('throughput')) {
    // Each rep runs every row once, vanilla and preempt, the links' order rotated per rep, so a
    // change in the machine's load hits all rows alike and no row always runs first. Every
    // comparison with socat is made rep by rep (./paired-rows.ts); the spread says how far one
    // figure moves between reps, so a single run shows whether a difference is noise.
    const missing = await socatMissing();
    if (missing) console.log(`socat rows: skipped (${missing})`);
    const links: BenchLink[] = missing ? ['direct', 'relay'] : ['direct', 'socat', 'relay'];
    const runs = new Map<string, ThroughputResult[]>();
    const key = (link: BenchLink, preempt: boolean) => `postcopy-${link}${preempt ? '-preempt' : ''}`;
    for (let i = 0; i < throughputReps; i++) {
      for (const preempt of [false, true]) {
        for (const link of rotation(links, i)) {
          const k = key(link, preempt);
          runs.set(k, [...(runs.get(k) ?? []), await postcopyRun(1 * GiB, link, preempt)]);
        }
      }
    }
    const rows: (string | number)[][] = [];
    const verdicts: string[] = [];
    for (const preempt of [false, true]) {
      const of = (link: BenchLink) => runs.get(key(link, preempt)) ?? [];
      const mb = (r: ThroughputResult) => r.mbPerSec;
      const p50 = (r: ThroughputResult) => r.p50us / 1000;
      const p99 = (r: ThroughputResult) => r.p99us / 1000;
      for (const link of links) {
        const rs = of(link);
        const vsSocat = link !== 'socat' && !missing;
        rows.push([
          `1 GiB, ${link === 'socat' ? `socat -b ${SOCAT_BUFFER_BYTES}` : link}${preempt ? ', postcopy-preempt' : ''}`,
          spread(rs.map(mb), 0),
          fmt(median(rs.map(mb)) / median(of('direct').map(mb)), 2),
          vsSocat ? spread(pairedRatio(rs, of('socat'), mb), 2) : '',
          spread(rs.map(p50), 2),
          spread(rs.map(p99), 1),
          vsSocat ? spread(pairedDiff(rs, of('socat'), p50), 2, true) : '',
          vsSocat ? spread(pairedDiff(rs, of('socat'), p99), 1, true) : '',
          fmt(median(rs.map((r) => r.faults))),
          spread(rs.map((r) => r.queuedBytes / 1024), 0),
          link === 'direct' ? '' : spread(rs.map((r) => r.forwarderCpuPerGb), 2),
        ]);
        results[key(link, preempt)] = rs;
      }
      if (!missing) {
        const rs = of('relay');
        verdicts.push(
          `relay${preempt ? ', preempt' : ''}: MB/s ≥ socat's in ${held(pairedRatio(rs, of('socat'), mb), (x) => x >= 1)} reps; ` +
            `p50 ≤ socat + 0.3 ms in ${held(pairedDiff(rs, of('socat'), p50), (x) => x <= 0.3)}; ` +
            `p99 ≤ socat + 0.3 ms in ${held(pairedDiff(rs, of('socat'), p99), (x) => x <= 0.3)}`,
        );
      }
    }
    console.log(
      `Clean postcopy (switchover at once, no caps, no fault set), and page faults served while the push runs: ` +
        `${throughputReps} reps, rows interleaved; median (min–max); × socat and − socat are per rep, against the socat run of the same rep`,
    );
    console.log(
      table(['guest, link', 'MB/s', '× direct', '× socat', 'fault p50 ms', 'fault p99 ms', 'p50 − socat', 'p99 − socat', 'faults', 'queued KiB', 'fwd CPU s/GB'], rows),
    );
    for (const v of verdicts) console.log(`  ${v}`);
    console.log('');
  }

  if (only.has('link-accuracy')) {
    const { rows, raw } = await linkAccuracy(reps);
    results['link-accuracy'] = raw;
    console.log('Relay faults as configured (no VMs: ping-pong of 64-byte messages, a bulk sender, loopback; medians)');
    console.log(table(['row', 'configured', 'measured', 'error'], rows.map((r) => [r.row, r.configured, r.measured, r.error])) + '\n');
  }

  if (only.has('recovery')) {
    const bw = 64 * MiB;
    const rows: (string | number)[][] = [];
    const cases: Array<['bitmap' | 'walk', number, number]> = [
      ['bitmap', 1, reps],
      ['walk', 32, reps],
      ['walk', 1, 1],
    ];
    for (const [strategy, window, n] of cases) {
      const runs: RecoveryResult[] = [];
      for (let i = 0; i < n; i++) runs.push(await recoveryRun(strategy, window, bw));
      const m = (f: (r: RecoveryResult) => number) => median(runs.map(f));
      rows.push([
        strategy === 'bitmap' ? 'bitmap (QEMU)' : `walk, x-walk-window ${window}`,
        fmt(m((r) => r.missingPages)),
        fmt(m((r) => r.floorSeconds), 2),
        fmt(m((r) => r.seconds), 2),
        fmt(m((r) => r.seconds / r.floorSeconds), 2),
        fmt(m((r) => r.resent)),
        fmt(m((r) => r.duplicates)),
      ]);
      results[`recovery-${strategy}-${window}`] = runs;
    }
    console.log(`Recovery after reconnect: 256 MiB guest, relay capped at 64 MiB/s, cut at ~30% of postcopy`);
    console.log(table(['strategy', 'missing pages', 'floor s', 'took s', '× floor', 're-sent', 'dup. discarded'], rows) + '\n');
  }

  if (only.has('qemu')) {
    let backend: VmBackend | null = null;
    try {
      backend = await makeBackend('qemu');
    } catch (e) {
      console.log(`QEMU side by side: skipped (${(e as Error).message})\n`);
    }
    if (backend) {
      const rows: (string | number)[][] = [];
      for (const link of ['direct', 'relay'] as const) {
        const sim: ThroughputResult[] = [];
        const qemu: Array<{ seconds: number; mbPerSec: number; requests: number }> = [];
        for (let i = 0; i < reps; i++) {
          sim.push(await postcopyRun(1 * GiB, link, false));
          qemu.push(await qemuPostcopyRun(backend, 1 * GiB, link));
        }
        rows.push([`postcopy 1 GiB, ${link}`, fmt(median(sim.map((r) => r.mbPerSec))), fmt(median(qemu.map((r) => r.mbPerSec)))]);
        results[`qemu-postcopy-${link}`] = qemu;
      }
      const bw = 64 * MiB;
      const simRec: RecoveryResult[] = [];
      const qemuRec: RecoveryResult[] = [];
      for (let i = 0; i < reps; i++) {
        simRec.push(await recoveryRun('bitmap', 1, bw));
        qemuRec.push(await qemuRecoveryRun(backend, bw));
      }
      const m = (rs: RecoveryResult[], f: (r: RecoveryResult) => number) => median(rs.map(f));
      rows.push([
        'recovery after reconnect, 256 MiB at 64 MiB/s: s (× floor)',
        `${fmt(m(simRec, (r) => r.seconds), 2)} (${fmt(m(simRec, (r) => r.seconds / r.floorSeconds), 2)})`,
        `${fmt(m(qemuRec, (r) => r.seconds), 2)} (${fmt(m(qemuRec, (r) => r.seconds / r.floorSeconds), 2)})`,
      ]);
      results['qemu-recovery'] = qemuRec;
      console.log(`The sim against real QEMU (${await backendLabel(backend)}), same guest size and link`);
      console.log(table(['run', 'sim', 'QEMU'], rows) + '\n');
    }
  }

  if (only.has('compare')) {
    // compare's defaults (the thread's case): 128 MiB, 4 vCPUs random, 3000 writes/s each, a
    // 32 MiB/s relay link, precopy bounded at 30 s. One run per backend: each row is a minute.
    const options = parseCompareFlags({});
    const backends: Array<[string, VmBackend]> = [['sim', await makeBackend('sim', { emulate: '10.0' })]];
    try {
      const q = await makeBackend('qemu');
      backends.push([await backendLabel(q), q]);
    } catch (e) {
      console.log(`compare on QEMU: skipped (${(e as Error).message})`);
    }
    const byBackend: Record<string, StrategyResult[]> = {};
    for (const [label, backend] of backends) byBackend[label] = await runCompare({ ...options, backend: backend.kind }, () => {}, { backend });
    const labels = backends.map(([l]) => l);
    const rows: (string | number)[][] = [];
    const strategies = byBackend[labels[0]!]!.map((r) => r.strategy);
    for (const strategy of strategies) {
      for (const label of labels) {
        const r = byBackend[label]!.find((x) => x.strategy === strategy)!;
        const c = rowCells(r);
        rows.push([label, ...c]);
      }
    }
    results['compare'] = byBackend;
    console.log('compare (defaults: 128 MiB, 4 vCPUs random, 3000 writes/s per vCPU, relay at 32 MiB/s, precopy bound 30 s)');
    console.log(table(['backend', 'strategy', 'result', 'total s', 'downtime ms', 'sent MiB', 'work lost', 'worst stall ms', 'to 90% s'], rows) + '\n');
  }

  if (only.has('rss')) {
    const r = await postcopyRun(16 * GiB, 'direct', false);
    results['rss-16GiB'] = r;
    console.log('Peak RSS (VmHWM) for a 16 GiB guest migrated in postcopy, direct');
    console.log(
      table(
        ['side', 'peak RSS MiB', 'migration MB/s'],
        [
          ['source', fmt(r.rss.source / MiB), fmt(r.mbPerSec)],
          ['destination', fmt(r.rss.destination / MiB), fmt(r.mbPerSec)],
        ],
      ) + '\n',
    );
  }
  if (only.has('fault-tail')) results['fault-tail'] = await benchFaultTail({ quick: values.quick }, table);
  if (only.has('fault-thread')) results['fault-thread'] = await benchFaultThread({ quick: values.quick }, table);
  if (only.has('fault-floor')) results['fault-floor'] = await benchFaultFloor({ quick: values.quick }, table);
  if (only.has('recovery-file')) results['recovery-file'] = await benchRecoveryFile({ quick: values.quick });
  if (only.has('libvirt-resume')) results['libvirt-resume'] = await benchLibvirtResume({ quick: values.quick, direct: async (qemu) => qemuRecoveryRun(await makeBackend('qemu', { qemu }), 64 * MiB) });
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
}

main().catch((e) => {
  console.error(`bench failed: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
