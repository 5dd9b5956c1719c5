/**
 * The relay's link state: each direction's live config and counters, the fault semantics of
 * `apply`/`restore`, and the snapshot. No sockets here, so the rules can be read (and tested)
 * in one place; the relay server acts on `onCut` and reads `refuseNew`.
 *
 * Rules:
 * - `up` clears cut/blackhole/down/flap on its directions and keeps shaping (latency, loss,
 *   bandwidth); `restore` clears everything on both directions.
 * - `cut`, `blackhole`, `down` replace each other (and stop a flap) on their directions.
 * - latency, loss and bandwidth each replace their own previous value and compose with the rest.
 * - A cut on either direction resets whole connections: TCP has no one-way reset.
 */
import { DIRECTIONS, type Direction, type LinkDirectionSnapshot, type LinkFault, type LinkSnapshot } from '../types.js';
import { TokenBucket } from './faults/bandwidth.js';
import { FlapSchedule } from './faults/flap.js';
import { Notifier, type Clock, type DirectionConfig } from './faults/stage.js';

const UP: DirectionConfig = { state: 'up', latencyMs: 0, jitterMs: 0, lossPercent: 0, rateBytesPerSec: 0 };

/** One direction of the link: shared by every connection's stages in that direction. */
export class LinkDirection {
  config: DirectionConfig = { ...UP };
  bytesForwarded = 0;
  bytesDropped = 0;
  readonly changes = new Notifier();
  readonly bucket: TokenBucket;
  flap: FlapSchedule | undefined;

  constructor(clock: Clock) {
    this.bucket = new TokenBucket(clock);
  }

  update(patch: Partial<DirectionConfig>): void {
    this.config = { ...this.config, ...patch };
    if (patch.rateBytesPerSec !== undefined) this.bucket.setRate(patch.rateBytesPerSec);
    this.changes.fire();
  }

  stopFlap(): void {
    this.flap?.stop();
    this.flap = undefined;
  }

  snapshot(): LinkDirectionSnapshot {
    const { state, latencyMs, jitterMs, rateBytesPerSec, lossPercent } = this.config;
    return {
      state,
      latencyMs,
      jitterMs,
      rateBytesPerSec,
      lossPercent,
      bytesForwarded: this.bytesForwarded,
      bytesDropped: this.bytesDropped,
    };
  }
}

export interface LinkStateOptions {
  clock: Clock;
  /** Called whenever a direction becomes cut: reset every current connection. */
  onCut: () => void;
}

export class LinkState {
  readonly directions: Record<Direction, LinkDirection>;

  constructor(private readonly options: LinkStateOptions) {
    this.directions = {
      'source-to-destination': new LinkDirection(options.clock),
      'destination-to-source': new LinkDirection(options.clock),
    };
  }

  /** New connections are refused (reset) while either direction is cut. */
  get refuseNew(): boolean {
    return DIRECTIONS.some((d) => this.directions[d].config.state === 'cut');
  }

  /** Applies an already validated fault. */
  apply(fault: LinkFault): void {
    const targets = fault.direction === undefined || fault.direction === 'both' ? DIRECTIONS : [fault.direction];
    for (const d of targets) {
      const dir = this.directions[d];
      switch (fault.kind) {
        case 'up':
        case 'cut':
        case 'blackhole':
        case 'down':
          dir.stopFlap();
          this.setState(dir, fault.kind);
          break;
        case 'latency':
          dir.update({ latencyMs: fault.ms, jitterMs: fault.jitterMs ?? 0 });
          break;
        case 'loss':
          dir.update({ lossPercent: fault.percent });
          break;
        case 'bandwidth':
          dir.update({ rateBytesPerSec: fault.bytesPerSec });
          break;
        case 'flap': {
          dir.stopFlap();
          const flap = new FlapSchedule(
            { upMs: fault.upMs, downMs: fault.downMs, mode: fault.mode ?? 'cut', count: fault.count },
            this.options.clock,
            (state) => this.setState(dir, state),
            () => {
              if (dir.flap === flap) dir.flap = undefined;
            },
          );
          dir.flap = flap;
          flap.start();
          break;
        }
      }
    }
  }

  restore(): void {
    for (const d of DIRECTIONS) {
      const dir = this.directions[d];
      dir.stopFlap();
      dir.update({ ...UP });
    }
  }

  snapshot(connections: number): LinkSnapshot {
    const s2d = this.directions['source-to-destination'];
    const d2s = this.directions['destination-to-source'];
    return {
      kind: 'relay',
      up: s2d.config.state === 'up' && d2s.config.state === 'up',
      flapping: Boolean(s2d.flap?.active || d2s.flap?.active),
      connections,
      'source-to-destination': s2d.snapshot(),
      'destination-to-source': d2s.snapshot(),
    };
  }

  /** Stops every schedule (the relay is shutting down). */
  close(): void {
    for (const d of DIRECTIONS) this.directions[d].stopFlap();
  }

  private setState(dir: LinkDirection, state: DirectionConfig['state']): void {
    dir.update({ state });
    if (state === 'cut') this.options.onCut();
  }
}
