/**
 * Flapping: a schedule, not a stream stage. It starts with the fault phase (so applying it is
 * visible at once): `mode` for downMs, then up for upMs, and again, `count` times (each a fault
 * phase followed by an up phase, so it always ends up) or until stopped. The schedule only
 * flips a direction's state through `setState`; the stages and the relay's cut handling do the
 * rest, exactly as for a hand-applied cut or blackhole.
 */
import type { Clock } from './stage.js';

export interface FlapOptions {
  upMs: number;
  downMs: number;
  mode: 'cut' | 'blackhole';
  /** Number of fault phases; undefined means forever. */
  count?: number;
}

export class FlapSchedule {
  private cancel: (() => void) | undefined;
  private phases = 0;
  private running = false;

  constructor(
    private readonly options: FlapOptions,
    private readonly clock: Clock,
    private readonly setState: (state: 'up' | 'cut' | 'blackhole') => void,
    private readonly onDone: () => void = () => {},
  ) {}

  get active(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.faultPhase();
  }

  /** Stops the schedule where it is; the caller decides the state that follows. */
  stop(): void {
    this.running = false;
    this.cancel?.();
    this.cancel = undefined;
  }

  private faultPhase(): void {
    if (!this.running) return;
    this.phases += 1;
    this.setState(this.options.mode);
    this.cancel = this.clock.setTimer(() => this.upPhase(), this.options.downMs);
  }

  private upPhase(): void {
    if (!this.running) return;
    this.setState('up');
    if (this.options.count !== undefined && this.phases >= this.options.count) {
      this.running = false;
      this.cancel = undefined;
      this.onDone();
      return;
    }
    this.cancel = this.clock.setTimer(() => this.faultPhase(), this.options.upMs);
  }
}
