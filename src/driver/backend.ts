/**
 * The seam between the orchestrator and what a "VM" is. The orchestrator owns processes,
 * QMP connections, the link and every exit path; a backend only says
 *
 *   - how to start a side (an argv, which the orchestrator hands to `link.wrapCommand` so the
 *     kernel link can put it in its namespace),
 *   - how to turn QMP replies into a SideSnapshot (the sim has `x-query-pages`; QEMU has only
 *     `query-migrate`, so its backend synthesizes what it can and counts recoveries itself),
 *   - and how the destination's memory is verified once the migration completes (the sim
 *     checks every page itself; QEMU's guest is saved with pmemsave and checked here).
 *
 * Two implementations: sim-backend.ts (our Node VM) and qemu-backend.ts (qemu-system-x86_64).
 */
import type { QmpClient } from '../qmp/client.js';
import type { LabEvent, Link, LinkEndpoints, LinkFault, LinkSnapshot, MigrationStatus, PagesInfo, RamStats, RecoveryFileInfo, RecoverySourceInfo, RunState, SavedRam, Side, SideGuest, Snapshot } from '../types.js';

export type BackendKind = 'sim' | 'qemu' | 'libvirt';

/** What a lab asks of the guest; each backend maps it onto its own VM. */
export interface GuestSpec {
  memoryBytes: number;
  pageSize: number;
  vcpus: number;
  workload: 'sequential' | 'random' | 'hotset';
  hotset?: { fraction: number; share: number };
  dirtyRate: number;
  readRate: number;
  seed: number;
  /**
   * Guest threads per vCPU (default 1). With more than one, a thread blocked on a missing page
   * lets its vCPU run another (async page faults), as the 2016 thread points out.
   */
  threadsPerVcpu?: number;
}

/** A side's guest work as the backend can read it, for comparing strategies (compare). */
export interface GuestWork {
  /** Operations done on this side (not the ones carried over at switchover). */
  ops: number;
  /** Its speed now, and its normal (unthrottled, unblocked) speed. */
  opsPerSecond: number;
  nominalOpsPerSecond: number;
  /** Time the guest has run on this side, ms. */
  runningMs: number;
  /** The vCPU throttle in force, percent (0: none). */
  throttlePercentage: number;
  /** The longest single wait of any vCPU for a missing page, ms; null where the backend cannot see it (`note` says why). */
  worstStallMs: number | null;
  /** What a field means on this backend when it is not what its name says (QEMU: see qemu-backend.ts). */
  note?: string;
  /**
   * How long `opsPerSecond` covers, ms (0: no rate yet, unknown rather than zero). Given by a
   * backend whose `read` has no guest counters of its own (QEMU): the orchestrator then puts
   * the rate in the side's `pages.guest`, which the screen shows.
   */
  windowMs?: number;
}

/**
 * Where a lab saves the QEMU source's frozen RAM (`pmemsave`, `${source.ram-file}`) for the
 * QEMU backend's recovery source: this name in the run's runtime directory.
 */
export const SAVED_RAM_FILE = 'source.ram';

export interface BackendContext {
  /** The run's private directory (0700): sockets, the guest image, dumps. */
  runtimeDir: string;
  guest: GuestSpec;
  onEvent(e: Omit<LabEvent, 't'>): void;
  /** The public QMP socket path of a side (the orchestrator's, the console's). */
  qmpPath(side: Side): string;
}

/** One side as its backend read it; the orchestrator adds `alive` and `stalledMs`. */
export interface SideReading {
  runState: RunState | 'unknown';
  status: MigrationStatus;
  ram?: Partial<RamStats>;
  pages?: PagesInfo;
  error?: string;
  /** Destination vCPU blocktime summed over vCPUs (vCPU·ms), where the backend reads it outside `pages` (QEMU: postcopy-vcpu-blocktime added up). */
  blocktimeMs?: number;
  /** query-migrate's `cpu-throttle-percentage` (auto-converge), 0 when absent. */
  throttle?: number;
  /** The guest's speed; the orchestrator fills it from `readGuest` where the backend has it. */
  guest?: SideGuest;
  /** How long `guest.rate` covers, ms, where readGuest says (GuestWork.windowMs): then it goes into `pages.guest`. */
  guestWindowMs?: number;
  /** A number that grows while this side's migration moves; its freezing is `stalledMs`. */
  progress: number;
  /** query-migrate's `x-recovery-file` (a sim source with the capability on). */
  recoveryFile?: RecoveryFileInfo;
  /** query-migrate's `x-recovery-source` (a recovery source in the source's place). */
  recoverySource?: RecoverySourceInfo;
  /** A QEMU source's last accepted pmemsave (SideSnapshot.savedRam). */
  savedRam?: SavedRam;
}

export interface VmBackend {
  readonly kind: BackendKind;
  /**
   * The QEMU version this backend's VMs are ("7.2", "10.0"): the real one's, or the one the
   * sim emulates. Labs name the versions they hold for (src/lab/backend-fit.ts).
   */
  readonly qemuVersion: string;
  /** How long a side's QMP socket may take to answer after spawn. */
  readonly readyTimeoutMs: number;
  /** Once per run, before any VM starts: write the guest image, settle options. May throw. */
  prepare(ctx: BackendContext): Promise<void>;
  /** The argv of one side, before the link wraps it. */
  command(side: Side, ctx: BackendContext): { file: string; args: string[] };
  /** Both sides answer on QMP: wait until the guest is in the state a lab starts from. */
  ready?(ctx: BackendContext): Promise<void>;
  /** The side's QMP client is connected (count commands, watch events). */
  attach(side: Side, client: QmpClient, ctx: BackendContext): void;
  /** A migration status seen by event or poll, once per change, in order. */
  noteStatus(side: Side, from: MigrationStatus, to: MigrationStatus, ctx: BackendContext): void;
  /** Read one side. `mapCells` is how wide a page map the UI wants (where the backend has one). */
  read(side: Side, client: QmpClient, opts: { mapCells: number }): Promise<SideReading>;
  /**
   * Called with both sides read (null: dead or not answering) and the link, before the
   * snapshot is published: fill in what one side can only know from the other (QEMU's
   * destination learns its page totals from the source) and adjust `progress`. May mutate.
   */
  combine(readings: Record<Side, SideReading | null>, link: LinkSnapshot): void;
  /**
   * After the lab's steps: make sure the destination's memory verdict is in the snapshots
   * (`destination.pages.verified`). The sim decides that itself at completion; QEMU is checked
   * here. Never throws; a check that cannot run leaves the verdict null and says why.
   */
  verify(client: (side: Side) => QmpClient | null, ctx: BackendContext): Promise<void>;
  /**
   * The argv of a recovery source (postcopy-lab recovery-source) serving `file` on the source's
   * QMP path, before the link wraps it; absent where this backend has none (say why in
   * `recoverySourceRefusal`).
   */
  recoverySourceCommand?(file: string, digest: string, ctx: BackendContext): { file: string; args: string[] };
  /**
   * What the recovery source serves: the sim source's recovery file (its x-recovery-file report,
   * checked by the orchestrator), or the QEMU source's RAM saved with pmemsave (SAVED_RAM_FILE;
   * no digest). Default 'recovery-file'.
   */
  readonly recoverySourceFrom?: 'recovery-file' | 'saved-ram';
  /** The guest's RAM in bytes as this backend really gives it (`${guest.ram-bytes}`); the lab's size when absent. */
  guestRamBytes?(): number;
  /** Why this backend cannot put a recovery source in the source's place, or absent/null when it can. */
  recoverySourceRefusal?(): string | null;
  /** A side's VM process was replaced by a fresh one (a lab's `vm` action): forget what the old one was doing. */
  restarted?(side: Side): void;
  /** Read a side's guest work; null where this backend cannot (say why in its notes). */
  readGuest?(side: Side, client: QmpClient): Promise<GuestWork | null>;
  /**
   * readGuest reads the destination's guest memory (QEMU's `xp`): on a page that has not arrived
   * it blocks the monitor until the page does. The orchestrator then holds destination reads
   * while a link fault can stop pages, and lets an in-flight one finish before applying one.
   */
  readonly guestReadTouchesPages?: boolean;
  /** Lines of stderr that are noise for this backend (not logged as events). */
  quietStderr?(line: string): boolean;
  /** A line of stderr as the event log shows it: with what it means, where it alarms for nothing. */
  explainStderr?(line: string): string;
}

/**
 * What a lab run drives: the Orchestrator (which starts both VMs itself and speaks QMP to each)
 * or a backend that owns the VMs' lifecycle itself (libvirt: the destination exists only once
 * `virsh migrate` starts it, and every migration-changing command goes through libvirt's job).
 */
export interface RunDriver {
  readonly link: Link | null;
  /** Apply a link fault, where the driver must order it with its own reads (Orchestrator.applyLinkFault); else `link.apply`. */
  applyLinkFault?(fault: LinkFault): Promise<void>;
  /** Restore the link, the counterpart of applyLinkFault; else `link.restore`. */
  restoreLink?(): Promise<void>;
  /** Start the link and the VMs; the addresses the lab's templates name. */
  start(): Promise<LinkEndpoints>;
  snapshot(): Promise<Snapshot>;
  verify(): Promise<void>;
  /** The freshest migration status known for a side. */
  status(side: Side): MigrationStatus;
  /** Send one QMP command (or what it maps to) to a side; rejects with the side's error or the refusal. */
  send(side: Side, execute: string, args: Record<string, unknown> | undefined, oob: boolean): Promise<unknown>;
  /**
   * Send one QMP command around the backend's job, on the side's extra QMP socket (libvirt's
   * way out of a silent blackhole: src/libvirt/commands.ts EXTRA_MONITOR); absent elsewhere.
   */
  sendViaExtraMonitor?(side: Side, execute: string, args: Record<string, unknown> | undefined, oob: boolean): Promise<unknown>;
  /** Whether `side` accepts out-of-band commands now. */
  oobOffered(side: Side): boolean;
  killVm(side: Side): Promise<void>;
  startVm(side: Side): Promise<void>;
  startRecoverySource(): Promise<void>;
  process(side: Side): 'vm' | 'recovery-source';
  recoveryFile(): RecoveryFileInfo | null;
  /** Template values of this backend beyond the link's addresses (libvirt: the domain, the destination's URI). */
  vars?(): Record<string, string>;
  /** A `virsh` subcommand against a side's daemon (argv only); absent where the backend has no libvirt. */
  virsh?(side: Side, args: string[], opts?: { awaitEnd?: boolean }): Promise<string>;
  stop(): Promise<void>;
}

export interface DriverOptions {
  guest: GuestSpec;
  makeLink(runtimeDir: string): Link;
  onEvent(e: Omit<LabEvent, 't'>): void;
  onVmExit?(side: Side, info: { code: number | null; signal: string | null; stderrTail: string[] }): void;
  mapCells?: number;
}

/** A backend that starts, watches and stops its VMs itself (libvirt), instead of the Orchestrator. */
export interface LifecycleBackend {
  readonly kind: BackendKind;
  readonly qemuVersion: string;
  driver(opts: DriverOptions): RunDriver;
}

export type AnyBackend = VmBackend | LifecycleBackend;

export function ownsLifecycle(b: AnyBackend): b is LifecycleBackend {
  return 'driver' in b;
}
