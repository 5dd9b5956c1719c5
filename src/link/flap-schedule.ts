/**
 * Flapping: a schedule, not a stream stage, shared by both links. It starts with the fault
 * phase (so applying it is visible at once): `mode` for downMs, then up for upMs, and again,
 * `count` times (each a fault phase followed by an up phase, so it always ends up) or until
 * stopped. The schedule only flips a state through `setState`; the relay's stages or the
 * kernel's rules do the rest, exactly as for a hand-applied cut or blackhole.
 *
 * `setState` may be synchronous (the relay: the next phase is timed from the flip itself) or
 * return a promise (the kernel: the next phase is timed from when tc/nft finished). A flip that
 * fails stops the schedule: the first one rejects `start()`, a later one goes to `onError`.
 */
import type { Clock } from '../util/clock.js';

export interface FlapOptions {
  upMs: number;
  downMs: number;
  mode: 'cut' | 'blackhole';
  /** Number of fault phases; undefined means forever. */
  count?: number;
}

export type FlapState = 'up' | 'cut' | 'blackhole';

export interface FlapHooks {
  setState(state: FlapState): void | Promise<void>;
  /** The counted phases are over (not called on stop()). */
  onDone?(): void;
  /** A flip after the first failed; the schedule has stopped. */
  onError?(err: unknown): void;
}

export class FlapSchedule {
  private cancel: (() => void) | undefined;
  private phases = 0;
  private running = false;

  constructor(
    private readonly options: FlapOptions,
    private readonly clock: Clock,
    private readonly hooks: FlapHooks,
  ) {}

  get active(): boolean {
    return this.running;
  }

  /** Enters the first fault phase; a promise when `setState` returned one. */
  start(): void | Promise<void> {
    if (this.running) return;
    this.running = true;
    return this.faultPhase();
  }

  /** Stops the schedule where it is; the caller decides the state that follows. */
  stop(): void {
    this.running = false;
    this.cancel?.();
    this.cancel = undefined;
  }

  private faultPhase(): void | Promise<void> {
    if (!this.running) return;
    this.phases += 1;
    return this.enter(this.options.mode, this.options.downMs, () => this.upPhase());
  }

  private upPhase(): void | Promise<void> {
    if (!this.running) return;
    const last = this.options.count !== undefined && this.phases >= this.options.count;
    return this.enter('up', this.options.upMs, last ? undefined : () => this.faultPhase());
  }

  /** Flip to `state`, then after `ms` run `next` (or finish, when there is none). */
  private enter(state: FlapState, ms: number, next: (() => void | Promise<void>) | undefined): void | Promise<void> {
    const then = (): void => {
      if (!this.running) return;
      if (!next) {
        this.running = false;
        this.cancel = undefined;
        this.hooks.onDone?.();
        return;
      }
      this.cancel = this.clock.setTimer(() => {
        const fail = (err: unknown): void => this.hooks.onError?.(err);
        try {
          next()?.catch(fail);
        } catch (err) {
          fail(err);
        }
      }, ms);
    };
    let r: void | Promise<void>;
    try {
      r = this.hooks.setState(state);
    } catch (err) {
      this.running = false;
      throw err;
    }
    if (!r) return then();
    return r.then(then, (err: unknown) => {
      this.running = false;
      throw err;
    });
  }
}
