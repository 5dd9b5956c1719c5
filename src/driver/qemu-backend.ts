/**
 * The QEMU backend: each side is a real qemu-system-x86_64 running the generated test guest
 * (src/qemu/guest-image.ts, the `-bios` ROM form), with identical machine options on both
 * sides and `-incoming defer` on the destination.
 *
 * What QEMU reports, and what this backend adds:
 *   - source: `query-migrate` `ram.*` exactly as QEMU gives it;
 *   - destination: the migration status only (QEMU keeps no page counters there), so its
 *     PagesInfo is synthesized from what is known: total and remaining from the source, no page
 *     map, no walker. Its `stalledMs` follows the bytes the link delivered to it.
 *   - `recoveries` / `recovery-attempts`: counted here, from status changes (postcopy-paused ...
 *     -> postcopy-active is a completed recovery), from the destination entering
 *     postcopy-recover (a recovery channel accepted), and from the source's own
 *     `migrate {resume: true}` commands (a refused connect changes no state on QEMU 7.2).
 *   - `verified`: after completion, the destination guest is paused, its RAM saved with
 *     pmemsave and checked for the guest's increment pattern (consistency.ts), then resumed.
 *   - the guest's work (`readGuest`): the guest counts its writes at a guest-physical address
 *     (guest-image.ts OPS_ADDRESS), read with HMP `xp` through `human-monitor-command`.
 *
 * The lab's guest maps onto the generated guest as: dirty rate = `dirtyRate` x `vcpus` pages per
 * second, all of it on one vCPU (the guest is one loop; QEMU gets no -smp), paced by the TSC;
 * working set = the hot pages of a `hotset` workload (fraction x pages, written in order: the
 * cold share is not modelled), else every page; a `random` workload picks each page at random
 * (seeded by the lab's seed). Reads (`readRate`) have no QEMU counterpart.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { builtEntry } from '../entry-path.js';
import type { QmpClient } from '../qmp/client.js';
import { MAX_DIRTY_PAGES_PER_SECOND, RAM_HEADROOM_MIB, writeGuestImage, type GuestLayout } from '../qemu/guest-image.js';
import { readGuestOps, verifyGuestMemory, waitForPasses } from '../qemu/guest-probe.js';
import { buildQemuArgs, DIRTY_RING_SIZE, dirtyLimitRefusal, type Accel, type QemuVersion } from '../qemu/launcher.js';
import { isPaused, isRecovering } from '../sim/states.js';
import { recoveryFailureStrands } from '../sim/versions.js';
import type { LinkSnapshot, MigrationStatus, PagesInfo, RamStats, RecoverySourceInfo, RunState, SavedRam, Side } from '../types.js';
import type { BackendContext, GuestSpec, GuestWork, SideReading, VmBackend } from './backend.js';

const MiB = 1024 * 1024;
const CLI_MAIN = builtEntry('../cli.js', import.meta.url);
/** The largest guest used under TCG: every guest instruction is translated, so keep it small. */
export const TCG_MAX_MEMORY_MIB = 128;
/** The smallest guest: the written range needs a few MiB above the first one. */
const MIN_MEMORY_MIB = 16;

export interface QemuBackendOptions {
  bin: string;
  accel: Accel;
  version: QemuVersion;
  /** Why TCG, when it is TCG: shown as a warning at the start of the run. */
  accelNote?: string;
  /** Machine type, identical on both sides. Default `pc`. */
  machine?: string;
  /**
   * Start both sides with KVM's dirty ring, so QEMU's `dirty-limit` capability can be used
   * (compare's dirty-limit strategy). Refused at prepare, saying why, where it cannot work.
   */
  dirtyRing?: boolean;
}

/** The generated guest's dirty rate and working set for a lab's guest (see the header). */
export function qemuGuestWorkload(
  g: Pick<GuestSpec, 'dirtyRate' | 'vcpus' | 'workload' | 'hotset' | 'seed'>,
  writtenPages: number,
): { dirtyPagesPerSecond: number; workingSetPages: number; order: 'sequential' | 'random'; seed: number } {
  const dirtyPagesPerSecond = Math.min(MAX_DIRTY_PAGES_PER_SECOND, Math.round(g.dirtyRate * Math.max(1, g.vcpus)));
  const workingSetPages =
    g.workload === 'hotset' && g.hotset ? Math.min(writtenPages, Math.max(1, Math.round(g.hotset.fraction * writtenPages))) : writtenPages;
  // A random workload writes random pages (seeded), so a postcopy destination faults on pages
  // it has not received; in address order the guest only ever meets pages already sent.
  return { dirtyPagesPerSecond, workingSetPages, order: g.workload === 'random' ? 'random' : 'sequential', seed: g.seed };
}

/** What readGuest remembers of a side between reads. */
interface GuestSeen {
  /** Recent (time, ops) samples, for the rate over about two seconds. */
  samples: { t: number; ops: number }[];
  running: boolean;
  runningMs: number;
  lastT: number;
  /** The counter's value this side's own work is counted from (destination: where the source stopped). */
  base: number | null;
  ops: number;
}

/** The span the guest's ops-per-second is measured over, as the sim's (workload.ts). */
const RATE_WINDOW_MS = 2000;

/** Guest RAM and the written range for a lab's memory size on this accelerator. */
export function qemuGuestSize(memoryBytes: number, accel: Accel): { memoryMiB: number; endMiB: number; shrunk: boolean } {
  const asked = Math.max(MIN_MEMORY_MIB, Math.ceil(memoryBytes / MiB));
  const memoryMiB = accel === 'tcg' ? Math.min(asked, TCG_MAX_MEMORY_MIB) : asked;
  // The guest writes from 1 MiB up to endMiB; keep it clear of the top of RAM (guest-image.ts).
  return { memoryMiB, endMiB: memoryMiB - RAM_HEADROOM_MIB, shrunk: memoryMiB < asked };
}

interface SideCounters {
  /** Completed recoveries: postcopy-active again after a pause. */
  recoveries: number;
  attempts: number;
  /** A pause was seen since the last postcopy-active. */
  paused: boolean;
}

export class QemuBackend implements VmBackend {
  readonly kind = 'qemu' as const;
  readonly readyTimeoutMs = 20_000;
  readonly guestReadTouchesPages = true;
  private memoryMiB = 0;
  private layout: GuestLayout | null = null;
  private image = '';
  private readonly counters: Record<Side, SideCounters> = {
    source: { recoveries: 0, attempts: 0, paused: false },
    destination: { recoveries: 0, attempts: 0, paused: false },
  };
  private verified: boolean | null = null;
  private verifying: Promise<void> | null = null;
  private lastDest: { received: number; total: number; pageSize: number } = { received: 0, total: 0, pageSize: 4096 };
  /**
   * The source's pages sent at least once, estimated: the most the source has ever no longer had
   * to send. QEMU's remaining grows back at each dirty-bitmap sync (the switchover's above all),
   * and "sent" went down with it (7906 to 1883 at a switch, playing qemu-recovery-file).
   */
  private sentOnce = 0;
  private destStatus: MigrationStatus = 'none';
  /** The destination accepted migrate-incoming. */
  private incomingListening = false;
  /** The source's last accepted pmemsave. */
  private savedRam: SavedRam | undefined;
  private guestSeen: Record<Side, GuestSeen | null> = { source: null, destination: null };
  /** The source's counter once its guest stopped for good (the destination carries on from it). */
  private sourceFinalOps: number | null = null;
  /** The destination's largest postcopy-vcpu-blocktime (one vCPU's total), with postcopy-blocktime on. */
  private blocktimeWorstMs: number | undefined;
  /** The destination has been in postcopy in this run. */
  private destPostcopy = false;
  /** The destination's postcopy-blocktime capability, asked once it is in postcopy (undefined: not asked yet). */
  private destBlocktimeCap: boolean | undefined;

  readonly qemuVersion: string;

  constructor(readonly opts: QemuBackendOptions) {
    this.qemuVersion = `${opts.version.major}.${opts.version.minor}`;
  }

  /**
   * QEMU's default CPU model (qemu64) asks for CPU features; under KVM, one the host's CPU lacks
   * is left out of the guest with a warning at start-up (here, in a VM: "CPUID.01H:ECX.pni").
   * It is the first line of every QEMU lab and reads as trouble; the lab's guest uses none.
   */
  explainStderr(line: string): string {
    if (/warning: host doesn't support requested feature: CPUID/.test(line)) {
      return `${line} (harmless: QEMU leaves that CPU feature out of the guest, on both sides; the lab's guest does not use it)`;
    }
    return line;
  }

  /** Why dirty-limit cannot be used with this QEMU and accelerator, or null when it can. */
  dirtyLimitRefusal(): string | null {
    return dirtyLimitRefusal(this.opts.version, this.opts.accel);
  }

  async prepare(ctx: BackendContext): Promise<void> {
    this.forgetRun();
    if (this.opts.dirtyRing) {
      const refusal = this.dirtyLimitRefusal();
      if (refusal) throw new Error(refusal);
    }
    const size = qemuGuestSize(ctx.guest.memoryBytes, this.opts.accel);
    this.memoryMiB = size.memoryMiB;
    this.image = path.join(ctx.runtimeDir, 'guest.rom');
    // Stride 1: the fill pass writes every page of the range, so every page is non-zero and
    // costs a full page on the wire, as a busy guest's would (a zero page is sent as a few
    // bytes, and a mostly-zero guest would finish postcopy before any fault could be injected).
    const writtenPages = (size.endMiB - 1) * (MiB / 4096);
    const work = qemuGuestWorkload(ctx.guest, writtenPages);
    this.layout = await writeGuestImage(this.image, { endMiB: size.endMiB, stridePages: 1, ...work }, 'rom');
    ctx.onEvent({
      kind: 'info',
      text:
        `QEMU backend: ${this.opts.version.text} (${this.opts.bin}), accel ${this.opts.accel}${this.opts.dirtyRing ? `, dirty ring ${DIRTY_RING_SIZE}` : ''}, guest ${size.memoryMiB} MiB: ` +
        `fills every page from 1 MiB to ${size.endMiB} MiB once, then writes ${work.dirtyPagesPerSecond} pages/s (${ctx.guest.dirtyRate} x ${ctx.guest.vcpus} vCPUs, on one vCPU) ` +
        `over a working set of ${work.workingSetPages} pages${work.order === 'random' ? ' in random order' : ''}`,
    });
    if (this.opts.accelNote) ctx.onEvent({ kind: 'warning', text: this.opts.accelNote });
    if (size.shrunk) {
      ctx.onEvent({ kind: 'warning', text: `under TCG the guest is ${size.memoryMiB} MiB instead of the lab's ${Math.ceil(ctx.guest.memoryBytes / MiB)} MiB (TCG is too slow for more)` });
    }
  }

  command(side: Side, ctx: BackendContext): { file: string; args: string[] } {
    return buildQemuArgs({
      bin: this.opts.bin,
      memoryMiB: this.memoryMiB,
      image: this.image,
      imageKind: 'rom',
      qmpSocket: ctx.qmpPath(side),
      incoming: side === 'destination' ? 'defer' : undefined,
      kvm: this.opts.accel === 'kvm',
      serialFile: path.join(ctx.runtimeDir, `${side}.serial`),
      machine: this.opts.machine,
      name: `postcopy-lab-${side}`,
      dirtyRingSize: this.opts.dirtyRing ? DIRTY_RING_SIZE : undefined,
    });
  }

  /**
   * Wait until the source guest has written its whole range once. Until then most of its RAM
   * is still zero, and QEMU sends a zero page as a few bytes: the migration would race through
   * an untouched guest (under nested KVM the first touch of each page is slow, a pass can take
   * seconds) instead of the busy one the labs describe.
   */
  async ready(ctx: BackendContext): Promise<void> {
    const started = performance.now();
    const serial = path.join(ctx.runtimeDir, 'source.serial');
    await waitForPasses(serial, 1, this.opts.accel === 'kvm' ? 60_000 : 120_000);
    ctx.onEvent({ kind: 'info', side: 'source', text: `guest booted and wrote its whole range once (${Math.round(performance.now() - started)} ms)` });
  }

  attach(side: Side, client: QmpClient, ctx: BackendContext): void {
    // Watch the commands sent on this side (by the lab, the console or the person), for what
    // QEMU does not report: a source `migrate {resume: true}` is a recovery attempt even when
    // its connect fails (QEMU 7.2 then stays in postcopy-paused without a state change), and a
    // destination's accepted migrate-incoming means it listens (see read()).
    const seen = (command: string, args: Record<string, unknown> | undefined, ok: boolean): void => {
      if (side === 'source' && command === 'migrate' && args?.resume === true) this.counters.source.attempts++;
      // The RAM a stand-in source will need once this source is lost (qemu-recovery-file).
      if (side === 'source' && command === 'pmemsave' && ok) {
        const bytes = Number(args?.size);
        this.savedRam = { file: String(args?.filename), bytes, complete: bytes >= this.guestRamBytes() };
      }
      if (side === 'destination' && command === 'migrate-incoming' && ok && !this.incomingListening) {
        this.incomingListening = true;
        ctx.onEvent({
          kind: 'info',
          side,
          text: "x-note: QEMU before 8.1 reports the destination's status as 'none' until the source connects; newer QEMU (and the sim) say 'setup' as soon as migrate-incoming listens, so the lab shows 'setup' from here",
        });
      }
    };
    const wrap = (run: QmpClient['execute']): QmpClient['execute'] =>
      (<T>(command: string, args?: Record<string, unknown>, o?: { timeoutMs?: number }) => {
        const p = run<T>(command, args, o);
        p.then(
          () => seen(command, args, true),
          () => seen(command, args, false),
        );
        return p;
      }) as QmpClient['execute'];
    client.execute = wrap(client.execute.bind(client));
    client.executeOob = wrap(client.executeOob.bind(client));
  }

  readonly recoverySourceFrom = 'saved-ram' as const;

  guestRamBytes(): number {
    return this.memoryMiB * MiB;
  }

  /**
   * The stand-in source for a real QEMU destination (src/qemu-recovery): the source's RAM as
   * the lab saved it with pmemsave while the source was postcopy-paused, and the source's own
   * binary, image, memory, machine and accelerator (they fix the "ram" section id its probe
   * QEMU learns). Before 8.2 a destination refused in postcopy-recover dies (SIGSEGV), so
   * there it runs --partial: a file that lacks pages is served as far as it goes and the
   * destination is left postcopy-paused, alive, instead.
   */
  recoverySourceCommand(labFile: string, _digest: string, ctx: BackendContext): { file: string; args: string[] } {
    // The RAM where the person saved it, whole, when that was not the lab's file (found playing
    // qemu-recovery-file: pmemsave to /tmp/myram passed the step, and the stand-in then found no
    // file, with the source already killed). A relative name is QEMU's cwd's: the lab's file then.
    const saved = this.savedRam;
    const file = saved?.complete && saved.file !== labFile && path.isAbsolute(saved.file) && existsSync(saved.file) && !existsSync(labFile) ? saved.file : labFile;
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      throw new Error(
        `the source's RAM was never saved to ${file}: while the source is postcopy-paused (and still alive), run pmemsave {"val": 0, "size": ${this.guestRamBytes()}, "filename": "${file}"} on it (\${source.ram-file}, \${guest.ram-bytes})`,
      );
    }
    if (size < this.guestRamBytes()) {
      throw new Error(`the saved RAM ${file} has ${size} bytes, less than the guest's ${this.guestRamBytes()}: pmemsave {"val": 0, "size": ${this.guestRamBytes()}} saves all of it`);
    }
    const v = this.opts.version;
    const refusalKillsDestination = recoveryFailureStrands(v.major, v.minor);
    return {
      file: process.execPath,
      args: [
        CLI_MAIN,
        'recovery-source',
        '--qemu-frozen',
        file,
        '--qmp',
        ctx.qmpPath('source'),
        '--qemu',
        this.opts.bin,
        '--image',
        this.image,
        '--memory',
        String(this.memoryMiB),
        '--machine',
        this.opts.machine ?? 'pc',
        '--accel',
        this.opts.accel,
        ...(refusalKillsDestination ? ['--partial'] : []),
      ],
    };
  }

  /**
   * A backend serves run after run (compare's strategies, a lab's rewind): what it learnt of the
   * last run's VMs must not count in the next. A stale sourceFinalOps made compare's postcopy row
   * lose 112 % of the guest's work (its destination's base came from the previous strategy).
   */
  private forgetRun(): void {
    for (const side of ['source', 'destination'] as const) this.counters[side] = { recoveries: 0, attempts: 0, paused: false };
    this.verified = null;
    this.verifying = null;
    this.lastDest = { received: 0, total: 0, pageSize: 4096 };
    this.sentOnce = 0;
    this.destStatus = 'none';
    this.incomingListening = false;
    this.guestSeen = { source: null, destination: null };
    this.sourceFinalOps = null;
    this.blocktimeWorstMs = undefined;
    this.destPostcopy = false;
    this.destBlocktimeCap = undefined;
  }

  restarted(side: Side): void {
    // A fresh destination waits for its own migrate-incoming; recovery counts stay (they are the run's).
    if (side === 'destination') {
      this.incomingListening = false;
      this.destStatus = 'none';
    }
    this.guestSeen[side] = null;
  }

  /**
   * The guest's work on a side, from its ops counter (read with `xp`), timed here:
   *   - ops: the source's count since boot; the destination's since the source stopped (its
   *     own work, not what it carried over), or since its first reading if the source was not
   *     seen stopped;
   *   - opsPerSecond over the last ~2 s of readings (0 until two readings exist);
   *   - runningMs: the time between readings that both found the VM running (as fine as the
   *     caller reads);
   *   - throttlePercentage: the source's `cpu-throttle-percentage` (auto-converge);
   *   - worstStallMs: QEMU reports no single-stall figure. With the destination's
   *     `postcopy-blocktime` capability on, the largest of `postcopy-vcpu-blocktime` (each
   *     vCPU's total time blocked on missing pages, ms) stands in; else null on the destination
   *     (unknown) and 0 on the source (a source's vCPUs never wait for pages).
   * A destination that is not running is not read: before it runs, a postcopy destination's
   * not-yet-received page would block QEMU's monitor until the page arrives.
   */
  async readGuest(side: Side, q: QmpClient): Promise<GuestWork | null> {
    if (!this.layout) return null;
    const [st, mig] = await Promise.all([
      q.execute<{ status: string }>('query-status', undefined, { timeoutMs: 5000 }),
      q.execute<{ status?: string; 'cpu-throttle-percentage'?: number; 'postcopy-vcpu-blocktime'?: number[] }>('query-migrate', undefined, { timeoutMs: 5000 }),
    ]);
    const running = st.status === 'running';
    const now = performance.now();
    const seen = this.guestSeen[side];
    let raw: number | null = null;
    // A paused postcopy destination may lack the counter's page: `xp` would then block QEMU's
    // monitor until the page arrives, which takes a recovery, which takes that monitor.
    const destPaused = side === 'destination' && (isPaused(this.destStatus) || isRecovering(this.destStatus));
    if (side === 'source' || (running && !destPaused)) raw = await readGuestOps(q);
    if (side === 'source' && raw !== null && !running && mig.status && mig.status !== 'none') this.sourceFinalOps = raw;
    const s: GuestSeen = seen ?? { samples: [], running, runningMs: 0, lastT: now, base: null, ops: 0 };
    if (seen && seen.running && running) s.runningMs += now - seen.lastT;
    s.running = running;
    s.lastT = now;
    if (raw !== null) {
      s.base ??= side === 'source' ? 0 : (this.sourceFinalOps ?? raw);
      s.ops = Math.max(0, raw - s.base);
      s.samples.push({ t: now, ops: s.ops });
      while (s.samples.length > 2 && now - s.samples[1].t >= RATE_WINDOW_MS) s.samples.shift();
    }
    this.guestSeen[side] = s;
    const oldest = s.samples[0];
    const dt = oldest ? now - oldest.t : 0;
    const measured = running && raw !== null && dt > 0;
    const opsPerSecond = measured ? ((s.ops - oldest.ops) * 1000) / dt : 0;
    const blocktime = mig['postcopy-vcpu-blocktime'];
    return {
      ops: s.ops,
      opsPerSecond,
      nominalOpsPerSecond: this.layout.dirtyPagesPerSecond ?? 0,
      runningMs: Math.round(s.runningMs),
      throttlePercentage: side === 'source' ? (mig['cpu-throttle-percentage'] ?? 0) : 0,
      windowMs: measured ? Math.round(dt) : 0,
      worstStallMs: blocktime?.length ? Math.max(...blocktime) : side === 'destination' ? null : 0,
      note:
        side === 'destination'
          ? blocktime?.length
            ? 'worstStallMs is the largest per-vCPU total of postcopy-vcpu-blocktime (QEMU reports no single-stall figure)'
            : 'worst stall: QEMU reports vCPU stalls only as postcopy-vcpu-blocktime, and the postcopy-blocktime capability is off'
          : undefined,
    };
  }

  noteStatus(side: Side, from: MigrationStatus, to: MigrationStatus, ctx: BackendContext): void {
    const c = this.counters[side];
    if (side === 'destination') this.destStatus = to;
    if (side === 'destination' && to.startsWith('postcopy')) this.destPostcopy = true;
    if (side === 'destination' && to === 'postcopy-recover') c.attempts++;
    if (isPaused(to) || isRecovering(to)) c.paused = true;
    if (to === 'postcopy-active' && c.paused) {
      c.paused = false;
      c.recoveries++;
      // A destination that went straight from paused to active had its recover state missed.
      if (side === 'destination' && c.attempts < c.recoveries) c.attempts = c.recoveries;
    }
    if (isPaused(to) && isRecovering(from)) {
      ctx.onEvent({
        kind: 'info',
        side,
        text: `x-note: the recovery failed and ${side} fell back to postcopy-paused (${from} -> ${to}): another recovery can be tried`,
      });
    }
  }

  async read(side: Side, q: QmpClient): Promise<SideReading> {
    const [st, mig] = await Promise.all([
      q.execute<{ status: string }>('query-status', undefined, { timeoutMs: 5000 }),
      q.execute<{
        status?: string;
        ram?: Partial<RamStats>;
        'error-desc'?: string;
        'postcopy-vcpu-blocktime'?: number[];
        'cpu-throttle-percentage'?: number;
        'x-recovery-source'?: RecoverySourceInfo;
      }>('query-migrate', undefined, {
        timeoutMs: 5000,
      }),
    ]);
    let status = (mig.status ?? 'none') as MigrationStatus;
    if (side === 'destination' && status === 'none' && this.incomingListening) status = 'setup';
    const reading: SideReading = {
      runState: st.status as RunState,
      status,
      ram: mig.ram,
      error: mig['error-desc'],
      throttle: mig['cpu-throttle-percentage'] ?? 0,
      progress: mig.ram?.transferred ?? 0,
    };
    // Our blocktime is the sum over vCPUs (vCPU·ms): QEMU's postcopy-vcpu-blocktime added up.
    // Its postcopy-blocktime is another figure, the time all vCPUs were blocked at once.
    const perVcpu = mig['postcopy-vcpu-blocktime'];
    if (perVcpu?.length) reading.blocktimeMs = perVcpu.reduce((a, b) => a + b, 0);
    // QEMU gives blocktime only once the incoming migration completed: until then, ask once
    // whether it is measuring at all ("at the end") or not ("not measured").
    else if (side === 'destination' && (this.destPostcopy || status.startsWith('postcopy')) && this.destBlocktimeCap === undefined) {
      const caps = await q.execute<Array<{ capability: string; state: boolean }>>('query-migrate-capabilities', undefined, { timeoutMs: 5000 });
      this.destBlocktimeCap = caps.some((c) => c.capability === 'postcopy-blocktime' && c.state);
    }
    if (side === 'destination') this.blocktimeWorstMs = perVcpu?.length ? Math.max(...perVcpu) : undefined;
    // The stand-in source (src/qemu-recovery/qmp-front.ts) in the lost source's place.
    if (mig['x-recovery-source']) reading.recoverySource = mig['x-recovery-source'];
    if (side === 'source' && this.savedRam) reading.savedRam = this.savedRam;
    return reading;
  }

  /**
   * QEMU reports no per-page view: `received` is what the source no longer has to send (the
   * best it tells about the destination), and the source's `sent` the most that ever was.
   */
  private pages(side: Side, p: { total: number; received: number; sent?: number; pageSize: number; blocktimeMs?: number; wireBytes: number }): PagesInfo {
    const c = this.counters[side];
    return {
      'page-size': p.pageSize,
      total: p.total,
      sent: side === 'source' ? (p.sent ?? p.received) : 0,
      received: side === 'destination' ? p.received : 0,
      requested: 0,
      'in-flight': 0,
      missing: Math.max(0, p.total - p.received),
      'duplicates-discarded': 0,
      resent: 0,
      'blocked-vcpus': 0,
      'fault-latency-us': { p50: 0, p99: 0, count: 0 },
      'blocktime-ms': p.blocktimeMs ?? 0,
      'blocktime-worst-vcpu-ms': side === 'destination' ? (this.blocktimeWorstMs ?? 0) : 0,
      // QEMU reports blocktime only with postcopy-blocktime on, and only once the incoming
      // migration completed: before postcopy 0 is true (no vCPU waits for a page in precopy);
      // after, until reported, it is unknown: measured ("at the end") or not measured at all.
      ...(side === 'destination' && p.blocktimeMs === undefined && this.destPostcopy
        ? this.destBlocktimeCap
          ? { 'blocktime-at-end': true }
          : { 'blocktime-unknown': true }
        : {}),
      // QEMU counts none of these: its destination's requests in flight, discarded duplicates
      // and vCPUs blocked now (its blocktime is a total), its source's pages sent again after a
      // recovery.
      unreported: side === 'destination' ? ['requested', 'duplicates-discarded', 'blocked-vcpus'] : ['resent'],
      ...(side === 'destination' ? { 'received-current': true } : {}),
      'wire-bytes': p.wireBytes,
      walker: { active: false, position: 0, total: 0, done: false },
      guest: { progress: 0, 'ops-per-second': 0, 'window-ms': 0 },
      recoveries: c.recoveries,
      'recovery-attempts': c.attempts,
      verified: side === 'destination' ? this.verified : null,
    };
  }

  combine(readings: Record<Side, SideReading | null>, link: LinkSnapshot): void {
    const src = readings.source;
    if (src?.ram?.total) {
      const pageSize = src.ram['page-size'] || 4096;
      const total = Math.round(src.ram.total / pageSize);
      // Pages the source no longer has to send: the best QEMU tells about what the destination has.
      const received = src.status === 'completed' ? total : Math.max(0, total - Math.round((src.ram.remaining ?? 0) / pageSize));
      this.lastDest = { received, total, pageSize };
      this.sentOnce = Math.min(total, Math.max(this.sentOnce, received));
      src.pages = this.pages('source', { total, received, sent: this.sentOnce, pageSize, wireBytes: src.ram.transferred ?? 0 });
    }
    const dst = readings.destination;
    if (dst) {
      const d = this.lastDest;
      const received = dst.status === 'completed' ? d.total : d.received;
      const wireBytes = link['source-to-destination'].bytesForwarded;
      dst.pages = this.pages('destination', { total: d.total, received, pageSize: d.pageSize, blocktimeMs: dst.blocktimeMs, wireBytes });
      // QEMU's destination has no counters: it progresses when the link delivers bytes to it.
      dst.progress = wireBytes;
    }
  }

  async verify(client: (side: Side) => QmpClient | null, ctx: BackendContext): Promise<void> {
    this.verifying ??= this.runVerify(client, ctx);
    return this.verifying;
  }

  private async runVerify(client: (side: Side) => QmpClient | null, ctx: BackendContext): Promise<void> {
    const q = client('destination');
    if (this.destStatus !== 'completed' || !q || !this.layout) {
      ctx.onEvent({
        kind: 'info',
        side: 'destination',
        text: `memory not verified: the migration did not complete on the destination (status ${this.destStatus}); reading a postcopy guest's missing pages would block QEMU`,
      });
      this.verifying = null;
      return;
    }
    const dump = path.join(ctx.runtimeDir, 'destination.mem');
    const started = performance.now();
    try {
      const st = await q.execute<{ status: string; running: boolean }>('query-status');
      const r = await verifyGuestMemory(q, this.layout, dump);
      if (st.running) await q.execute('cont');
      this.verified = r.ok;
      ctx.onEvent({
        kind: r.ok ? 'info' : 'error',
        side: 'destination',
        text: `memory ${r.ok ? 'verified' : 'NOT consistent'} (pmemsave + check, ${Math.round(performance.now() - started)} ms): ${r.explanation}`,
        data: r,
      });
    } catch (e) {
      this.verified = false;
      ctx.onEvent({ kind: 'error', side: 'destination', text: `memory verification could not run: ${(e as Error).message}` });
    }
  }
}
