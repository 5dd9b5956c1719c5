/**
 * The step engine: a lab's steps in order, each begun, acted on (in a drill the engine runs the
 * step's `do`; interactively the person does), and awaited until its `until` holds; then the
 * outcome (the backend's memory check and the final `expect`). It owns no processes: it reads
 * snapshots from a SnapshotFeed, publishes step states and events to the store, and acts
 * through StepPorts, so it runs the same against the real session and a scripted test.
 *
 * Entry points are meant to be called more than once per session: `runSteps(mode, from, to)`
 * replays a range (a rewind replays 0..k-1 in drill fashion, then continues interactively at
 * k), and StepHooks tell a caller when a step starts waiting for its condition and when it ends
 * (a hold lowers the bandwidth while a person reads, and restores it).
 */
import type { LinkFault, Side, Snapshot, Unreachable } from '../types.js';
import { evaluateCondition, formatSeen, type Condition } from './condition.js';
import { stepState } from './snapshot-fields.js';
import { commandText, describeAction, type QmpCommand } from './describe.js';
import { formatDuration } from './duration.js';
import { RunFailure } from './failure.js';
import { SETTLE_MS, startsFreshMigration, stepsBefore, unreachable } from './reach.js';
import type { SnapshotFeed } from './feed.js';
import type { Lab, LabAction, LabStep, VmOperation } from './schema.js';
import type { SessionStore } from './store.js';
import { expandTemplates } from './template.js';

export type RunMode = 'drill' | 'interactive';

/** What the engine acts through. */
export interface StepPorts {
  /** The one way to send a QMP command; logs it and rejects with the side's error. */
  sendQmp(side: Side, cmd: QmpCommand, opts: { oob: boolean; via?: 'x-extra-monitor' }): Promise<unknown>;
  applyLink(fault: LinkFault): Promise<void>;
  restoreLink(): Promise<void>;
  /** Kill, start or restart a side's VM process, or start a recovery source in the source's place (a lab's `vm` action). */
  vm(side: Side, op: VmOperation): Promise<void>;
  /** A virsh subcommand against a side's daemon (a lab's `virsh` action; libvirt backend only). */
  virsh?(side: Side, args: string[], opts?: { awaitEnd?: boolean }): Promise<string>;
  /** The backend's check of the destination's memory; a snapshot with its verdict follows. */
  verify(): Promise<void>;
  /** The run's addresses (`incoming.listen` ...) for the lab's templates. */
  vars(): Readonly<Record<string, string>>;
}

/** Seams for what happens around a step (holds, retry offers); all optional. */
export interface StepHooks {
  /** The step became current, before its `do` runs (a hold starts here, a slow learner waits here). */
  stepStarted?(step: LabStep, mode: RunMode): void | Promise<void>;
  /** The step's `do` is done (or left to the person) and its `until` is awaited. */
  stepWaiting?(step: LabStep, mode: RunMode): void | Promise<void>;
  /** The step ended: its condition held, or it failed with `failure`. */
  stepEnded?(step: LabStep, failure: RunFailure | null): void | Promise<void>;
}

/** The final expectations get this long to settle. */
const EXPECT_GRACE_MS = 10_000;

/** Thrown into the waiting step when the person asks for a retry; never ends the run. */
class RetryRequest extends Error {}

export class StepEngine {
  private running = false;
  private retryRequested = false;
  /** The snapshot when the current step began: what its `this-step.` counters count from. */
  private stepBase: Snapshot | null = null;

  constructor(
    private readonly lab: Lab,
    private readonly store: SessionStore,
    private readonly feed: SnapshotFeed,
    private readonly ports: StepPorts,
    private readonly hooks: StepHooks = {},
  ) {}

  /** True while a step's `do` runs (show me must not start a second copy). */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Run steps `from` to `to - 1`; throws the RunFailure of the first that fails. A retry
   * (interactive only) replays the steps before the waiting one on the same VMs, then waits again.
   */
  async runSteps(mode: RunMode, from = 0, to = this.lab.steps.length): Promise<void> {
    for (let i = from; i < to; i++) {
      try {
        await this.runStep(this.lab.steps[i], mode);
      } catch (e) {
        if (!(e instanceof RetryRequest)) throw e;
        await this.replay(0, i, 'retry');
        i--;
      }
    }
  }

  /**
   * Replay steps `from` to `to - 1` as a drill does (their `do`, then their `until`), with the
   * progress in the state. A retry first puts the link back as the lab's setup left it: the
   * mistake was usually a fault, and the earlier steps must connect through the link.
   */
  async replay(from: number, to: number, why: 'retry' | 'rewind'): Promise<void> {
    this.store.update({ blocked: null });
    if (to <= from) return;
    if (why === 'retry') {
      await this.ports.restoreLink();
      for (const f of this.lab.setup.link) await this.ports.applyLink(f);
    }
    this.store.emit({ kind: 'info', text: `${why}: replaying ${from === 0 ? stepsBefore(to + 1) : `steps ${from + 1}–${to}`} for you` });
    for (let i = from; i < to; i++) {
      this.store.update({ replaying: { why, step: i + 1, to } });
      await this.runStep(this.lab.steps[i], 'drill');
    }
    this.store.update({ replaying: null });
  }

  /**
   * The person asked to retry the waiting step: false (nothing done) unless the state says a
   * retry on the same VMs can bring the step back.
   */
  retry(): boolean {
    const b = this.store.getState().blocked;
    if (!b?.retry || this.retryRequested) return false;
    this.retryRequested = true;
    return true;
  }

  private async runStep(step: LabStep, mode: RunMode): Promise<void> {
    this.store.update({ currentStep: step.index });
    this.store.setStep(step.index, { status: 'active' });
    // What `this-step.` counters are counted from (the first snapshot, if none came yet).
    const snap = this.feed.current;
    this.stepBase = snap;
    // The lab authoring check (rustlings' `dev check`): a step's condition must not already
    // hold before the step is done, or the step teaches nothing. Recorded, not enforced.
    const untilAtStart = snap ? evaluateCondition(step.until, stepState(snap, snap)).value : false;
    this.store.emit({ kind: 'step', text: `step ${step.index + 1}/${this.lab.steps.length}: ${step.title}`, data: { index: step.index, untilAtStart } });
    try {
      await this.hooks.stepStarted?.(step, mode);
      if (mode === 'drill') await this.runActions(step);
      await this.hooks.stepWaiting?.(step, mode);
      await this.waitFor(step.until, mode === 'drill' ? step.timeoutMs : null, step, mode === 'drill');
    } catch (e) {
      if (e instanceof RetryRequest) {
        this.store.setStep(step.index, { status: 'pending' });
        throw e;
      }
      const failure = RunFailure.from(e);
      this.store.setStep(step.index, { status: 'failed' });
      await this.hooks.stepEnded?.(step, failure);
      throw failure;
    }
    this.store.setStep(step.index, { status: 'done' });
    this.store.emit({ kind: 'step', text: `step ${step.index + 1} done: ${step.until.source}`, data: { index: step.index, done: true } });
    await this.hooks.stepEnded?.(step, null);
  }

  /** After the steps: the memory check, then every `expect` (with a short grace to settle). */
  async checkOutcome(): Promise<void> {
    await this.ports.verify();
    for (const c of this.lab.expect) {
      try {
        await this.waitFor(c, EXPECT_GRACE_MS, null);
      } catch (e) {
        const f = RunFailure.from(e);
        if (f.reason !== 'condition-timeout') throw f;
        throw new RunFailure(`expect: '${c.source}' does not hold; seen ${formatSeen(f.detail.seen ?? {})}`, 'expect', {
          condition: c.source,
          seen: f.detail.seen,
        });
      }
    }
  }

  /** Run a step's `do` (a drill, or "show me"). */
  async runActions(step: LabStep): Promise<void> {
    this.running = true;
    try {
      let started = false;
      for (const a of step.actions) {
        await this.runAction(a, step, started);
        started ||= startsFreshMigration(a);
      }
    } finally {
      this.running = false;
    }
  }

  describeActions(step: LabStep): string[] {
    return step.actions.map((a) => describeAction(a, this.ports.vars()));
  }

  /** `started`: an earlier action of the step started a fresh migration (its failure then ends a wait). */
  private async runAction(a: LabAction, step: LabStep, started: boolean): Promise<void> {
    switch (a.type) {
      case 'qmp':
        return this.runQmp(a, step);
      case 'link':
        return this.ports.applyLink(a.fault);
      case 'restore':
        return this.ports.restoreLink();
      case 'vm':
        try {
          return await this.ports.vm(a.side, a.do);
        } catch (e) {
          if (e instanceof RunFailure) throw e;
          const what = a.do === 'recovery-source' ? "start a recovery source in the source's place" : `${a.do} the ${a.side} VM`;
          throw new RunFailure(`step ${step.index + 1} '${step.title}': ${what}: ${(e as Error).message}`, 'error', { step: step.index + 1, stepTitle: step.title });
        }
      case 'virsh': {
        const args = a.args.map((x) => expandTemplates(x, this.ports.vars()));
        const virsh = this.ports.virsh;
        const line = `virsh ${args.join(' ')} on the ${a.side}`;
        return this.expecting(a, step, async () => {
          if (!virsh) throw new Error('virsh actions need --backend libvirt');
          await virsh(a.side, args, { awaitEnd: a.expectError !== undefined });
        }, (desc) => `${line}: ${desc}`, `${line} succeeded`);
      }
      case 'wait':
        return this.feed.sleep(a.ms);
      case 'wait-until':
        return this.waitFor(a.condition, a.timeoutMs, step, started);
    }
  }

  private async runQmp(a: Extract<LabAction, { type: 'qmp' }>, step: LabStep): Promise<void> {
    const cmd = { execute: a.execute, arguments: expandTemplates(a.arguments, this.ports.vars()) };
    return this.expecting(
      a,
      step,
      () => this.ports.sendQmp(a.side, cmd, { oob: a.oob, ...(a.via ? { via: a.via } : {}) }),
      (desc) => `${a.side} refused ${commandText(cmd, a.oob, a.via)}: ${desc}`,
      `${a.side} accepted ${a.execute}`,
    );
  }

  /**
   * An action that may be refused: an error containing `expectError` or `allowError` is what the
   * lab wants; any other ends the step ('refused'), and so does success when an error was expected.
   */
  private async expecting(
    a: { expectError?: string; allowError?: string },
    step: LabStep,
    run: () => Promise<unknown>,
    refused: (desc: string) => string,
    succeeded: string,
  ): Promise<void> {
    const where = { step: step.index + 1, stepTitle: step.title };
    const at = `step ${step.index + 1} '${step.title}'`;
    try {
      await run();
    } catch (e) {
      if (e instanceof RunFailure) throw e;
      const desc = (e as Error).message;
      if (a.expectError !== undefined && desc.includes(a.expectError)) return;
      if (a.allowError !== undefined && desc.includes(a.allowError)) return;
      throw new RunFailure(`${at}: ${refused(desc)}`, 'refused', where);
    }
    if (a.expectError !== undefined) {
      throw new RunFailure(`${at}: ${succeeded}, but the lab expected an error containing '${a.expectError}'`, 'refused', where);
    }
  }

  /**
   * Until `cond` holds on a published snapshot. `timeoutMs` null waits for the person. A step
   * that can no longer happen (reach.ts: the migration failed or completed) ends a drill at
   * once; a person is told why (`blocked` in the state) and the wait goes on, for a retry, a
   * rewind, or a fix by hand.
   */
  async waitFor(cond: Condition, timeoutMs: number | null, step: LabStep | null, started = false): Promise<void> {
    const deadline = timeoutMs === null ? Infinity : performance.now() + timeoutMs;
    let last = this.feed.current;
    // A step's conditions read its own share of the counters too (`this-step.`); `expect` does not.
    const view = (x: Snapshot) => (step ? stepState(x, (this.stepBase ??= x)) : x);
    let since = null as { cause: string; at: number } | null;
    try {
      for (;;) {
        if (this.retryRequested && timeoutMs === null) throw new RetryRequest();
        // Once per snapshot: the state the step's conditions read, and the condition's result.
        const state = last ? view(last) : null;
        const result = state ? evaluateCondition(cond, state) : null;
        if (result?.value) return;
        const stuck = step && last ? unreachable(step, cond.source, last, { started }) : null;
        since = stuck ? (since?.cause === stuck.cause ? since : { cause: stuck.cause, at: performance.now() }) : null;
        const settled = stuck && since && performance.now() - since.at >= SETTLE_MS[stuck.cause] ? stuck : null;
        if (settled && timeoutMs !== null) {
          const seen = result!.seen;
          throw new RunFailure(`step ${step!.index + 1} '${step!.title}': ${settled.message} (seen ${formatSeen(seen)})`, 'step-unreachable', {
            step: step!.index + 1,
            stepTitle: step!.title,
            condition: cond.source,
            seen,
          });
        }
        if (timeoutMs === null && step) {
          this.setBlocked(settled);
          // Once the step can no longer happen (from the first snapshot that says so, through the
          // block's settling), the way it went is kept: it is the reason, where the block's own
          // message is generic (played: postcopy-preempt's capability on the destination alone was
          // named while postcopy ran on one connection, then replaced by "the migration
          // completed … can no longer hold" once it did).
          const kept = stuck !== null && this.store.getState().missed?.step === step.index + 1;
          const missed = step.missed && state && !settled && evaluateCondition(step.missed.when, state).value;
          if (!kept) this.setMissed(missed ? { step: step.index + 1, text: expandTemplates(step.missed!.text, this.ports.vars()) } : null);
        }
        if (performance.now() > deadline) {
          const seen = result?.seen ?? {};
          const where = step ? `step ${step.index + 1} '${step.title}'` : 'wait-until';
          throw new RunFailure(`${where}: '${cond.source}' still false after ${formatDuration(timeoutMs!)}; seen ${formatSeen(seen)}`, 'condition-timeout', {
            step: step ? step.index + 1 : undefined,
            stepTitle: step?.title,
            condition: cond.source,
            seen,
          });
        }
        last = await this.feed.next();
      }
    } finally {
      if (timeoutMs === null && step) {
        this.setBlocked(null);
        this.setMissed(null);
        this.retryRequested = false;
      }
    }
  }

  /** The current step went another way (its `missed`), said once in the log while it lasts. */
  private setMissed(m: { step: number; text: string } | null): void {
    const cur = this.store.getState().missed ?? null;
    if (cur === m || (cur && m && cur.step === m.step && cur.text === m.text)) return;
    this.store.update({ missed: m });
    if (m) this.store.emit({ kind: 'warning', text: `step ${m.step}: ${m.text}` });
  }

  private setBlocked(b: Unreachable | null): void {
    const cur = this.store.getState().blocked ?? null;
    if (cur === b || (cur && b && cur.message === b.message && cur.retry === b.retry)) return;
    this.store.update({ blocked: b });
    if (b) this.store.emit({ kind: 'warning', text: `step ${b.step} can no longer happen: ${b.message}` });
  }
}
