/**
 * The engine behind the faults that hold chunks back without dropping them (latency, loss):
 * an in-order queue where each chunk leaves at max(previous chunk's due time, its arrival +
 * its own delay). Arrival is the chunk's `at` (when it was read, or was due to leave the stage
 * before), and the chunk passes its own due time on as its `at`. The delay is computed when
 * the chunk reaches the head, from the current config and a random sample drawn on arrival, so
 * a live change (say, latency removed) applies to the chunks still waiting, while jitter stays
 * stable for a given chunk.
 *
 * The queue holds at most `maxHeldBytes` while its policy may delay; past that the stage stops
 * pulling from its input, which is how a real link's window bounds the bytes in flight. With
 * 100 ms of latency and a 4 MiB bound, one connection cannot exceed 40 MiB/s: the same ceiling
 * a 4 MiB TCP window gives. While its own policy delays nothing (loss, with only latency set)
 * it holds one chunk: a second full queue in front of the one that delays would add a window
 * of queueing nobody configured.
 */
import type { DirectionConfig } from '../fault-model.js';
import { Notifier, waitForChange, type Chunk, type Stage, type StageContext } from './stage.js';

export const DEFAULT_MAX_HELD_BYTES = 4 * 1024 * 1024;

/** One queued chunk as a delay policy sees it. */
export interface DelayedChunk {
  readonly bytes: number;
  /** Uniform in [0, 1), drawn when the chunk arrived. */
  readonly sample: number;
}

/** Milliseconds this chunk should be held after its arrival, under `config`. */
export type DelayPolicy = (chunk: DelayedChunk, config: Readonly<DirectionConfig>) => number;

/** True when `config` may make the policy hold a chunk (the queue may then fill to its bound). */
export type DelayActive = (config: Readonly<DirectionConfig>) => boolean;

interface Entry extends DelayedChunk {
  data: Buffer;
  arrived: number;
  release: (() => void) | undefined;
}

export function delayStage(policy: DelayPolicy, active: DelayActive, maxHeldBytes = DEFAULT_MAX_HELD_BYTES): Stage {
  return async function* delayed(input: AsyncIterable<Chunk>, ctx: StageContext): AsyncGenerator<Chunk> {
    const queue: Entry[] = [];
    let held = 0;
    let inputDone = false;
    let inputFailed = false;
    let inputError: unknown;
    let stopped = false;
    // Fired by the reader when a chunk arrives, and by the releaser when space frees up.
    const moved = new Notifier();
    const waitMoved = (): Promise<void> =>
      new Promise((resolve) => {
        const off = moved.on(done);
        const offClose = ctx.onClose(done);
        const offChange = ctx.onChange(done);
        function done(): void {
          off();
          offClose();
          offChange();
          resolve();
        }
      });
    // With nothing to delay hold one chunk at most: running ahead would only park megabytes in
    // the relay, in front of every later byte (a page request).
    const limit = (): number => (active(ctx.config) ? maxHeldBytes : 1);

    // The reader runs ahead of the releaser so chunks pipeline through the delay instead of
    // each one waiting for the previous one's whole delay.
    void (async () => {
      try {
        for await (const chunk of input) {
          while (held >= limit() && !ctx.closed && !stopped) await waitMoved();
          if (ctx.closed || stopped) return;
          queue.push({ data: chunk.data, bytes: chunk.data.length, arrived: chunk.at, sample: ctx.random(), release: chunk.release });
          held += chunk.data.length;
          moved.fire();
        }
      } catch (err) {
        inputFailed = true;
        inputError = err;
      } finally {
        inputDone = true;
        moved.fire();
      }
    })();

    let lastDue = -Infinity;
    try {
      for (;;) {
        if (ctx.closed) return;
        const head = queue[0];
        if (!head) {
          if (inputDone) {
            if (inputFailed) throw inputError;
            return;
          }
          await waitMoved();
          continue;
        }
        const due = Math.max(lastDue, head.arrived + Math.max(0, policy(head, ctx.config)));
        const wait = due - ctx.clock.now();
        if (wait > 0) {
          // Wake early on a config change: the head's due time is recomputed from the new one.
          await waitForChange(ctx, wait);
          continue;
        }
        queue.shift();
        held -= head.bytes;
        lastDue = due;
        moved.fire();
        yield { data: head.data, at: due, release: head.release };
      }
    } finally {
      stopped = true;
      moved.fire();
    }
  };
}
