/**
 * The one lab runner. It serves the headless drill (which performs each step's `do` itself)
 * and the TUI (where the person performs the step and the runner only watches `until`), so
 * the step logic exists once. State lives here, outside React; listeners are told when it
 * changes and read an immutable SessionState.
 */
import { appendFileSync } from 'node:fs';
import { QmpError } from '../qmp/server.js';
import { formatError, formatReply, parseConsoleLine } from '../qmp/console.js';
import { Orchestrator, tcpUri, type GuestSpec } from '../driver/orchestrator.js';
import type { VmBackend } from '../driver/backend.js';
import type { LabEvent, LabSessionApi, Link, LinkFault, RunSummary, SessionState, Side, Snapshot, StepView } from '../types.js';
import { evaluateCondition, formatSeen, type Condition } from './condition.js';
import type { Lab, LabAction, LabStep } from './schema.js';
import { expandTemplates } from './template.js';
import { formatDuration } from './duration.js';

export type RunMode = 'drill' | 'interactive';

export interface LabSessionOptions {
  mode: RunMode;
  seed: number;
  makeLink(runtimeDir: string): Link;
  /** What a VM is (src/driver/backend.ts); the sim when absent. */
  backend?: VmBackend;
  /** Poll period for snapshots, ms. */
  pollMs?: number;
  /** Append the JSONL event log here. */
  recordPath?: string;
  /** Extra info for the record's first line (versions, argv). */
  recordMeta?: Record<string, unknown>;
}

const MAX_EVENTS = 300;
const OOB_COMMANDS = new Set(['migrate-pause', 'migrate-recover']);
const HISTORY_MS = 60_000;

class RunFailure extends Error {
  constructor(
    message: string,
    readonly detail: RunSummary['failure'],
  ) {
    super(message);
  }
}

export function describeFault(f: LinkFault): string {
  const dir = f.direction && f.direction !== 'both' ? ` ${f.direction}` : '';
  switch (f.kind) {
    case 'latency':
      return `latency ${f.ms} ms${f.jitterMs ? ` ± ${f.jitterMs} ms` : ''}${dir}`;
    case 'loss':
      return `loss ${f.percent}%${dir}`;
    case 'bandwidth':
      return `bandwidth ${formatRate(f.bytesPerSec)}${dir}`;
    case 'flap':
      return `flap (${f.mode ?? 'cut'} ${f.downMs} ms every ${f.upMs + f.downMs} ms${f.count ? `, ${f.count}×` : ''})${dir}`;
    default:
      return `${f.kind}${dir}`;
  }
}

export function formatRate(bytesPerSec: number): string {
  if (bytesPerSec >= 1024 * 1024) return `${+(bytesPerSec / 1024 / 1024).toFixed(1)} MiB/s`;
  if (bytesPerSec >= 1024) return `${+(bytesPerSec / 1024).toFixed(1)} KiB/s`;
  return `${bytesPerSec} B/s`;
}

export class LabSession implements LabSessionApi {
  readonly labId: string;
  readonly title: string;
  readonly summary: string;
  readonly summaryText: string;
  private state: SessionState;
  private readonly listeners = new Set<() => void>();
  private readonly orch: Orchestrator;
  private vars: Record<string, string> = {};
  private pollTimer: NodeJS.Timeout | null = null;
  /** Whoever waits for the next snapshot; rejected instead if the run is aborted first. */
  private snapshotWaiters: Array<{ resolve: (s: Snapshot) => void; reject: (e: RunFailure) => void }> = [];
  private aborted: RunFailure | null = null;
  /** Timed waits to cut short on abort; each removes itself when it ends normally. */
  private readonly abortWaiters = new Set<(e: RunFailure) => void>();
  private stopping: Promise<void> | null = null;
  private readonly startedAt = performance.now();
  private lastRecordedSnapshot = 0;
  private actionsRunning = false;

  constructor(
    readonly lab: Lab,
    private readonly opts: LabSessionOptions,
  ) {
    this.labId = lab.id;
    this.title = lab.title;
    this.summary = lab.summary;
    this.summaryText = lab.summaryText;
    this.state = {
      snapshot: null,
      steps: lab.steps.map((s) => ({
        index: s.index,
        title: s.title,
        text: s.text,
        hints: s.hints,
        hintsShown: 0,
        status: 'pending',
        actions: [],
        until: s.until.source,
      })),
      currentStep: 0,
      events: [],
      history: [],
      finished: null,
    };
    const g = lab.setup;
    const guest: GuestSpec = {
      memoryBytes: g.memoryBytes,
      pageSize: g.pageSize,
      vcpus: g.vcpus,
      workload: g.workload,
      hotset: g.hotset,
      dirtyRate: g.dirtyRate,
      readRate: g.readRate,
      seed: opts.seed,
    };
    this.orch = new Orchestrator({
      guest,
      makeLink: opts.makeLink,
      backend: opts.backend,
      onEvent: (e) => this.event(e),
      onVmExit: (side, info) => this.vmDied(side, info),
    });
    if (opts.recordPath) {
      this.record({ type: 'run', lab: lab.id, seed: opts.seed, mode: opts.mode, startedAt: new Date().toISOString(), ...opts.recordMeta });
    }
  }

  // ---- the store ------------------------------------------------------------------------------

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  getState(): SessionState {
    return this.state;
  }

  private update(patch: Partial<SessionState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }

  private now(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  private event(e: Omit<LabEvent, 't'>): void {
    const ev: LabEvent = { t: this.now(), ...e };
    const events = this.state.events.length >= MAX_EVENTS ? this.state.events.slice(-MAX_EVENTS + 1) : this.state.events.slice();
    events.push(ev);
    this.update({ events });
    this.record({ type: 'event', ...ev });
  }

  private record(obj: Record<string, unknown>): void {
    if (!this.opts.recordPath) return;
    try {
      appendFileSync(this.opts.recordPath, JSON.stringify(obj) + '\n');
    } catch {
      // A full disk must not break the lab; the record is a convenience.
    }
  }

  private setStep(index: number, patch: Partial<StepView>): void {
    const steps = this.state.steps.slice();
    steps[index] = { ...steps[index], ...patch };
    this.update({ steps });
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Start the link and both VMs, apply the lab's setup. Throws with a clear message on failure. */
  async start(): Promise<void> {
    this.event({ kind: 'info', text: `starting lab '${this.lab.id}' (seed ${this.opts.seed})` });
    const ep = await this.orch.start();
    this.vars = {
      'incoming.listen': tcpUri(ep.incoming.listen),
      'incoming.connect': tcpUri(ep.incoming.connect),
      'recover.listen': tcpUri(ep.recover.listen),
      'recover.connect': tcpUri(ep.recover.connect),
    };
    // Now the addresses are known: show them in the step texts, hints and actions.
    this.update({
      steps: this.state.steps.map((s, i) => {
        const step = this.lab.steps[i];
        return {
          ...s,
          text: expandTemplates(step.text, this.vars),
          hints: step.hints.map((h) => expandTemplates(h, this.vars)),
          actions: step.actions.map((a) => this.describeAction(a)),
        };
      }),
    });
    const caps = Object.entries(this.lab.setup.capabilities).map(([capability, state]) => ({ capability, state }));
    const params =
      this.opts.mode === 'interactive' ? { ...this.lab.setup.parameters, ...this.lab.setup.interactiveParameters } : this.lab.setup.parameters;
    for (const side of ['source', 'destination'] as const) {
      if (caps.length) await this.qmpChecked(side, 'migrate-set-capabilities', { capabilities: caps }, 'setup');
      if (Object.keys(params).length) await this.qmpChecked(side, 'migrate-set-parameters', params, 'setup');
    }
    for (const f of this.lab.setup.link) await this.applyLink(f);
    await this.poll();
    this.schedulePoll();
  }

  private async qmpChecked(side: Side, execute: string, args: Record<string, unknown>, where: string): Promise<unknown> {
    try {
      return await this.orch.qmp(side).execute(execute, args);
    } catch (e) {
      const msg = e instanceof QmpError ? `${e.errorClass}: ${e.message}` : (e as Error).message;
      throw new RunFailure(`${where}: ${side} refused ${execute}: ${msg}`, { message: `${side} refused ${execute}: ${msg}` });
    }
  }

  private schedulePoll(): void {
    if (this.stopping) return;
    this.pollTimer = setTimeout(() => {
      void this.poll().finally(() => this.schedulePoll());
    }, this.opts.pollMs ?? 100);
  }

  private async poll(): Promise<void> {
    if (this.stopping) return;
    let snap: Snapshot;
    try {
      snap = await this.orch.snapshot();
    } catch {
      return;
    }
    const mbps = snap.source.ram?.mbps ?? 0;
    const remaining = snap.source.ram?.remaining ?? 0;
    const history = this.state.history.filter((h) => snap.t - h.t <= HISTORY_MS);
    history.push({ t: snap.t, mbps, remaining });
    this.update({ snapshot: snap, history });
    if (snap.t - this.lastRecordedSnapshot >= 500) {
      this.lastRecordedSnapshot = snap.t;
      const { source, destination, link } = snap;
      this.record({ type: 'snapshot', t: snap.t, source: stripMap(source), destination: stripMap(destination), link });
    }
    const waiters = this.snapshotWaiters;
    this.snapshotWaiters = [];
    for (const w of waiters) w.resolve(snap);
  }

  private nextSnapshot(): Promise<Snapshot> {
    return new Promise((resolve, reject) => {
      if (this.aborted) return reject(this.aborted);
      this.snapshotWaiters.push({ resolve, reject });
    });
  }

  private vmDied(side: Side, info: { code: number | null; signal: string | null; stderrTail: string[] }): void {
    // The orchestrator's view is fresher than the last snapshot (it follows MIGRATION events).
    const st = this.orch.status(side);
    const other = this.orch.status(side === 'source' ? 'destination' : 'source');
    let meaning: string;
    if (side === 'destination' && (st.startsWith('postcopy') || other?.startsWith('postcopy'))) {
      meaning = 'The destination died during postcopy: the guest ran there and part of its memory existed only there. The guest is lost. This is the real risk of postcopy.';
    } else if (side === 'source' && (st.startsWith('postcopy') || st === 'completed')) {
      meaning =
        st === 'completed'
          ? 'The source ended after the migration completed; the guest is safe on the destination.'
          : 'The source died during postcopy: the pages the destination had not yet received are gone with it. The guest is lost.';
    } else if (side === 'source') {
      meaning = 'The source died before switchover: the guest was only there, so it is gone.';
    } else {
      meaning = 'The destination died before switchover: nothing is lost, the guest still runs on the source.';
    }
    const how = info.signal ? `killed by ${info.signal}` : `exit code ${info.code}`;
    const tail = info.stderrTail.slice(-2).join(' | ');
    this.abort(new RunFailure(`the ${side} VM process died (${how}). ${meaning}${tail ? ` Last words: ${tail}` : ''}`, { message: `${side} VM died (${how}). ${meaning}` }));
  }

  private abort(f: RunFailure): void {
    if (this.aborted) return;
    this.aborted = f;
    const waiters = [...this.abortWaiters, ...this.snapshotWaiters.map((w) => w.reject)];
    this.abortWaiters.clear();
    this.snapshotWaiters = [];
    for (const w of waiters) w(f);
  }

  // ---- conditions and actions ---------------------------------------------------------------

  private async waitFor(cond: Condition, timeoutMs: number | null, step: LabStep | null): Promise<void> {
    const deadline = timeoutMs === null ? Infinity : performance.now() + timeoutMs;
    let last = this.state.snapshot;
    let finishedSince: number | null = null;
    for (;;) {
      if (last && evaluateCondition(cond, last).value) return;
      // A migration that has ended cannot make a step about a live migration come true: say
      // so (after a moment for counters to settle) instead of waiting forever.
      const ended = last !== null && last.source.status === 'completed' && last.destination.status === 'completed';
      finishedSince = ended ? (finishedSince ?? performance.now()) : null;
      if (step && finishedSince !== null && performance.now() - finishedSince > 3000) {
        const seen = evaluateCondition(cond, last!).seen;
        throw new RunFailure(
          `step ${step.index + 1} '${step.title}': the migration completed before this step could happen ('${cond.source}' can no longer hold; seen ${formatSeen(seen)}). ` +
            'Open the lab again and act sooner, or give the lab a slower link.',
          { step: step.index + 1, stepTitle: step.title, condition: cond.source, seen, message: 'the migration completed before this step could happen' },
        );
      }
      if (performance.now() > deadline) {
        const seen = last ? evaluateCondition(cond, last).seen : {};
        const where = step ? `step ${step.index + 1} '${step.title}'` : 'wait-until';
        throw new RunFailure(`${where}: '${cond.source}' still false after ${formatDuration(timeoutMs!)}; seen ${formatSeen(seen)}`, {
          step: step ? step.index + 1 : undefined,
          stepTitle: step?.title,
          condition: cond.source,
          seen,
          message: `condition still false after ${formatDuration(timeoutMs!)}`,
        });
      }
      last = await this.nextSnapshot();
    }
  }

  /** A QMP action as a person types it in the console: `exec-oob migrate-pause`, `migrate {"uri": ...}`. */
  private describeCommand(a: Extract<LabAction, { type: 'qmp' }>): string {
    const args = expandTemplates(a.arguments, this.vars);
    const argText = Object.keys(args).length ? ` ${JSON.stringify(args)}` : '';
    return `${a.oob ? 'exec-oob ' : ''}${a.execute}${argText}`;
  }

  describeAction(a: LabAction): string {
    switch (a.type) {
      case 'qmp':
        return `${a.side}: ${this.describeCommand(a)}`;
      case 'link':
        return `link: ${describeFault(a.fault)}`;
      case 'restore':
        return 'link: restore';
      case 'wait':
        return `wait ${formatDuration(a.ms)}`;
      case 'wait-until':
        return `wait until ${a.condition.source}`;
    }
  }

  private async runAction(a: LabAction, step: LabStep): Promise<void> {
    const where = `step ${step.index + 1} '${step.title}'`;
    switch (a.type) {
      case 'qmp': {
        const args = expandTemplates(a.arguments, this.vars);
        const client = this.orch.qmp(a.side);
        const text = this.describeCommand(a);
        try {
          const r = a.oob ? await client.executeOob(a.execute, args) : await client.execute(a.execute, args);
          this.event({ kind: 'qmp', side: a.side, text: `${text} -> ${formatReply(r)}` });
          if (a.expectError !== undefined) {
            throw new RunFailure(`${where}: ${a.side} accepted ${a.execute}, but the lab expected an error containing '${a.expectError}'`, {
              step: step.index + 1,
              stepTitle: step.title,
              message: `expected ${a.execute} to fail`,
            });
          }
        } catch (e) {
          if (e instanceof RunFailure) throw e;
          const desc = e instanceof QmpError ? e.message : (e as Error).message;
          this.event({ kind: 'qmp', side: a.side, text: `${text} -> ${e instanceof QmpError ? formatError(e) : `Error: ${desc}`}` });
          if (a.expectError !== undefined && desc.includes(a.expectError)) return;
          if (a.allowError !== undefined && desc.includes(a.allowError)) return;
          throw new RunFailure(`${where}: ${a.side} refused ${a.execute}: ${desc}`, {
            step: step.index + 1,
            stepTitle: step.title,
            message: `${a.side} refused ${a.execute}: ${desc}`,
          });
        }
        return;
      }
      case 'link':
        return this.applyLink(a.fault);
      case 'restore':
        return this.restoreLink();
      case 'wait':
        await new Promise<void>((resolve, reject) => {
          if (this.aborted) return reject(this.aborted);
          const onAbort = (e: RunFailure) => {
            clearTimeout(t);
            reject(e);
          };
          const t = setTimeout(() => {
            this.abortWaiters.delete(onAbort);
            resolve();
          }, a.ms);
          this.abortWaiters.add(onAbort);
        });
        return;
      case 'wait-until':
        return this.waitFor(a.condition, a.timeoutMs, step);
    }
  }

  private async runActions(step: LabStep): Promise<void> {
    this.actionsRunning = true;
    try {
      for (const a of step.actions) await this.runAction(a, step);
    } finally {
      this.actionsRunning = false;
    }
  }

  // ---- running a lab ----------------------------------------------------------------------------

  /**
   * Run every step. In a drill the runner performs each step's `do`; interactively it waits for
   * the person (or `showMe`). Then the final `expect` and the memory verification.
   */
  async run(): Promise<RunSummary> {
    let failure: RunFailure | null = null;
    try {
      if (this.aborted) throw this.aborted;
      for (const step of this.lab.steps) {
        this.update({ currentStep: step.index });
        this.setStep(step.index, { status: 'active' });
        // The lab authoring check (rustlings' `dev check`): a step's condition must not already
        // hold before the step is done, or the step teaches nothing. Recorded, not enforced.
        const untilAtStart = this.state.snapshot ? evaluateCondition(step.until, this.state.snapshot).value : false;
        this.event({
          kind: 'step',
          text: `step ${step.index + 1}/${this.lab.steps.length}: ${step.title}`,
          data: { index: step.index, untilAtStart },
        });
        if (this.opts.mode === 'drill') {
          await this.runActions(step);
          await this.waitFor(step.until, step.timeoutMs, step);
        } else {
          await this.waitFor(step.until, null, step);
        }
        this.setStep(step.index, { status: 'done' });
        this.event({ kind: 'step', text: `step ${step.index + 1} done: ${step.until.source}`, data: { index: step.index, done: true } });
      }
      // The backend's memory check (QEMU: pmemsave + pattern check; the sim checked already),
      // and a fresh snapshot carrying its verdict for the expectations below.
      await this.orch.verify();
      await this.poll();
      // The expectations are about the end state: give them a short grace to settle.
      for (const c of this.lab.expect) await this.waitFor(c, 10_000, null).catch((e: RunFailure) => {
        throw new RunFailure(`expect: '${c.source}' does not hold; seen ${formatSeen(e.detail?.seen ?? {})}`, {
          condition: c.source,
          seen: e.detail?.seen,
          message: `final expectation '${c.source}' does not hold`,
        });
      });
    } catch (e) {
      failure = e instanceof RunFailure ? e : new RunFailure((e as Error).message, { message: (e as Error).message });
      const cur = this.state.currentStep;
      if (this.state.steps[cur]?.status === 'active') this.setStep(cur, { status: 'failed' });
    }
    const summary = this.finish(failure);
    return summary;
  }

  private finish(failure: RunFailure | null): RunSummary {
    const snap = this.state.snapshot;
    const dp = snap?.destination.pages;
    const sp = snap?.source.pages;
    const verified = dp?.verified === true;
    if (!failure && !verified) {
      const why =
        dp?.verified === false
          ? `the destination's memory did not match the source's (pages ${dp.mismatches?.slice(0, 8).join(', ') ?? '?'} differ)`
          : `the migration did not complete, so the destination's memory was never verified (destination ${snap?.destination.status ?? 'unknown'})`;
      failure = new RunFailure(`verification: ${why}`, { message: why });
    }
    const summary: RunSummary = {
      ok: failure === null,
      labId: this.lab.id,
      durationMs: this.now(),
      verified,
      failure: failure?.detail ? { ...failure.detail, message: failure.message } : undefined,
      pagesResent: sp?.resent ?? 0,
      duplicatesDiscarded: dp?.['duplicates-discarded'] ?? 0,
      blocktimeMs: dp?.['blocktime-ms'] ?? 0,
      recoveries: dp?.recoveries ?? 0,
    };
    this.update({ finished: summary });
    this.record({ type: 'summary', ...summary });
    return summary;
  }

  // ---- what a person (or the TUI) can do -------------------------------------------------------

  async qmp(side: Side, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    // migrate-pause and migrate-recover go out-of-band, as an operator should send them: the
    // monitor may be busy exactly when the migration is in trouble.
    const client = this.orch.qmp(side);
    const oob = OOB_COMMANDS.has(execute) && client.oobEnabled;
    const r = oob ? await client.executeOob(execute, args) : await client.execute(execute, args);
    this.event({ kind: 'qmp', side, text: `${execute}${args ? ' ' + JSON.stringify(args) : ''} -> ${formatReply(r)}` });
    return r;
  }

  async qmpLine(side: Side, line: string): Promise<{ ok: boolean; text: string }> {
    let cmd;
    try {
      cmd = parseConsoleLine(line);
    } catch (e) {
      return { ok: false, text: (e as Error).message };
    }
    let client;
    try {
      client = this.orch.qmp(side);
    } catch (e) {
      return { ok: false, text: (e as Error).message };
    }
    try {
      const r = cmd.oob ? await client.executeOob(cmd.execute, cmd.arguments) : await client.execute(cmd.execute, cmd.arguments);
      const text = formatReply(r);
      this.event({ kind: 'qmp', side, text: `${line.trim()} -> ${text}` });
      return { ok: true, text };
    } catch (e) {
      const text = e instanceof QmpError ? formatError(e) : `Error: ${(e as Error).message}`;
      this.event({ kind: 'qmp', side, text: `${line.trim()} -> ${text}` });
      return { ok: false, text };
    }
  }

  async applyLink(fault: LinkFault): Promise<void> {
    await this.orch.link!.apply(fault);
    this.event({ kind: 'fault', text: `link: ${describeFault(fault)}`, data: fault });
  }

  async restoreLink(): Promise<void> {
    await this.orch.link!.restore();
    this.event({ kind: 'fault', text: 'link: restored (up, no shaping)' });
  }

  async showMe(): Promise<void> {
    if (this.actionsRunning || this.state.finished) return;
    const step = this.lab.steps[this.state.currentStep];
    if (!step) return;
    this.event({ kind: 'hint', text: `show me: ${this.state.steps[step.index].actions.join('; ') || '(nothing to do: wait)'}` });
    try {
      await this.runActions(step);
    } catch (e) {
      this.event({ kind: 'error', text: (e as Error).message });
    }
  }

  nextHint(): void {
    const i = this.state.currentStep;
    const s = this.state.steps[i];
    if (!s || s.hintsShown >= s.hints.length) return;
    this.setStep(i, { hintsShown: s.hintsShown + 1 });
    this.event({ kind: 'hint', text: `hint ${s.hintsShown + 1}/${s.hints.length}: ${s.hints[s.hintsShown]}` });
  }

  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        if (this.pollTimer) clearTimeout(this.pollTimer);
        this.abort(new RunFailure('the lab was stopped', { message: 'stopped' }));
        await this.orch.stop();
      })();
    }
    return this.stopping;
  }
}

function stripMap<T extends { pages?: { map?: string } }>(s: T): T {
  if (!s.pages?.map) return s;
  const { map: _map, ...pages } = s.pages;
  return { ...s, pages: pages as T['pages'] };
}
