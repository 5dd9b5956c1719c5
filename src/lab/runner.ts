/**
 * The one lab session, shared by the TUI and the headless drill. It wires the parts together
 * and owns the run's lifecycle:
 *
 *   orchestrator (VMs, link) --poll--> SnapshotFeed + SessionStore --> UI, drill, Recorder
 *                  ^                          |
 *                  +---- sendQmp / link <---- StepEngine (steps, expect) <--- keys, console
 *
 * Every QMP command — a lab's `do`, the console, a key, the setup — goes through `sendQmp`, so
 * each is logged once and the out-of-band rule is stated in one place.
 */
import { formatError, formatReply, parseConsoleLine } from '../qmp/console.js';
import { Orchestrator, tcpUri, type GuestSpec } from '../driver/orchestrator.js';
import { ownsLifecycle, type AnyBackend, type RunDriver } from '../driver/backend.js';
import { SimBackend } from '../driver/sim-backend.js';
import { notesFor, stepTextFor } from './backend-fit.js';
import { inRange } from './qemu-range.js';
import type { LabEvent, LabSessionApi, Link, LinkFault, RunSummary, SessionState, Side, Snapshot, StopReason } from '../types.js';
import { commandText, type QmpCommand } from './describe.js';
import { describeFault } from '../link/fault-model.js';
import { destinationExitIsHarmless, GuestWatch, judgeOutcome, RunFailure, vmDeathMeaning } from './failure.js';
import { SnapshotFeed } from './feed.js';
import { Recorder } from './recorder.js';
import type { Lab, VmOperation } from './schema.js';
import { StepEngine, type RunMode, type StepHooks } from './steps.js';
import { SessionStore } from './store.js';
import { summaryCounters } from './summary.js';
import { breaksLink, bypassRefusal } from './reach.js';
import { EXTRA_MONITOR, EXTRA_MONITOR_NOTE } from '../libvirt/commands.js';
import { expandTemplates, setupTemplateValues } from './template.js';
import { HoldController } from './hold.js';

export type { RunMode } from './steps.js';

export interface LabSessionOptions {
  mode: RunMode;
  seed: number;
  makeLink(runtimeDir: string): Link;
  /** What a VM is (src/driver/backend.ts); the sim when absent. */
  backend?: AnyBackend;
  /** Poll period for snapshots, ms. */
  pollMs?: number;
  /** Append the JSONL event log here. */
  recordPath?: string;
  /** Extra info for the record's first line (versions, argv). */
  recordMeta?: Record<string, unknown>;
  /** Around each step (retry offers). */
  hooks?: StepHooks;
  /**
   * Apply the steps' holds (src/lab/hold.ts). Interactive runs always do; a drill only when
   * asked (`--hold`), so a test can play the TUI's pace headless.
   */
  hold?: boolean;
  /** A slow learner: wait this long when each step becomes current, before its `do` (drills). */
  learnerDelayMs?: number;
}

/**
 * The commands an operator sends out-of-band when the monitor offers it: the monitor may be
 * busy exactly when the migration is in trouble. Used for keys; a lab action and a console
 * line say `oob` (`exec-oob`) themselves, as QMP does.
 */
const OPERATOR_OOB = new Set(['migrate-pause', 'migrate-recover']);

const STOP_MESSAGES: Record<StopReason, string> = {
  stopped: 'the lab was stopped',
  timeout: 'the run was stopped: it took too long',
};

export class LabSession implements LabSessionApi {
  readonly labId: string;
  readonly title: string;
  readonly summary: string;
  readonly summaryText: string;
  private readonly store: SessionStore;
  private readonly feed: SnapshotFeed;
  private readonly guestWatch = new GuestWatch();
  private readonly engine: StepEngine;
  private orch: RunDriver;
  /** What a VM is here; its QEMU version picks the steps' notes. */
  private readonly backend: AnyBackend;
  private vars: Record<string, string> = {};
  /** The migration parameters this run set up (setup, plus interactive-parameters for a person). */
  private readonly params: Record<string, number | string | boolean>;
  private readonly hold: HoldController | null;
  private pollTimer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  private readonly startedAt = performance.now();

  constructor(
    readonly lab: Lab,
    private readonly opts: LabSessionOptions,
  ) {
    this.labId = lab.id;
    this.title = lab.title;
    this.summary = lab.summary;
    this.summaryText = lab.summaryText;
    this.backend = opts.backend ?? new SimBackend();
    const version = this.backend.qemuVersion;
    this.store = new SessionStore(
      {
        snapshot: null,
        steps: lab.steps.map((s) => ({ index: s.index, title: s.title, text: stepTextFor(s, version), hints: s.hints, hintsShown: 0, status: 'pending', actions: [], until: s.until.source, breaksLink: breaksLink(s) })),
        currentStep: 0,
        events: [],
        history: [],
        finished: null,
      },
      () => this.now(),
    );
    if (opts.recordPath) {
      const header = { lab: lab.id, seed: opts.seed, mode: opts.mode, startedAt: new Date().toISOString(), ...opts.recordMeta };
      new Recorder(opts.recordPath, header).attach(this.store);
    }
    this.params = opts.mode === 'interactive' || opts.hold ? { ...lab.setup.parameters, ...lab.setup.interactiveParameters } : { ...lab.setup.parameters };
    this.hold =
      opts.mode === 'interactive' || opts.hold
        ? new HoldController({
            sendQmp: (side, cmd, o) => this.sendQmp(side, cmd, o),
            emit: (e) => this.event(e),
            baseline: () => this.params,
            status: (hold) => {
              const prior = this.getState().hold ?? null;
              if (JSON.stringify(prior) !== JSON.stringify(hold)) this.store.update({ hold });
            },
          })
        : null;
    this.feed = new SnapshotFeed((s) => this.guestWatch.observe(s));
    this.engine = new StepEngine(
      lab,
      this.store,
      this.feed,
      {
        sendQmp: (side, cmd, o) => this.sendQmp(side, cmd, o),
        applyLink: (f) => this.applyLink(f),
        restoreLink: () => this.restoreLink(),
        vm: (side, op) => this.vmAction(side, op),
        virsh: (side, args, o) => this.virsh(side, args, o),
        verify: async () => {
          await this.orch.verify();
          await this.poll();
        },
        vars: () => this.vars,
      },
      this.stepHooks(opts.hooks ?? {}),
    );
    this.orch = this.makeOrchestrator();
  }

  /** The hold and the slow learner around the caller's own hooks. */
  private stepHooks(outer: StepHooks): StepHooks {
    return {
      stepStarted: async (step, mode) => {
        // The drill shows no step text: what this version does differently is said here.
        for (const note of notesFor(step, this.backend.qemuVersion)) this.event({ kind: 'hint', text: `on QEMU ${this.backend.qemuVersion}: ${expandTemplates(note, this.vars)}` });
        await this.hold?.begin(step.index, step.hold, step.until);
        if (mode === 'drill' && this.opts.learnerDelayMs) {
          this.event({ kind: 'hold', text: `a slow learner reads step ${step.index + 1} for ${this.opts.learnerDelayMs / 1000} s before acting` });
          await this.feed.sleep(this.opts.learnerDelayMs);
        }
        await outer.stepStarted?.(step, mode);
      },
      stepWaiting: (step, mode) => outer.stepWaiting?.(step, mode),
      stepEnded: async (step, failure) => {
        await this.hold?.end(step.index);
        await outer.stepEnded?.(step, failure);
      },
    };
  }

  /** Space: release the current step's hold, or hold it again. */
  toggleHold(): void {
    this.hold?.toggle();
  }

  // ---- the store -------------------------------------------------------------------------------

  subscribe(listener: () => void): () => void {
    return this.store.subscribe(listener);
  }

  getState(): SessionState {
    return this.store.getState();
  }

  onEvent(listener: (e: LabEvent) => void): () => void {
    return this.store.onEvent(listener);
  }

  /** Every snapshot as it is polled (the state keeps only the latest). */
  onSnapshot(listener: (s: Snapshot) => void): () => void {
    return this.store.onSnapshot(listener);
  }

  private now(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  private event(e: Omit<LabEvent, 't'>): void {
    this.store.emit(e);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  private makeOrchestrator(): RunDriver {
    const g = this.lab.setup;
    const guest: GuestSpec = {
      memoryBytes: g.memoryBytes,
      pageSize: g.pageSize,
      vcpus: g.vcpus,
      workload: g.workload,
      hotset: g.hotset,
      dirtyRate: g.dirtyRate,
      readRate: g.readRate,
      seed: this.opts.seed,
    };
    const o = { guest, makeLink: this.opts.makeLink, onEvent: (e: Omit<LabEvent, 't'>) => this.event(e), onVmExit: this.vmDied.bind(this) };
    // A backend that owns its VMs' lifecycle (libvirt) drives the run itself.
    return ownsLifecycle(this.backend) ? this.backend.driver(o) : new Orchestrator({ ...o, backend: this.backend });
  }

  /** Start the link and both VMs, apply the lab's setup. Throws a RunFailure ('setup') on failure. */
  async start(): Promise<void> {
    try {
      await this.startVms();
    } catch (e) {
      throw RunFailure.from(e, 'setup');
    }
  }

  private async startVms(): Promise<void> {
    this.event({ kind: 'info', text: `starting lab '${this.lab.id}' (seed ${this.opts.seed})` });
    const ep = await this.orch.start();
    this.vars = {
      ...setupTemplateValues(this.lab.setup, this.params),
      'incoming.listen': tcpUri(ep.incoming.listen),
      'incoming.connect': tcpUri(ep.incoming.connect),
      'recover.listen': tcpUri(ep.recover.listen),
      'recover.connect': tcpUri(ep.recover.connect),
      // What the driver adds: the saved-RAM file and the guest's real RAM size (VMs this
      // process starts), or the libvirt domain and destination URI.
      'guest.ram-bytes': String(this.lab.setup.memoryBytes),
      ...this.orch.vars?.(),
    };
    // Now the addresses are known: show them in the step texts, hints and actions.
    this.store.update({
      addresses: { ...this.vars },
      steps: this.getState().steps.map((s, i) => {
        const step = this.lab.steps[i];
        return {
          ...s,
          text: expandTemplates(stepTextFor(step, this.backend.qemuVersion), this.vars),
          hints: step.hints.map((h) => expandTemplates(h, this.vars)),
          actions: this.engine.describeActions(step),
        };
      }),
    });
    for (const side of ['source', 'destination'] as const) await this.setupSide(side);
    for (const f of this.lab.setup.link) await this.applyLink(f);
    await this.poll();
    this.schedulePoll();
  }

  /** The lab's capabilities and parameters on one side (at the start, and on a fresh VM). */
  private async setupSide(side: Side): Promise<void> {
    const caps = Object.entries(this.lab.setup.capabilities).map(([capability, state]) => ({ capability, state }));
    if (caps.length) await this.setupCommand(side, { execute: 'migrate-set-capabilities', arguments: { capabilities: caps } });
    if (Object.keys(this.params).length) await this.setupCommand(side, { execute: 'migrate-set-parameters', arguments: this.params });
  }

  /**
   * A lab's `vm` action: what an operator does to a VM process. A fresh VM gets the lab's
   * setup, as the operator's own start script would give it; so does a recovery source (its
   * capabilities pick the strategy, its parameters pace the push and the holds).
   */
  private async vmAction(side: Side, op: VmOperation): Promise<void> {
    if (op === 'recovery-source') {
      await this.orch.startRecoverySource();
      await this.setupSide(side);
      await this.poll();
      return;
    }
    if (op === 'kill' || op === 'restart') await this.orch.killVm(side);
    if (op === 'start' || op === 'restart') {
      await this.orch.startVm(side);
      await this.setupSide(side);
    }
    await this.poll();
  }

  private async setupCommand(side: Side, cmd: QmpCommand): Promise<void> {
    try {
      await this.sendQmp(side, cmd, { oob: false });
    } catch (e) {
      throw new RunFailure(`setup: ${side} refused ${cmd.execute}: ${(e as Error).message}`, 'setup');
    }
  }

  /**
   * Polls start every `pollMs` (100 ms) from the start of the previous one, never overlapping.
   * Timed from its end, the period was 100 ms plus the queries plus everything publishing runs
   * synchronously (the TUI builds its frame inside publishSnapshot: 20-150 ms under load), so a
   * lab published only 3-4 snapshots a second.
   */
  private schedulePoll(startedAt = performance.now()): void {
    if (this.stopping) return;
    const wait = Math.max(0, startedAt + (this.opts.pollMs ?? 100) - performance.now());
    this.pollTimer = setTimeout(() => {
      const started = performance.now();
      void this.poll().finally(() => this.schedulePoll(started));
    }, wait);
  }

  private async poll(): Promise<void> {
    if (this.stopping) return;
    let snap: Snapshot;
    try {
      snap = await this.orch.snapshot();
    } catch {
      return;
    }
    this.store.publishSnapshot(snap);
    this.feed.publish(snap);
    void this.hold?.observe(snap);
  }

  private vmDied(side: Side, info: { code: number | null; signal: string | null; stderrTail: string[] }): void {
    // The orchestrator's view is fresher than the last snapshot (it follows MIGRATION events).
    const status = this.orch.status(side);
    const other = this.orch.status(side === 'source' ? 'destination' : 'source');
    const meaning = vmDeathMeaning(side, status, other);
    const how = info.signal ? `killed by ${info.signal}` : `exit code ${info.code}`;
    const tail = info.stderrTail.slice(-2).join(' | ');
    // A source that dies after writing its whole recovery file is what the file is for.
    const rf = side === 'source' && this.orch.process('source') === 'vm' ? this.orch.recoveryFile() : null;
    if (rf?.state === 'written' && status === 'postcopy-paused') {
      this.event({
        kind: 'warning',
        side,
        text: `the source VM process died (${how}), but it had written its recovery file ${rf.file} (${rf.mode}): a recovery source can take its place ({ vm: source, do: recovery-source }).${tail ? ` Last words: ${tail}` : ''}`,
      });
      return;
    }
    if (destinationExitIsHarmless(side, info, status, other)) {
      this.event({
        kind: 'warning',
        side,
        text: `the destination VM process exited (${how}): QEMU's destination exits when its incoming migration fails. ${meaning} Start a fresh destination to try again.${tail ? ` Last words: ${tail}` : ''}`,
      });
      return;
    }
    this.feed.abort(new RunFailure(`the ${side} VM process died (${how}). ${meaning}${tail ? ` Last words: ${tail}` : ''}`, 'vm-died'));
  }

  // ---- running a lab ----------------------------------------------------------------------------

  /**
   * Run every step. In a drill the engine performs each step's `do`; interactively it waits
   * for the person (or `showMe`). Then the memory check and the final `expect`. `startAt` (a
   * rewind: these are fresh VMs) replays the steps before it as a drill does, then goes on in
   * the session's mode.
   */
  async run(opts: { startAt?: number } = {}): Promise<RunSummary> {
    let failure: RunFailure | null = null;
    const startAt = Math.max(0, Math.min(opts.startAt ?? 0, this.lab.steps.length - 1));
    try {
      if (this.feed.aborted) throw this.feed.aborted;
      if (startAt > 0) {
        try {
          await this.engine.replay(0, startAt, 'rewind');
        } catch (e) {
          const f = RunFailure.from(e);
          throw new RunFailure(`rewind: replaying the steps before step ${startAt + 1} failed: ${f.message}`, f.reason, f.detail);
        }
      }
      await this.engine.runSteps(this.opts.mode, startAt);
      // The snapshot that ended the last step may also be the one that ended the run (a
      // recovery source's refusal): the run ends with that, not with the outcome checks.
      if (this.feed.aborted) throw this.feed.aborted;
      await this.engine.checkOutcome();
      if (this.feed.aborted) throw this.feed.aborted;
    } catch (e) {
      // An abort (the guest lost, a VM died) explains more than the wait it cut short.
      failure = this.feed.aborted ?? RunFailure.from(e);
    }
    return this.finish(failure);
  }

  /** End the run with `e` (a start that failed): the summary, recorded and published. */
  fail(e: unknown): RunSummary {
    // A start cut short by stop() (the drill's --timeout, a signal) fails because of the stop:
    // report the stop's reason, not the VM that lost its socket directory under it.
    return this.finish(this.feed.aborted ?? RunFailure.from(e, 'setup'));
  }

  private finish(failure: RunFailure | null): RunSummary {
    const prior = this.getState().finished;
    if (prior) return prior;
    const snap = this.feed.current ?? this.getState().snapshot;
    const dp = snap?.destination.pages;
    const verified = dp?.verified === true;
    const judged = judgeOutcome(this.lab.outcome, failure, verified);
    failure = judged.failure;
    if (!failure && !verified && !judged.expected) {
      const why =
        dp?.verified === false
          ? `the destination's memory did not match the source's (pages ${dp.mismatches?.slice(0, 8).join(', ') ?? '?'} differ)`
          : snap?.destination.status === 'completed'
            ? "the migration completed, but the destination's memory could not be checked here (the warning above says why)"
            : `the migration did not complete, so the destination's memory was never verified (destination ${snap?.destination.status ?? 'unknown'})`;
      failure = new RunFailure(`verification: ${why}`, 'verification');
    }
    // A failure the lab declares for this version (a QEMU bug it shows) is still a failure; say it was expected.
    const known = this.lab.expectedFailures.filter((n) => inRange(n.range, this.backend.qemuVersion)).map((n) => n.text.trim());
    if (failure && known.length) {
      failure = new RunFailure(`${failure.message.replace(/[.\s]*$/, '.')} This is the failure the lab expects on QEMU ${this.backend.qemuVersion}: ${known.join('; ')}.`, failure.reason, failure.detail);
    }
    const summary: RunSummary = {
      ok: failure === null,
      labId: this.lab.id,
      durationMs: this.now(),
      verified,
      failure: failure?.toSummary(),
      ...summaryCounters(snap),
      ...(failure === null ? { summaryText: this.lab.summaryText } : {}),
      ...(judged.expected ? { expectedFailure: judged.expected } : {}),
    };
    this.store.update({ finished: summary });
    return summary;
  }

  // ---- what a person (or the TUI) can do -------------------------------------------------------

  /**
   * The one way a QMP command is sent: logged once as the console would show it (with the
   * reply or the error), rejecting with the side's error. `oob` sends it as `exec-oob`.
   */
  async sendQmp(side: Side, cmd: QmpCommand, opts: { oob: boolean; via?: 'x-extra-monitor' }): Promise<unknown> {
    const text = commandText(cmd, opts.oob, opts.via);
    // The extra QMP socket (libvirt) is not the lab's link: no bypass to refuse there.
    const refusal = opts.via ? null : bypassRefusal(side, cmd, this.vars);
    if (refusal) {
      this.event({ kind: 'qmp', side, text: `${text} -> refused by the lab: ${refusal}` });
      throw new Error(`refused by the lab: ${refusal}`);
    }
    try {
      const r = opts.via ? await this.sendVia(side, cmd, opts.oob) : await this.orch.send(side, cmd.execute, cmd.arguments, opts.oob);
      this.event({ kind: 'qmp', side, text: `${text} -> ${formatReply(r)}` });
      return r;
    } catch (e) {
      this.event({ kind: 'qmp', side, text: `${text} -> ${formatError(e as Error)}` });
      throw e;
    }
  }

  /** A command around the backend's job, on the extra QMP socket (libvirt only; the backend checks what may go). */
  private sendVia(side: Side, cmd: QmpCommand, oob: boolean): Promise<unknown> {
    if (!this.orch.sendViaExtraMonitor) {
      return Promise.reject(new Error(`the extra QMP socket is libvirt's (--backend libvirt); this run's backend is ${this.backend.kind}, where QMP goes to QEMU directly`));
    }
    return this.orch.sendViaExtraMonitor(side, cmd.execute, cmd.arguments, oob);
  }

  /**
   * A `virsh` subcommand against a side's daemon (a lab's virsh action, the console on the
   * libvirt backend), logged as the operator would type it, with its output or error.
   */
  async virsh(side: Side, args: string[], opts?: { awaitEnd?: boolean }): Promise<string> {
    const text = `virsh ${args.join(' ')}`;
    if (!this.orch.virsh) {
      const why = `virsh needs --backend libvirt (this run's backend is ${this.backend.kind})`;
      this.event({ kind: 'qmp', side, text: `${text} -> refused: ${why}` });
      throw new Error(why);
    }
    try {
      const out = await this.orch.virsh(side, args, opts);
      this.event({ kind: 'qmp', side, text: `${text} -> ${out || 'ok'}` });
      return out;
    } catch (e) {
      this.event({ kind: 'qmp', side, text: `${text} -> error: ${(e as Error).message}` });
      throw e;
    }
  }

  /** A key's command: out-of-band for what an operator sends so (OPERATOR_OOB), when offered. */
  async qmp(side: Side, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const oob = OPERATOR_OOB.has(execute) && this.oobOffered(side);
    return this.sendQmp(side, { execute, arguments: args }, { oob });
  }

  private oobOffered(side: Side): boolean {
    return this.orch.oobOffered(side);
  }

  async qmpLine(side: Side, line: string): Promise<{ ok: boolean; text: string }> {
    // On the libvirt backend the console also takes virsh subcommands, split on white space
    // into argv (no shell, no quoting): `virsh domstate --reason pcl-guest`.
    const words = line.trim().split(/\s+/);
    if (words[0] === 'virsh') {
      try {
        return { ok: true, text: (await this.virsh(side, words.slice(1))) || 'ok' };
      } catch (e) {
        return { ok: false, text: (e as Error).message };
      }
    }
    // libvirt's way out of a blackhole: `x-extra-monitor exec-oob migrate-pause` on the destination.
    const via = words[0] === EXTRA_MONITOR ? EXTRA_MONITOR : undefined;
    let cmd;
    try {
      cmd = parseConsoleLine(via ? line.trim().slice(via.length) : line);
    } catch (e) {
      return { ok: false, text: (e as Error).message };
    }
    try {
      const r = await this.sendQmp(side, { execute: cmd.execute, arguments: cmd.arguments }, { oob: cmd.oob, ...(via ? { via } : {}) });
      return { ok: true, text: via ? `${cmd.execute} ${EXTRA_MONITOR_NOTE}` : formatReply(r) };
    } catch (e) {
      return { ok: false, text: formatError(e as Error) };
    }
  }

  async applyLink(fault: LinkFault): Promise<void> {
    await this.linkOrThrow().apply(fault);
    this.event({ kind: 'fault', text: `link: ${describeFault(fault)}`, data: fault });
  }

  async restoreLink(): Promise<void> {
    await this.linkOrThrow().restore();
    this.event({ kind: 'fault', text: 'link: restored (up, no shaping)' });
  }

  private linkOrThrow(): Link {
    if (!this.orch.link) throw new Error('the link is not running (the lab has not started, or has stopped)');
    return this.orch.link;
  }

  /** Rejects with what went wrong (a refusal, a step already being shown), so no one claims it ran. */
  async showMe(): Promise<void> {
    const st = this.getState();
    if (st.finished) throw new Error('the lab has ended');
    if (this.engine.busy) throw new Error('this step’s commands are already running');
    if (st.replaying) throw new Error('the earlier steps are being replayed; wait for them');
    const step = this.lab.steps[st.currentStep];
    if (!step) throw new Error('there is no current step');
    this.event({ kind: 'hint', text: `show me: ${st.steps[step.index].actions.join('; ') || '(nothing to do: wait)'}` });
    try {
      await this.engine.runActions(step);
    } catch (e) {
      this.event({ kind: 'error', text: `show me: ${(e as Error).message}` });
      throw e;
    }
  }

  retry(): boolean {
    if (this.getState().finished) return false;
    const ok = this.engine.retry();
    if (ok) this.event({ kind: 'info', text: 'retry: the earlier steps will be replayed on the same VMs' });
    return ok;
  }

  nextHint(): void {
    const st = this.getState();
    const i = st.currentStep;
    const s = st.steps[i];
    if (!s || s.hintsShown >= s.hints.length) return;
    this.store.setStep(i, { hintsShown: s.hintsShown + 1 });
    this.event({ kind: 'hint', text: `hint ${s.hintsShown + 1}/${s.hints.length}: ${s.hints[s.hintsShown]}` });
  }

  /** Stop every process and remove everything the run created. Idempotent; the first reason wins. */
  stop(reason: StopReason = 'stopped'): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        if (this.pollTimer) clearTimeout(this.pollTimer);
        this.feed.abort(new RunFailure(STOP_MESSAGES[reason], reason));
        await this.orch.stop();
      })();
    }
    return this.stopping;
  }
}
