/**
 * Holds: the learner's clock, not the machine's (DESIGN.md). A migration never waits for a
 * person, so while a step waits for one, the runner keeps the migration where that step needs
 * it with real migration parameters (a trickle of `max-postcopy-bandwidth`: requested pages are
 * still served, so the guest keeps running) and puts back the values in effect before as soon
 * as the step no longer needs it: its `while` turns false, its `until` holds, the person
 * releases the hold (Space), or the step is left any other way.
 *
 * The controller owns no timer and no process: it is told when a step starts and ends, sees
 * every snapshot, and sends `migrate-set-parameters` through the session's one sendQmp path.
 * Commands are sent one at a time, in order, so an apply and its release never cross.
 */
import type { HoldStatus, LabEvent, Side, Snapshot } from '../types.js';

export type { HoldStatus } from '../types.js';
import { fmtRate } from '../util/format.js';
import { evaluateCondition, type Condition } from './condition.js';
import { stepState } from './snapshot-fields.js';
import type { QmpCommand } from './describe.js';

/**
 * The parameters a hold may set, and the side that owns each: the source paces its push, the
 * destination's walker (`x-walk-window`, `x-walk-rate`, sim only) paces the walk, and the source's
 * `max-cpu-throttle` keeps auto-converge's throttle from climbing while a person reads the step
 * that is about the climb (throttle-vs-postcopy).
 */
export const HOLD_PARAMETERS = {
  'max-bandwidth': 'source',
  'max-postcopy-bandwidth': 'source',
  'x-walk-window': 'destination',
  'max-cpu-throttle': 'source',
  'x-walk-rate': 'destination',
} as const satisfies Record<string, Side>;
export type HoldParameter = keyof typeof HOLD_PARAMETERS;
export const HOLD_PARAMETER_NAMES = Object.keys(HOLD_PARAMETERS) as HoldParameter[];

/** What a step declares (`hold:` in the lab file), normalized. */
export interface LabHold {
  /** Hold only while this holds; null: for as long as the step waits. */
  while: Condition | null;
  /** Parameter values while held; sizes in bytes. */
  parameters: Partial<Record<HoldParameter, number>>;
}

/** A held value in words: sizes as rates, the walk window as a count. */
export function describeHoldValue(name: string, value: number | string | boolean): string {
  if (name === 'x-walk-window') return `${value} request${value === 1 ? '' : 's'} in flight`;
  if (name === 'max-cpu-throttle') return `${value}%`;
  if (name === 'x-walk-rate') return `${value} pages/s`;
  return typeof value === 'number' ? fmtRate(value, { trim: true }) : String(value);
}

export function describeHold(parameters: Partial<Record<string, number | string | boolean>>): string {
  return Object.entries(parameters)
    .map(([k, v]) => `${k} ${describeHoldValue(k, v!)}`)
    .join(', ');
}

export interface HoldPorts {
  sendQmp(side: Side, cmd: QmpCommand, opts: { oob: boolean }): Promise<unknown>;
  emit(e: Omit<LabEvent, 't'>): void;
  /** The values in effect without a hold (setup + interactive-parameters). */
  baseline(): Readonly<Record<string, number | string | boolean>>;
  /** Called whenever the status changes (null: the current step has no hold). */
  status(s: HoldStatus | null): void;
}

interface Current {
  step: number;
  hold: LabHold;
  until: Condition;
  /** The snapshot when the step began waiting: what the until's `this-step.` counters count from. */
  base: Snapshot | null;
  released: boolean;
  /** The step ended: whatever happens now, the hold is off. */
  ended: boolean;
}

export class HoldController {
  private current: Current | null = null;
  /** Whether the hold's values are in effect on the VMs (after the queued commands run). */
  private applied: { step: number; hold: LabHold } | null = null;
  private queue: Promise<void> = Promise.resolve();
  private last: Snapshot | null = null;

  constructor(private readonly ports: HoldPorts) {}

  /** A step begins waiting for the person; `hold` may be absent. */
  begin(step: number, hold: LabHold | undefined, until: Condition): Promise<void> {
    this.current = hold ? { step, hold, until, base: this.last, released: false, ended: false } : null;
    return this.sync();
  }

  /** The step ended (done, failed, or left): put back what it changed. */
  end(step: number): Promise<void> {
    if (this.current?.step === step) this.current.ended = true;
    return this.sync();
  }

  /** Every snapshot: `while` and `until` decide whether the hold is wanted. */
  observe(s: Snapshot): Promise<void> {
    this.last = s;
    return this.sync();
  }

  /** Space: release the current step's hold, or hold again. False when the step has no hold. */
  toggle(): boolean {
    const c = this.current;
    if (!c || c.ended) return false;
    c.released = !c.released;
    this.ports.emit({ kind: 'hold', text: c.released ? 'hold: released by you, the migration runs at its own pace' : 'hold: asked for again' });
    void this.sync();
    return true;
  }

  /** Space, if step `step`'s hold still holds (a drill's slow learner who has waited); false otherwise. */
  releaseIfHeld(step: number): boolean {
    const c = this.current;
    if (!c || c.step !== step || !this.wanted()) return false;
    return this.toggle();
  }

  /** Resolves when every queued command has been sent (for tests and an orderly stop). */
  settled(): Promise<void> {
    return this.queue;
  }

  private wanted(): boolean {
    const c = this.current;
    if (!c || c.ended || c.released) return false;
    if (!this.last) return c.hold.while === null;
    if (evaluateCondition(c.until, stepState(this.last, (c.base ??= this.last))).value) return false;
    return c.hold.while === null || evaluateCondition(c.hold.while, this.last).value;
  }

  private sync(): Promise<void> {
    const c = this.current;
    const want = this.wanted();
    this.ports.status(
      c && !c.ended ? { step: c.step, state: want ? 'held' : c.released ? 'released' : 'idle', text: describeHold(c.hold.parameters), rate: heldRate(c.hold, this.last) } : null,
    );
    if (want && this.applied?.step !== c!.step) {
      const prior = this.applied;
      this.applied = { step: c!.step, hold: c!.hold };
      this.enqueue(async () => {
        if (prior) await this.send(prior.hold, 'release', c!);
        await this.send(c!.hold, 'apply', c!);
      });
    } else if (!want && this.applied) {
      const prior = this.applied;
      this.applied = null;
      this.enqueue(() => this.send(prior.hold, 'release', c));
    }
    return this.queue;
  }

  private enqueue(job: () => Promise<void>): void {
    this.queue = this.queue.then(job).catch((e: Error) => {
      // A VM that refuses (or is gone) is worth a line in the log, not the end of the lab.
      this.ports.emit({ kind: 'error', text: `hold: ${e.message}` });
    });
  }

  private async send(hold: LabHold, what: 'apply' | 'release', c: Current | null): Promise<void> {
    const baseline = this.ports.baseline();
    const values: Record<string, number | string | boolean> = {};
    for (const [k, v] of Object.entries(hold.parameters)) values[k] = what === 'apply' ? v! : baseline[k]!;
    for (const side of ['source', 'destination'] as const) {
      const mine = Object.fromEntries(Object.entries(values).filter(([k]) => HOLD_PARAMETERS[k as HoldParameter] === side));
      if (Object.keys(mine).length) await this.ports.sendQmp(side, { execute: 'migrate-set-parameters', arguments: mine }, { oob: false });
    }
    const cond = hold.while ? ` while ${hold.while.source}` : '';
    this.ports.emit(
      what === 'apply'
        ? { kind: 'hold', text: `hold: ${describeHold(values)}${cond} (so you can read at your own pace)`, data: { hold: 'apply', parameters: values } }
        : { kind: 'hold', text: `hold released: ${describeHold(values)} again${c?.released ? ' (you released it)' : ''}`, data: { hold: 'release', parameters: values } },
    );
  }
}

/** The held rate that paces the migration now: the postcopy cap once the guest has switched. */
function heldRate(h: LabHold, s: Snapshot | null): number | null {
  const postcopy = s?.source.status.startsWith('postcopy') ?? false;
  const order = postcopy ? (['max-postcopy-bandwidth', 'max-bandwidth'] as const) : (['max-bandwidth', 'max-postcopy-bandwidth'] as const);
  for (const k of order) if (h.parameters[k] !== undefined) return h.parameters[k]!;
  return null;
}
