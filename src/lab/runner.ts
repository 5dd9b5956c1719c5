/**
 * The one lab session, shared by the TUI and the headless drill: the run's lifecycle (start,
 * setup, run the steps, finish, stop), wiring the parts that do the rest:
 *
 *   driver (VMs, link) --Poller--> SnapshotFeed + SessionStore --> UI, drill, Recorder
 *          ^                              |
 *          +---- Operator (qmp, virsh, link) <---- StepEngine (steps, expect) <--- keys, console
 *
 * Every command — a lab's `do`, the console, a key, the setup — goes through the Operator
 * (src/lab/operator.ts), so each is logged once and its rules are stated in one place. The
 * run's summary is src/lab/verdict.ts.
 */
import { Orchestrator, tcpUri, type GuestSpec } from '../driver/orchestrator.js';
import { ownsLifecycle, type AnyBackend, type RunDriver } from '../driver/backend.js';
import { SimBackend } from '../driver/sim-backend.js';
import { notesFor, stepTextFor } from './backend-fit.js';
import type { LabEvent, LabSessionApi, Link, LinkFault, RunSummary, SessionState, Side, Snapshot, StopReason } from '../types.js';
import type { QmpCommand } from './describe.js';
import { GuestWatch, RunFailure, vmDeathVerdict } from './failure.js';
import { SnapshotFeed } from './feed.js';
import { Recorder } from './recorder.js';
import type { Lab, VmOperation } from './schema.js';
import { StepEngine, type RunMode, type StepHooks } from './steps.js';
import { SessionStore } from './store.js';
import { breaksLink, consoleReplyNote, unheardResumeNote, earlyResumeRefusal, SPENT_WORDS, earlySwitchRefusal, faultsBeforeRecovery, isSourceResume, listenFirst, startsFreshVm, recoverySides, resumeRefusal, vmOnlyLabel, showMeRefusal, startsMigration, stepLinkFaults } from './reach.js';
import { Operator } from './operator.js';
import { Poller } from './poller.js';
import { runSummary } from './verdict.js';
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
  private readonly operator: Operator;
  /** A migrate-recover was accepted on the destination since its state last changed (earlyResumeRefusal). */
  private recoverListening = false;
  private readonly poller: Poller;
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
        steps: lab.steps.map((s) => ({ index: s.index, title: s.title, text: stepTextFor(s, version), hints: s.hints, hintsShown: 0, status: 'pending', actions: [], until: s.until.source, breaksLink: breaksLink(s), startsMigration: startsMigration(s), startsFreshDestination: startsFreshVm(s, 'destination'), linkFaults: stepLinkFaults(s), faultsBeforeRecovery: faultsBeforeRecovery(s), recoverySides: recoverySides(s), actsOnVm: s.actions.some((a) => a.type === 'vm'), vmOnly: vmOnlyLabel(s), pauses: s.actions.some((a) => a.type === 'qmp' && a.execute === 'migrate-pause') })),
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
    this.operator = new Operator({
      driver: () => this.orch,
      vars: () => this.vars,
      backendKind: this.backend.kind,
      emit: (e) => this.event(e),
      // A resume is judged on a fresh snapshot: the last published one may predate a u pressed
      // (or a restore sent) a moment ago. Only for a resume: any other command costs nothing.
      stateRefusal: async (side, cmd) => {
        const step = this.lab.steps[this.store.getState().currentStep];
        if (side === 'source' && cmd.execute === 'migrate-start-postcopy') {
          const snap = await this.orch.snapshot().catch(() => null);
          return earlySwitchRefusal(step, side, cmd, snap);
        }
        if (!isSourceResume(side, cmd)) return null;
        const snap = await this.orch.snapshot().catch(() => null);
        if (!snap) return null;
        return (
          resumeRefusal(this.lab.steps[this.store.getState().currentStep], side, cmd, snap) ??
          earlyResumeRefusal(side, cmd, snap, this.recoverListening, this.backend.qemuVersion, this.vars['recover.listen'])
        );
      },
      accepted: (side, cmd) => {
        if (side === 'destination' && cmd.execute === 'migrate-recover') this.setListening(true);
      },
    });
    this.poller = new Poller(
      () => this.orch.snapshot(),
      (snap) => {
        this.store.publishSnapshot(snap);
        this.feed.publish(snap);
        void this.hold?.observe(snap);
        this.noteRecoveryFile(snap);
      },
      opts.pollMs ?? 100,
    );
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
        this.store.update({ stepStart: { step: step.index, refusedSecond: this.getState().snapshot?.link.refusedSecond ?? 0 } });
        // The drill shows no step text: what this version does differently is said here.
        for (const note of notesFor(step, this.backend.qemuVersion)) this.event({ kind: 'hint', text: `on QEMU ${this.backend.qemuVersion}: ${expandTemplates(note, this.vars)}` });
        await this.hold?.begin(step.index, step.hold, step.until);
        if (mode === 'drill' && this.opts.learnerDelayMs) {
          this.event({ kind: 'hold', text: `a slow learner reads step ${step.index + 1} for ${this.opts.learnerDelayMs / 1000} s before acting` });
          await this.feed.sleep(this.opts.learnerDelayMs);
        }
        // A step with nothing to do but watch holds until the person presses Space (its text says
        // so); a drill's learner does once it has read.
        if (mode === 'drill' && step.hold && step.actions.length === 0) this.hold?.toggle();
        await outer.stepStarted?.(step, mode);
      },
      stepWaiting: (step, mode) => {
        // A step whose hold keeps it from ending (many-vcpus' climb, held at 20% until Space) after
        // its learner typed its commands: having waited as long again and seen it still held, the
        // learner presses Space, as the key bar says.
        if (mode === 'drill' && this.opts.learnerDelayMs && step.hold && step.actions.length > 0) {
          const index = step.index;
          void this.feed.sleep(this.opts.learnerDelayMs).then(
            () => {
              if (this.store.getState().currentStep === index && this.hold?.releaseIfHeld(index)) {
                this.event({ kind: 'hold', text: `a slow learner waited ${this.opts.learnerDelayMs! / 1000} s with step ${index + 1} held, and pressed Space` });
              }
            },
            () => {},
          );
        }
        return outer.stepWaiting?.(step, mode);
      },
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

  /** The recovery file already said written (its path): once per file. */
  private recoveryFileSaid: string | null = null;

  /**
   * A recovery file written, said once with its path for everyone (a drill without --verbose
   * too): the source's own log line was the only word of it, and a newcomer following the
   * README to `recovery-file inspect` found no path to inspect. The run removes it at its end.
   */
  private noteRecoveryFile(snap: Snapshot): void {
    const rf = snap.source.recoveryFile;
    if (!rf || rf.state !== 'written' || rf.file === this.recoveryFileSaid) return;
    this.recoveryFileSaid = rf.file;
    const held = rf['held-pages'] !== undefined ? `, ${rf['held-pages']} pages held` : '';
    this.event({ kind: 'info', side: 'source', text: `recovery file written: ${rf.file}${held} (the run removes it when it ends: copy it to keep it)`, data: { say: true } });
  }

  private now(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  private event(e: Omit<LabEvent, 't'>): void {
    // The destination taking a channel (postcopy-recover), or moving on, ends the listen a
    // migrate-recover started: the next resume needs a new one (earlyResumeRefusal). Not a
    // 'setup' (QEMU 7.2's MIGRATION event on every listen) nor the paused state it returns to.
    const to = e.kind === 'state' && e.side === 'destination' ? (e.data as { to?: string } | undefined)?.to : undefined;
    if (to !== undefined && to !== 'setup' && to !== 'postcopy-paused' && this.recoverListening) this.setListening(false);
    this.store.emit(e);
  }

  /** The destination listens for a recovery (or no longer): the screen drops its command from the paused lines. */
  private setListening(listening: boolean): void {
    this.recoverListening = listening;
    this.store.update({ recoverListening: listening });
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
    this.poller.schedule();
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

  private poll(): Promise<void> {
    return this.poller.poll();
  }

  private vmDied(side: Side, info: { code: number | null; signal: string | null; stderrTail: string[] }): void {
    const v = vmDeathVerdict(side, info, this.orch);
    if ('warning' in v) this.event({ kind: 'warning', side, text: v.warning });
    else this.feed.abort(v.failure);
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
    const summary = runSummary(this.lab, failure, this.feed.current ?? this.getState().snapshot, this.backend.qemuVersion, this.now());
    this.store.update({ finished: summary });
    return summary;
  }

  // ---- what a person (or the TUI) can do -------------------------------------------------------

  /** The one way a QMP command is sent (src/lab/operator.ts): logged once, with the reply or the error. */
  sendQmp(side: Side, cmd: QmpCommand, opts: { oob: boolean; via?: 'x-extra-monitor' }): Promise<unknown> {
    return this.operator.sendQmp(side, cmd, opts);
  }

  /** A `virsh` subcommand against a side's daemon (libvirt), logged as the operator would type it. */
  virsh(side: Side, args: string[], opts?: { awaitEnd?: boolean }): Promise<string> {
    return this.operator.virsh(side, args, opts);
  }

  /** A key's command, out-of-band where an operator would send it so. */
  qmp(side: Side, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.operator.qmp(side, execute, args);
  }

  /** A console line (QMP, `virsh …`, `x-extra-monitor …`), answered in one line. */
  async qmpLine(side: Side, line: string): Promise<{ ok: boolean; text: string }> {
    // migrate-incoming to a destination whose incoming migration has ended (or whose process is
    // gone), in a step that starts a fresh destination: the lab starts it, as an operator restarts
    // QEMU, and the line goes to the fresh one. Played throttle-vs-postcopy: migrate_cancel, then
    // migrate-incoming typed to the failed sim destination, which took it (QEMU's would have
    // exited), while the screen said a fresh one comes first.
    const fresh = side === 'destination' && this.freshDestinationFor(line);
    if (fresh) {
      this.event({ kind: 'info', side, text: `a fresh destination for your migrate-incoming: the last one ${fresh}, and this step starts a new one (QEMU's destination exits once its incoming migration has ended)` });
      try {
        await this.vmAction('destination', 'restart');
      } catch (e) {
        return { ok: false, text: `Error: starting a fresh destination failed: ${(e as Error).message}` };
      }
    }
    const reply = await this.operator.consoleLine(side, line);
    if (fresh && reply.ok) return { ok: true, text: `${reply.text}\n(sent to a fresh destination: the last one ${fresh})` };
    const state = this.store.getState();
    const step = this.lab.steps[state.currentStep];
    const note =
      consoleReplyNote(side, line, reply, step, state.snapshot, this.vars) ??
      unheardResumeNote(side, line, reply, step, state.snapshot, this.recoverListening, this.vars['recover.listen']);
    return note ? { ok: reply.ok, text: `${reply.text}\n${note}` } : reply;
  }

  /**
   * Why a migrate-incoming `line` needs a fresh destination first ("has failed", "is gone"), or
   * null: the step under way restarts the destination alone, and this one's incoming migration
   * has ended or its process is gone. (A step that restarts both VMs is left to s: a fresh
   * destination alone would meet a spent source.)
   */
  private freshDestinationFor(line: string): string | null {
    if (!/^\s*(\{\s*"execute"\s*:\s*")?migrate-incoming\b/.test(line)) return null;
    const step = this.lab.steps[this.store.getState().currentStep];
    const snap = this.store.getState().snapshot;
    if (!step || !snap || !startsFreshVm(step, 'destination') || startsFreshVm(step, 'source')) return null;
    if (!snap.destination.alive) return 'is gone';
    return SPENT_WORDS[snap.destination.status] ?? null;
  }

  applyLink(fault: LinkFault): Promise<void> {
    return this.operator.applyLink(fault);
  }

  restoreLink(): Promise<void> {
    return this.operator.restoreLink();
  }

  /** Rejects with what went wrong (a refusal, a step already being shown), so no one claims it ran. */
  async showMe(): Promise<void> {
    const st = this.getState();
    if (st.finished) throw new Error('the lab has ended');
    if (this.engine.busy) throw new Error('this step’s commands are already running');
    if (st.replaying) throw new Error('the earlier steps are being replayed; wait for them');
    const step = this.lab.steps[st.currentStep];
    if (!step) throw new Error('there is no current step');
    const refusal = showMeRefusal(step, st.snapshot);
    if (refusal) {
      this.event({ kind: 'error', text: `show me: ${refusal}` });
      throw new Error(refusal);
    }
    // A destination that listens no more after a failed migration listens again first.
    const first = listenFirst(step, st.snapshot);
    const own = st.steps[step.index].actions.join('; ') || '(nothing to do: wait)';
    const said = first ? `destination: migrate-incoming {"uri": "${this.vars['incoming.listen']}"} first (it listens no more); then ${own}` : own;
    this.event({ kind: 'hint', text: `show me: ${said}` });
    try {
      await this.engine.runActions(first ? { ...step, actions: [first, ...step.actions] } : step);
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
        this.poller.stop();
        this.feed.abort(new RunFailure(STOP_MESSAGES[reason], reason));
        await this.orch.stop();
      })();
    }
    return this.stopping;
  }
}
