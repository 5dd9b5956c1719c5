/**
 * The relay's link state: each direction's live config and counters, and the snapshot. What a
 * fault does to a direction (and which directions it targets) is the fault model's
 * (src/link/fault-model.ts); here it is only applied: the config is swapped, the bucket re-rated,
 * a flap schedule started or stopped. No sockets here; the relay server acts on `onCut` and
 * reads `refuseNew`. A cut on either direction resets whole connections: TCP has no one-way reset.
 */
import { DIRECTIONS, type Direction, type LinkDirectionSnapshot, type LinkFault, type LinkSnapshot } from '../types.js';
import type { Clock } from '../util/clock.js';
import { TokenBucket } from '../util/token-bucket.js';
import { CLEAR_CONFIG, faultTargets, flapMode, isCableFault, nextConfig, type DirectionConfig } from './fault-model.js';
import { FlapSchedule } from './flap-schedule.js';
import { Notifier } from './faults/stage.js';

/** One direction of the link: shared by every connection's stages in that direction. */
export class LinkDirection {
  config: DirectionConfig = { ...CLEAR_CONFIG };
  bytesForwarded = 0;
  bytesDropped = 0;
  readonly changes = new Notifier();
  readonly bucket: TokenBucket;
  flap: FlapSchedule | undefined;

  constructor(clock: Clock) {
    this.bucket = new TokenBucket(clock);
  }

  update(next: DirectionConfig): void {
    const rateChanged = next.rateBytesPerSec !== this.config.rateBytesPerSec;
    this.config = next;
    // A new rate starts a fresh bucket; any other change must not forgive the debt.
    if (rateChanged) this.bucket.setRate(next.rateBytesPerSec);
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

  /** Applies an already validated fault (parseLinkFault). */
  apply(fault: LinkFault): void {
    for (const d of faultTargets(fault)) {
      const dir = this.directions[d];
      if (isCableFault(fault)) dir.stopFlap();
      if (fault.kind === 'flap') {
        const flap = new FlapSchedule({ upMs: fault.upMs, downMs: fault.downMs, mode: flapMode(fault), count: fault.count }, this.options.clock, {
          setState: (state) => this.setState(dir, state),
          onDone: () => {
            if (dir.flap === flap) dir.flap = undefined;
          },
        });
        dir.flap = flap;
        void flap.start();
      } else if (isCableFault(fault)) {
        this.setState(dir, nextConfig(dir.config, fault).state);
      } else {
        dir.update(nextConfig(dir.config, fault));
      }
    }
  }

  restore(): void {
    for (const d of DIRECTIONS) {
      const dir = this.directions[d];
      dir.stopFlap();
      dir.update({ ...CLEAR_CONFIG });
    }
  }

  snapshot(connections: number, refused = 0, refusedSecond = 0): LinkSnapshot {
    const s2d = this.directions['source-to-destination'];
    const d2s = this.directions['destination-to-source'];
    return {
      kind: 'relay',
      up: s2d.config.state === 'up' && d2s.config.state === 'up',
      flapping: Boolean(s2d.flap?.active || d2s.flap?.active),
      connections,
      refused,
      refusedSecond,
      'source-to-destination': s2d.snapshot(),
      'destination-to-source': d2s.snapshot(),
    };
  }

  /** Stops every schedule (the relay is shutting down). */
  close(): void {
    for (const d of DIRECTIONS) this.directions[d].stopFlap();
  }

  private setState(dir: LinkDirection, state: DirectionConfig['state']): void {
    dir.update({ ...dir.config, state });
    if (state === 'cut') this.options.onCut();
  }
}
