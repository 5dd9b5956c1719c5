/**
 * The one interface every relay fault implements, Toxiproxy style: a stage takes one
 * direction's chunks of one connection, in order, and yields chunks onward, in order.
 *
 * Stages are pull-based async iterables on purpose. A stage that is not ready for more (the
 * token bucket is empty, the link is down, its bounded queue is full) simply does not pull,
 * so the stage before it stops pulling too, and so on back to the socket: the socket's
 * readable buffer fills, Node stops reading the fd, the kernel's receive window closes and
 * the sender really slows down. Nothing in the relay buffers without a bound.
 *
 * Each chunk carries the time it was read (Toxiproxy's StreamChunk.Timestamp), and a stage
 * that holds it passes on the time it was *due* to leave, not when it did. So a delay counts
 * from the read, not from when the chunk got through the stages before (0.2 ms of promise
 * turns per chunk, more under load), and one stage's late timer is not added again by the next.
 */
import type { DirectionConfig } from '../fault-model.js';
import type { TokenBucket } from '../../util/token-bucket.js';
import type { Clock } from '../../util/clock.js';

/** What a stage may read and report; one per direction of one connection. */
export interface StageContext {
  /** The direction's live settings (src/link/fault-model.ts), shared by every connection on the link. */
  readonly config: Readonly<DirectionConfig>;
  readonly clock: Clock;
  /** Uniform in [0, 1); injected for tests. */
  random(): number;
  /** The direction's bandwidth cap, shared by its connections. */
  readonly bucket: TokenBucket;
  /** Count bytes this stage threw away (blackhole). */
  countDropped(bytes: number): void;
  /** Subscribe to config changes of this direction; returns the unsubscribe function. */
  onChange(fn: () => void): () => void;
  /** Subscribe to the connection's teardown; returns the unsubscribe function. */
  onClose(fn: () => void): () => void;
  readonly closed: boolean;
}

/** Bytes on their way through the stages. */
export interface Chunk {
  readonly data: Buffer;
  /** Clock time (ms) the bytes were read, or were due to leave the last stage that held them. */
  readonly at: number;
  /**
   * Gives `data`'s memory back (a pooled read buffer, src/link/read-pool.ts) once the bytes are
   * written; a stage that drops the chunk calls it, one that passes it on passes it on (one that
   * splits the chunk, on its last piece only). Never called for a connection torn down while
   * the chunk was held: the buffer is then left to the GC.
   */
  readonly release?: () => void;
}

export type Stage = (input: AsyncIterable<Chunk>, ctx: StageContext) => AsyncIterable<Chunk>;

/**
 * Resolves after `ms` (or never, if undefined), or as soon as the direction's config changes
 * or the connection closes, whichever is first. Every listener is removed when it resolves:
 * racing against a long-lived promise instead would leak one reaction per call.
 */
export function waitForChange(ctx: StageContext, ms?: number): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.closed) {
      resolve();
      return;
    }
    const cancelTimer = ms === undefined ? undefined : ctx.clock.setTimer(done, ms);
    const offChange = ctx.onChange(done);
    const offClose = ctx.onClose(done);
    function done(): void {
      cancelTimer?.();
      offChange();
      offClose();
      resolve();
    }
  });
}

/** A tiny multi-listener notifier with explicit unsubscription. */
export class Notifier {
  private listeners = new Set<() => void>();
  on(fn: () => void): () => void {
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const entry = (): void => fn();
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }
  fire(): void {
    for (const fn of [...this.listeners]) fn();
  }
  get size(): number {
    return this.listeners.size;
  }
}
