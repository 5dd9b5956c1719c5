/**
 * The orchestrator owns lifecycles: it creates the private runtime directory, starts the link,
 * starts the source and destination VMs as separate OS processes, connects a QMP client to
 * each, polls them into one Snapshot, and on every exit path stops everything it started.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { QmpClient } from '../qmp/client.js';
import type { LabEvent, Link, LinkEndpoints, LinkFault, LinkSnapshot, MigrationStatus, PagesInfo, RecoveryFileInfo, Side, SideSnapshot, Snapshot } from '../types.js';
import { SAVED_RAM_FILE, type BackendContext, type GuestSpec, type GuestWork, type RunDriver, type SideReading, type VmBackend } from './backend.js';
import { notAStateChange } from './migration-events.js';
import { SimBackend } from './sim-backend.js';
import { makeRuntimeDir } from '../util/runtime-dir.js';
import { isCableFault } from '../link/fault-model.js';

export type { GuestSpec } from './backend.js';
export { VM_MAIN } from './sim-backend.js';

export interface OrchestratorOptions {
  guest: GuestSpec;
  /** Builds the link once the runtime directory exists. */
  makeLink(runtimeDir: string): Link;
  /** Every line of the run's event log goes here. */
  onEvent(e: Omit<LabEvent, 't'>): void;
  /** A VM process ended without being asked to. */
  onVmExit?(side: Side, info: { code: number | null; signal: string | null; stderrTail: string[] }): void;
  /** Cells in the page map of each snapshot. */
  mapCells?: number;
  /** What a VM is: the sim (default) or QEMU. */
  backend?: VmBackend;
}

/** How long a fault waits for a destination guest read in flight (one blocked on a page gets it while the link is up). */
const GUEST_READ_SETTLE_MS = 2000;

/** What runs on a side: the backend's VM, or (source only) a recovery source serving the lost source's file. */
export type SideProcess = 'vm' | 'recovery-source';

interface VmHandle {
  side: Side;
  what: SideProcess;
  proc: ResultPromise<{ stdin: 'pipe'; stdout: 'ignore'; stderr: 'pipe'; reject: false }>;
  qmp: QmpClient | null;
  alive: boolean;
  stopping: boolean;
  stderrTail: string[];
  exit: Promise<void>;
}

const STDERR_TAIL = 20;
/** How long a recovery source may take to open and check its file before QMP answers. */
const RECOVERY_SOURCE_READY_MS = 120_000;

export class Orchestrator implements RunDriver {
  runtimeDir = '';
  link: Link | null = null;
  endpoints: LinkEndpoints | null = null;
  private readonly vms = new Map<Side, VmHandle>();
  private readonly startedAt = performance.now();
  private stopped = false;
  private lastProgress = new Map<Side, { value: number; at: number }>();
  private lastStatus = new Map<Side, MigrationStatus>();
  /** Each side's last page counters, kept for a VM that died: its end screen shows what it had, not zeros. */
  private lastPages = new Map<Side, PagesInfo>();
  /** A cable fault is on: a destination page may never come (see applyLinkFault). */
  private pagesMayStop = false;
  /** The destination's guest read in flight, where it touches pages. */
  private destGuestRead: Promise<unknown> = Promise.resolve();
  /** When each side's last MIGRATION event arrived: a poll issued before it may be stale. */
  private lastEventAt = new Map<Side, number>();
  readonly backend: VmBackend;
  private ctx: BackendContext | null = null;
  /**
   * The last `x-recovery-file` the source VM reported: once the source is gone it is the only
   * record of where its file is, whether it was complete, and the guest's digest.
   */
  private lastRecoveryFile: RecoveryFileInfo | null = null;
  /** The relay's `refused` and `refusedSecond` counts already told (a new one is logged once). */
  private refusedSeen = { all: 0, second: 0 };

  constructor(private readonly opts: OrchestratorOptions) {
    this.backend = opts.backend ?? new SimBackend();
  }

  private context(): BackendContext {
    this.ctx ??= {
      runtimeDir: this.runtimeDir,
      guest: this.opts.guest,
      onEvent: (e) => this.opts.onEvent(e),
      qmpPath: (side) => this.qmpPath(side),
    };
    return this.ctx;
  }

  elapsed(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  async start(): Promise<LinkEndpoints> {
    this.runtimeDir = await makeRuntimeDir();
    await this.backend.prepare(this.context());
    this.link = this.opts.makeLink(this.runtimeDir);
    this.endpoints = await this.link.start();
    this.opts.onEvent({ kind: 'info', text: `link '${this.link.kind}' up; destination listens on ${fmt(this.endpoints.incoming.listen)}, source connects to ${fmt(this.endpoints.incoming.connect)}` });
    for (const side of ['source', 'destination'] as const) this.spawnVm(side);
    await Promise.all([...this.vms.values()].map((vm) => this.connect(vm)));
    await this.backend.ready?.(this.context());
    return this.endpoints;
  }

  /** Connect QMP to a freshly spawned VM and follow its events; throws if it exits first. */
  private async connect(vm: VmHandle): Promise<void> {
    const sock = this.qmpPath(vm.side);
    // A recovery source checks every record of its file before it listens: seconds per 100 MB
    // on a loaded machine, longer than a VM takes to answer.
    const ready = vm.what === 'recovery-source' ? RECOVERY_SOURCE_READY_MS : this.backend.readyTimeoutMs;
    const client = await Promise.race([
      QmpClient.connect(sock, { retryUntilMs: ready, timeoutMs: 10_000 }),
      vm.exit.then(() => {
        throw new Error(`the ${vm.side} VM exited while starting: ${vm.stderrTail.slice(-3).join(' | ') || 'no output'}`);
      }),
    ]);
    vm.qmp = client;
    this.backend.attach(vm.side, client, this.context());
    client.on('event', (ev: { event: string; data?: Record<string, unknown> }) => {
      if (ev.event === 'MIGRATION' && typeof ev.data?.status === 'string') {
        // Some MIGRATION events change no state (migration-events.ts): log them as events.
        const notState = notAStateChange(vm.side, this.status(vm.side), ev.data.status as MigrationStatus);
        if (notState) {
          this.opts.onEvent({ kind: 'event', side: vm.side, text: notState, data: ev });
          return;
        }
        // Events see every state, even the brief ones polling would miss (postcopy-recover).
        this.lastEventAt.set(vm.side, performance.now());
        this.noteStatus(vm.side, ev.data.status as MigrationStatus);
        return;
      }
      this.opts.onEvent({ kind: 'event', side: vm.side, text: `${ev.event}${ev.data ? ' ' + JSON.stringify(ev.data) : ''}`, data: ev });
    });
  }

  /** Whether a side's VM process is running. */
  running(side: Side): boolean {
    return this.vms.get(side)?.alive ?? false;
  }

  /**
   * Kill a side's VM process as an operator would (SIGKILL: no goodbye on the migration
   * channel), and wait until it is gone. Not a death to report: it was asked for. A side
   * already gone is left as it is.
   */
  async killVm(side: Side): Promise<void> {
    const vm = this.vms.get(side);
    if (!vm || this.stopped) return;
    vm.stopping = true;
    if (vm.alive) {
      vm.qmp?.close();
      vm.proc.kill('SIGKILL');
      this.opts.onEvent({ kind: 'info', side, text: `the ${side} VM process was killed (SIGKILL), as asked`, data: { say: true } });
    }
    await vm.exit;
  }

  /**
   * Start a fresh VM process for a side whose process is gone, with the same argv (for the
   * destination that is a new `-incoming defer` VM waiting for migrate-incoming), and connect
   * QMP to it. The link stays as it is; the side's state starts again from none.
   */
  async startVm(side: Side): Promise<void> {
    if (this.stopped) throw new Error('the run has stopped');
    if (this.vms.get(side)?.alive) throw new Error(`the ${side} VM is still running: kill it first (or restart it)`);
    await this.vms.get(side)?.exit;
    // The old process's socket file would answer nothing; the fresh one makes its own.
    await rm(this.qmpPath(side), { force: true });
    this.lastStatus.delete(side);
    this.lastPages.delete(side);
    this.lastProgress.delete(side);
    this.lastEventAt.delete(side);
    if (side === 'source') this.lastRecoveryFile = null;
    if (this.stopped) throw new Error('the run has stopped');
    this.backend.restarted?.(side);
    this.spawnVm(side);
    await this.connect(this.vms.get(side)!);
    this.opts.onEvent({ kind: 'info', side, text: `a fresh ${side} VM process started (pid ${this.vms.get(side)!.proc.pid ?? '?'}) with the same command line`, data: { say: true } });
  }

  /** What runs on `side` now: its VM, or a recovery source in the source's place. */
  process(side: Side): SideProcess {
    return this.vms.get(side)?.what ?? 'vm';
  }

  /** The source's recovery file as it last reported it (null: never reported one). */
  recoveryFile(): RecoveryFileInfo | null {
    return this.lastRecoveryFile;
  }

  /**
   * Start a recovery source (postcopy-lab recovery-source) in the lost source's place: through
   * the link's wrapper, so it runs where the source ran (the kernel link's namespace), on the
   * source's QMP path, serving the file the source reported with its digest. From then on
   * `qmp('source')` and the snapshot's `source` are the recovery source. Refused, saying why,
   * while the source still runs, when it never wrote a complete file, or on a backend without one.
   */
  async startRecoverySource(): Promise<void> {
    if (this.stopped) throw new Error('the run has stopped');
    const vm = this.vms.get('source');
    if (vm?.alive) {
      throw new Error(
        vm.what === 'recovery-source'
          ? 'a recovery source already runs in the source\'s place'
          : "the source VM is still running: a recovery source takes the source's place only once the source is gone (kill it first: { vm: source, do: kill }); two sources would fight over one guest",
      );
    }
    const refusal = this.backend.recoverySourceRefusal?.() ?? (this.backend.recoverySourceCommand ? null : `the ${this.backend.kind} backend has no recovery source`);
    if (refusal) throw new Error(refusal);
    let argv: { file: string; args: string[] };
    let what: string;
    if ((this.backend.recoverySourceFrom ?? 'recovery-file') === 'saved-ram') {
      // QEMU: the source's RAM saved with pmemsave while it was postcopy-paused (the backend
      // says what is missing if it was not).
      const file = path.join(this.runtimeDir, SAVED_RAM_FILE);
      argv = this.backend.recoverySourceCommand!(file, '', this.context());
      what = `its RAM saved in ${file}`;
    } else {
      const rf = this.lastRecoveryFile;
      if (!rf) {
        throw new Error('the source never reported a recovery file: set capability x-recovery-file (or x-recovery-file-continuous) on the source before the migration, so it writes one');
      }
      if (rf.state !== 'written' || !rf.digest) {
        const why = rf.state === 'spilling' ? ' (continuous: the pages never sent were still being appended)' : rf.error ? ` (${rf.error})` : '';
        throw new Error(`the source never wrote a complete recovery file: its ${rf.mode} file ${rf.file} was last seen '${rf.state}'${why}; a recovery source serves only a whole file`);
      }
      argv = this.backend.recoverySourceCommand!(rf.file, rf.digest, this.context());
      what = `its recovery file ${rf.file} (digest ${rf.digest})`;
    }
    await vm?.exit;
    await rm(this.qmpPath('source'), { force: true });
    // The status stays: the recovery source starts where the lost source stopped (postcopy-paused).
    this.lastProgress.delete('source');
    this.lastEventAt.delete('source');
    if (this.stopped) throw new Error('the run has stopped');
    this.backend.restarted?.('source');
    this.spawnVm('source', 'recovery-source', argv);
    await this.connect(this.vms.get('source')!);
    const pid = this.vms.get('source')!.proc.pid ?? '?';
    this.opts.onEvent({
      kind: 'info',
      side: 'source',
      text: `a recovery source started in the source's place (pid ${pid}) from ${what}: postcopy-lab ${argv.args.slice(1).join(' ')}; from now on 'source' is the recovery source`,
      data: { process: 'recovery-source', argv: argv.args.slice(1), say: true },
    });
  }

  /** Kill a side's VM process (if it still runs) and start a fresh one. */
  async restartVm(side: Side): Promise<void> {
    await this.killVm(side);
    await this.startVm(side);
  }

  /**
   * The template variables this run adds: where a lab saves the source's RAM for a stand-in
   * recovery source (pmemsave, in the run's private directory), and the guest's RAM as the
   * backend really gave it (QEMU under TCG may shrink it).
   */
  vars(): Record<string, string> {
    const ram = this.backend.guestRamBytes?.() ?? this.opts.guest.memoryBytes;
    return { 'source.ram-file': path.join(this.runtimeDir, SAVED_RAM_FILE), 'guest.ram-bytes': String(ram) };
  }

  qmpPath(side: Side): string {
    return path.join(this.runtimeDir, `${side}.qmp`);
  }

  private spawnVm(side: Side, what: SideProcess = 'vm', argv = this.backend.command(side, this.context())): void {
    const cmd = this.link!.wrapCommand(side, argv.file, argv.args);
    const proc = execa(cmd.file, cmd.args, { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', reject: false });
    const vm: VmHandle = { side, what, proc, qmp: null, alive: true, stopping: false, stderrTail: [], exit: Promise.resolve() };
    let partial = '';
    proc.stderr.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line || this.backend.quietStderr?.(line)) continue;
        vm.stderrTail.push(line);
        if (vm.stderrTail.length > STDERR_TAIL) vm.stderrTail.shift();
        const text = line.replace(/^\[(source|destination)\] /, '');
        this.opts.onEvent({ kind: 'info', side, text: this.backend.explainStderr?.(text) ?? text });
      }
    });
    vm.exit = proc.then((r) => {
      vm.alive = false;
      vm.qmp?.close();
      if (!vm.stopping && !this.stopped) {
        const signal = r.signal ?? null;
        const who = what === 'recovery-source' ? 'recovery source process (in the source\'s place)' : `${side} VM process`;
        this.opts.onEvent({ kind: 'error', side, text: `the ${who} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${r.exitCode}`})` });
        this.opts.onVmExit?.(side, { code: r.exitCode ?? null, signal, stderrTail: vm.stderrTail });
      }
    });
    this.vms.set(side, vm);
  }

  /** One QMP command to a side's VM, as is (`exec-oob` when `oob`). */
  send(side: Side, execute: string, args: Record<string, unknown> | undefined, oob: boolean): Promise<unknown> {
    const client = this.qmp(side);
    return oob ? client.executeOob(execute, args) : client.execute(execute, args);
  }

  oobOffered(side: Side): boolean {
    const vm = this.vms.get(side);
    return !!(vm?.alive && vm.qmp && !vm.qmp.closed && vm.qmp.oobEnabled);
  }

  qmp(side: Side): QmpClient {
    const vm = this.vms.get(side);
    if (!vm?.qmp || !vm.alive || vm.qmp.closed) throw new Error(`the ${side} VM is not running`);
    return vm.qmp;
  }

  async snapshot(): Promise<Snapshot> {
    // The link after the sides, not beside them: a fault is the cause and the sides' states its
    // effect, so a link read no older than the sides never shows the effect without its cause.
    // Read side by side, a poll whose link answered just before a cut while the sides answered
    // just after it read "both paused, link up": link-cut-recovery's "Bring the network back"
    // (until link.up) then passed at its start with the link still cut (an e2e run, 29 Nov).
    const [src, dst] = await Promise.all([this.readSide('source'), this.readSide('destination')]);
    const link = await this.linkSnapshot();
    const readings: Record<Side, SideReading | null> = { source: src, destination: dst };
    this.backend.combine(readings, link);
    this.noteRefused(link);
    return { t: this.elapsed(), source: this.sideSnapshot('source', readings.source), destination: this.sideSnapshot('destination', readings.destination), link };
  }

  /** Run the backend's final verification of the destination's memory (QEMU: pmemsave + check). */
  async verify(): Promise<void> {
    if (this.stopped) return;
    await this.backend.verify((side) => {
      const vm = this.vms.get(side);
      return vm?.alive && vm.qmp && !vm.qmp.closed ? vm.qmp : null;
    }, this.context());
  }

  /**
   * Through the relay a source that connects before the destination listens is accepted, then
   * reset: its own log says only "connection reset", which reads like a broken link. The relay
   * knows better (the destination refused it), and says so once per refusal. Found playing
   * walk-recovery: the resume typed before migrate-recover.
   */
  private noteRefused(link: LinkSnapshot): void {
    const all = link.refused ?? 0;
    const second = Math.min(link.refusedSecond ?? 0, all);
    const seen = this.refusedSeen;
    if (all <= seen.all) return;
    this.refusedSeen = { all, second };
    const say = (n: number, what: string, why: string) => {
      if (n > 0) this.opts.onEvent({ kind: 'warning', text: `link: ${what}${n === 1 ? '' : ` (${n} times)`}: ${why}` });
    };
    // Beside an open connection to the same address: a channel the destination did not expect
    // (found playing postcopy-preempt with the capability set on the source only).
    say(
      second - seen.second,
      "the destination refused the source's second connection",
      "its listener takes one migration's channels, and a second (postcopy-preempt's) only with postcopy-preempt set on the destination too; the relay had accepted it, so the source saw a reset",
    );
    say(
      all - seen.all - (second - seen.second),
      'nothing listened on the destination',
      "the relay took the source's connection, the destination refused it, so the source saw a reset; the destination listens first (migrate-incoming, or migrate-recover in a recovery)",
    );
  }

  private async linkSnapshot(): Promise<LinkSnapshot> {
    try {
      return await this.link!.snapshot();
    } catch {
      const dir = { state: 'down' as const, latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0 };
      return { kind: this.link?.kind ?? 'relay', up: false, flapping: false, connections: 0, 'source-to-destination': dir, 'destination-to-source': { ...dir } };
    }
  }

  /** The freshest migration status known for a side (events and polls, whichever is newer). */
  status(side: Side): MigrationStatus {
    return this.lastStatus.get(side) ?? 'none';
  }

  /** Log a state change once, whether an event or a poll saw it first. */
  private noteStatus(side: Side, status: MigrationStatus, error?: string): void {
    const prev = this.lastStatus.get(side) ?? 'none';
    if (prev === status) return;
    this.lastStatus.set(side, status);
    this.backend.noteStatus(side, prev, status, this.context());
    this.opts.onEvent({ kind: 'state', side, text: `${prev} -> ${status}${error ? ` (${error})` : ''}`, data: { from: prev, to: status } });
  }

  private async readSide(side: Side): Promise<SideReading | null> {
    const vm = this.vms.get(side);
    if (!vm?.alive || !vm.qmp || vm.qmp.closed) return null;
    try {
      const issued = performance.now();
      const [r, work] = await Promise.all([this.backend.read(side, vm.qmp, { mapCells: this.opts.mapCells ?? 256 }), this.readGuest(side, vm.qmp)]);
      if (work) {
        const percent = work.nominalOpsPerSecond > 0 ? Math.round((100 * work.opsPerSecond) / work.nominalOpsPerSecond) : 0;
        r.guest = { rate: work.opsPerSecond, nominal: work.nominalOpsPerSecond, percent };
        if (work.windowMs !== undefined) r.guestWindowMs = work.windowMs;
      }
      if (side === 'source' && vm.what === 'vm' && r.recoveryFile) this.lastRecoveryFile = r.recoveryFile;
      // A poll's queries run side by side: an event can arrive between the query-migrate reply
      // and the others. Then the event is newer than the poll; keep it (no completed ->
      // postcopy-active -> completed flicker).
      const staleStatus = (this.lastEventAt.get(side) ?? 0) > issued;
      if (staleStatus) return { ...r, status: this.lastStatus.get(side) ?? r.status };
      this.noteStatus(side, r.status, r.error);
      return r;
    } catch {
      return null;
    }
  }

  /**
   * Apply a link fault. Where reading the destination's guest touches its pages (QEMU's `xp`), a
   * fault that can stop pages first holds those reads and lets one in flight finish: an `xp`
   * blocked on a page the cut then kept away holds QEMU's monitor, and the recovery that would
   * bring the page needs that monitor (migrate-recover timed out on a loaded CI host).
   */
  async applyLinkFault(fault: LinkFault): Promise<void> {
    if (!this.link) throw new Error('the link is not running (the lab has not started, or has stopped)');
    if (this.backend.guestReadTouchesPages && isCableFault(fault) && fault.kind !== 'up') {
      this.pagesMayStop = true;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.destGuestRead, new Promise((r) => (timer = setTimeout(r, GUEST_READ_SETTLE_MS)))]);
      clearTimeout(timer);
    }
    await this.link.apply(fault);
    if (fault.kind === 'up' && (fault.direction ?? 'both') === 'both') this.pagesMayStop = false;
  }

  /** Restore the link (up, no shaping); destination guest reads resume. */
  async restoreLink(): Promise<void> {
    if (!this.link) throw new Error('the link is not running (the lab has not started, or has stopped)');
    await this.link.restore();
    this.pagesMayStop = false;
  }

  /** The guest's work for the snapshot; a backend that cannot tell (or a failed read, or a held one) leaves it out. */
  private async readGuest(side: Side, q: QmpClient): Promise<GuestWork | null> {
    if (!this.backend.readGuest) return null;
    const touches = side === 'destination' && this.backend.guestReadTouchesPages;
    if (touches && this.pagesMayStop) return null;
    const read = this.backend.readGuest(side, q).catch(() => null);
    if (touches) this.destGuestRead = read;
    return read;
  }

  private sideSnapshot(side: Side, r: SideReading | null): SideSnapshot {
    const vm = this.vms.get(side);
    // A source that is gone still shows the file it left: the one thing a recovery needs from it.
    const leftFile = side === 'source' && vm?.what !== 'recovery-source' && this.lastRecoveryFile ? { recoveryFile: this.lastRecoveryFile } : {};
    if (!r) {
      const alive = vm?.alive ?? false;
      // A dead VM keeps its last counters (QEMU's crashed destination had received pages; its end
      // screen said 0); a live one whose read failed shows none rather than stale ones. A VM whose
      // QMP socket has closed is dying: its exit may not have been seen yet (a loaded machine ended
      // a drill on that snapshot, and said 0 pages received).
      const dying = !alive || !vm?.qmp || vm.qmp.closed;
      const pages = dying ? this.lastPages.get(side) : undefined;
      return { side, alive, runState: 'unknown', status: this.lastStatus.get(side) ?? 'none', stalledMs: 0, ...(pages ? { pages } : {}), ...leftFile };
    }
    if (r.pages) this.lastPages.set(side, r.pages);
    // "Stalled": how long no byte has moved on this side's migration connection(s) (a silent
    // link shows here). `progress` is bytes on the wire, not page counts: in precopy the
    // destination's page count stops after one pass while dirty pages keep arriving.
    const progress = r.progress;
    const now = performance.now();
    const last = this.lastProgress.get(side);
    if (!last || last.value !== progress) this.lastProgress.set(side, { value: progress, at: now });
    // Only states in which pages should move can stall: not waiting for `migrate`, not
    // paused (nothing is meant to move until the recovery), not recovering (the handshake is quiet).
    const moving = r.status === 'active' || r.status === 'postcopy-active';
    if (!moving) this.lastProgress.set(side, { value: progress, at: now });
    const stalledMs = moving && last && last.value === progress ? Math.round(now - last.at) : 0;
    // QEMU's pages (made in combine) have no guest counters of their own: the screen's guest row
    // reads the rate readGuest measured.
    const pages = r.pages && r.guest && r.guestWindowMs !== undefined ? { ...r.pages, guest: { ...r.pages.guest, 'ops-per-second': Math.round(r.guest.rate), 'window-ms': r.guestWindowMs } } : r.pages;
    const snap: SideSnapshot = { side, alive: true, runState: r.runState, status: r.status, ram: r.ram, pages, error: r.error, stalledMs, throttle: r.throttle ?? 0 };
    if (r.guest) snap.guest = r.guest;
    if (r.recoveryFile) snap.recoveryFile = r.recoveryFile;
    if (r.recoverySource) snap.recoverySource = r.recoverySource;
    if (r.savedRam) snap.savedRam = r.savedRam;
    return snap;
  }

  /** Stop every process and remove everything this run created. Idempotent, never throws. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(
      [...this.vms.values()].map(async (vm) => {
        vm.stopping = true;
        if (!vm.alive) return;
        try {
          await vm.qmp?.execute('quit', undefined, { timeoutMs: 1000 });
        } catch {
          // fall through to signals
        }
        vm.qmp?.close();
        const t1 = setTimeout(() => vm.proc.kill('SIGTERM'), 1000);
        const t2 = setTimeout(() => vm.proc.kill('SIGKILL'), 3000);
        await vm.exit;
        clearTimeout(t1);
        clearTimeout(t2);
      }),
    );
    try {
      await this.link?.stop();
    } catch (e) {
      this.opts.onEvent({ kind: 'warning', text: `stopping the link: ${(e as Error).message}` });
    }
    if (this.runtimeDir) await rm(this.runtimeDir, { recursive: true, force: true }).catch(() => {});
  }
}

function fmt(h: { host: string; port: number }): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

export function tcpUri(h: { host: string; port: number }): string {
  return `tcp:${fmt(h)}`;
}
