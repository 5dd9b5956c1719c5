/**
 * One direction of one relayed connection: reads one socket, writes the other.
 *
 * Two ways to move a chunk, chosen from the direction's live config:
 * - **direct** while no fault is set (up, no latency, jitter, loss or cap): each chunk read is
 *   written at once, from the read callback, as a C forwarder would (socat reads, then writes).
 *   Reads go into reused buffers (./read-pool.ts), given back when the write completes, and
 *   writes go straight to the socket's handle where Node allows it (./chunk-writer.ts); nothing
 *   is copied per chunk and no promise is created. When the kernel does not take a chunk whole
 *   the reading socket is paused until it has: the relay holds at most one chunk, so a page
 *   request behind the bulk push waits behind no more bytes than socat would hold. Reading a
 *   second chunk while the first is written (double buffering) measured worse under a bulk
 *   push: more bytes queued at the relay's input and more CPU per GB (README, Issue 13).
 * - **staged** while any fault is set: chunks go through the fault stages (./faults), which
 *   pull one chunk at a time, so their backpressure reaches the socket as before. A big chunk
 *   keeps its pooled read buffer until written (KEEP_POOLED_BYTES); a small one is copied.
 *
 * The switch happens on a config change. Going back to direct waits until the stages have
 * delivered (or dropped) every chunk they hold, so order is kept across switches.
 */
import type net from 'node:net';
import type { Direction } from '../types.js';
import type { DirectionConfig } from './fault-model.js';
import { chunkWriter, type ChunkWriter } from './chunk-writer.js';
import { latencyDelay } from './faults/latency.js';
import { runStages } from './faults/pipeline.js';
import type { Chunk, StageContext } from './faults/stage.js';
import type { LinkDirection } from './relay-state.js';
import { READ_BUFFER_BYTES } from './read-pool.js';

/** True when the direction shapes nothing and passes everything: the direct path applies. */
export function isClear(c: Readonly<DirectionConfig>): boolean {
  return c.state === 'up' && c.latencyMs <= 0 && c.jitterMs <= 0 && c.lossPercent <= 0 && c.rateBytesPerSec <= 0;
}

/** What a pump needs from its connection. */
export interface PumpOwner {
  readonly isClosed: boolean;
  /** Bytes read from the socket (what the relay now owes the other end). */
  countRead(d: Direction, bytes: number): void;
  /** Bytes handed to the other socket. */
  countForwarded(d: Direction, bytes: number): void;
  onClose(fn: () => void): () => void;
  /** An unexpected failure: reset both ends. */
  fail(): void;
}

const noRelease = (): void => {};

/**
 * Bytes one socket may read in a turn of the event loop before the direct path lets the other
 * sockets' events run: one read (READ_BUFFER_BYTES). libuv reads a readable socket up to 32
 * times in a row: measured under a bulk push, 4 MiB batches of 128 KiB reads (each written at
 * once) were common, and a page request on the return path or the preempt channel waited
 * behind the whole batch, where socat (a process per connection, one read per select) makes it
 * wait behind one read.
 */
export const TURN_BYTES = READ_BUFFER_BYTES;

/**
 * A staged chunk at least this big keeps its pooled read buffer until it is written; a smaller
 * one is copied out and the buffer goes back at once. Copying every chunk (a fresh 128 KiB
 * allocation per read, and the GC after) was most of the staged path's CPU under a bulk push.
 * A quarter of a read buffer: what the stages hold in buffers stays within 4 × their bounds.
 */
export const KEEP_POOLED_BYTES = READ_BUFFER_BYTES / 4;

export class DirectionPump {
  private mode: 'direct' | 'staged' = 'direct';
  private readonly inbox: Chunk[] = [];
  private wantData = false;
  private waitingDrain = false;
  /**
   * Bytes read directly since reading last gave way (counted across turns too: a slow trickle
   * then gives way once more than needed, which costs one turn), and whether it is giving way.
   */
  private turnBytes = 0;
  private yielding = false;
  private ended = false;
  private endedAt = 0;
  private endSample = 0;
  private wake: (() => void) | undefined;
  private drainWaiter: (() => void) | undefined;
  private offChange: (() => void) | undefined;
  private offClose: (() => void) | undefined;
  private writer: ChunkWriter | undefined;

  constructor(
    private readonly d: Direction,
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly dir: LinkDirection,
    private readonly ctx: StageContext,
    private readonly owner: PumpOwner,
    /** False: write through `socket.write` even where handle writes work (./chunk-writer.ts). */
    private readonly handleWrites = true,
  ) {}

  start(): void {
    this.writer = chunkWriter(this.to, { drained: () => this.drained(), failed: () => this.owner.fail() }, this.handleWrites);
    this.offChange = this.dir.changes.on(() => this.configChanged());
    this.offClose = this.owner.onClose(() => {
      this.offChange?.();
      this.offClose?.();
      this.poke();
      this.drained();
    });
    // A socket reading with `onread` calls read() instead and emits no 'data'; the listener
    // still puts it in flowing mode, which starts reading and lets 'end' be emitted.
    this.from.on('data', (chunk: Buffer) => {
      if (!this.read(chunk, noRelease)) this.from.pause();
    });
    this.from.once('end', () => this.onEnd());
    // The socket comes paused (nothing may be read before this pump exists); staged mode
    // resumes it when its stages want a chunk.
    if (!isClear(this.dir.config)) this.startStaged();
    else this.from.resume();
  }

  /**
   * One read: `chunk` may be a view of a pooled buffer, given back by `release` once written.
   * Returns false when reading must stop (a write is pending, or this turn's share is read):
   * for a pooled socket that stops its handle at once, without the stream's pause machinery.
   */
  read(chunk: Buffer, release: () => void): boolean {
    this.owner.countRead(this.d, chunk.length);
    if (this.mode === 'direct') {
      this.forward(chunk, release);
      this.turnBytes += chunk.length;
      if (this.turnBytes >= TURN_BYTES && !this.yielding) {
        this.yielding = true;
        setImmediate(this.nextTurn);
      }
      return !this.waitingDrain && !this.yielding;
    }
    // The stages pull one chunk at a time: hold it and stop reading until they take it. Its
    // delays count from now, not from when the stages get to it. A big chunk keeps its pooled
    // buffer until written (the pool grows meanwhile); a small one is copied so that a buffer
    // is never held for a few bytes: what the stages hold in buffers stays within
    // READ_BUFFER_BYTES / KEEP_POOLED_BYTES of the bytes their bounds count.
    const at = this.ctx.clock.now();
    if (release === noRelease || chunk.length >= KEEP_POOLED_BYTES) this.inbox.push({ data: chunk, at, release });
    else {
      this.inbox.push({ data: Buffer.from(chunk), at });
      release();
    }
    this.poke();
    // Stop by the answer, as the direct path does: the stream's pause and resume cost a tick
    // and an event per chunk. resumeIfWanted() restarts the handle once the stages want more.
    return false;
  }

  private onEnd(): void {
    this.ended = true;
    this.endedAt = this.ctx.clock.now();
    this.endSample = this.ctx.random();
    if (this.mode === 'direct') this.passFin();
    else this.poke();
  }

  private configChanged(): void {
    if (this.mode === 'direct' && !isClear(this.dir.config)) this.startStaged();
    else this.poke();
  }

  /** Hands a chunk to the other socket; pauses reading while the writer is full. */
  private forward(chunk: Buffer, release: () => void = noRelease): void {
    if (this.owner.isClosed || this.to.destroyed || !this.writer) {
      release();
      return;
    }
    this.owner.countForwarded(this.d, chunk.length);
    this.dir.bytesForwarded += chunk.length;
    // `release` runs once the bytes are in the kernel (or the write failed): then the buffer
    // can take another read. Until every pending write is in, reading stops: the relay holds
    // at most one chunk per direction beyond what the kernel holds.
    if (!this.writer.write(chunk, release)) {
      this.waitingDrain = true;
      // Direct reads stop by read()'s answer; the stages' writes are not from a read.
      if (this.mode === 'staged') this.from.pause();
    }
  }

  private drained(): void {
    this.waitingDrain = false;
    const w = this.drainWaiter;
    this.drainWaiter = undefined;
    w?.();
    this.resumeIfWanted();
  }

  /** After the other sockets' events of this turn (setImmediate runs after the poll phase). */
  private readonly nextTurn = (): void => {
    this.yielding = false;
    this.turnBytes = 0;
    this.resumeIfWanted();
  };

  private resumeIfWanted(): void {
    if (this.waitingDrain || this.yielding || this.owner.isClosed || this.ended) return;
    if (this.mode === 'direct' || (this.wantData && this.inbox.length === 0)) this.from.resume();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private startStaged(): void {
    this.mode = 'staged';
    void this.runStaged();
  }

  /** The socket's chunks for the stages; ends at FIN, or once the config is clear again. */
  private async *input(): AsyncGenerator<Chunk> {
    for (;;) {
      if (this.owner.isClosed) return;
      const chunk = this.inbox.shift();
      if (chunk) {
        yield chunk;
        continue;
      }
      if (this.ended || isClear(this.dir.config)) return;
      this.wantData = true;
      const woken = new Promise<void>((resolve) => (this.wake = resolve));
      this.resumeIfWanted();
      await woken;
      this.wantData = false;
    }
  }

  private async runStaged(): Promise<void> {
    try {
      for await (const chunk of runStages(this.input(), this.ctx)) {
        if (this.owner.isClosed || this.to.destroyed) return;
        this.forward(chunk.data, chunk.release);
        if (this.waitingDrain) await new Promise<void>((resolve) => (this.drainWaiter = resolve));
      }
      if (this.owner.isClosed) return;
      if (this.ended) {
        await this.finStaged();
        return;
      }
      // No fault any more and nothing held: forward directly again (unless one came back meanwhile).
      this.mode = 'direct';
      if (!isClear(this.dir.config)) this.startStaged();
      else this.resumeIfWanted();
    } catch {
      this.owner.fail();
    }
  }

  /**
   * The FIN after staged chunks: it travels the path as a segment would, so it takes the
   * direction's latency (from when it arrived) and is held while the path is dead (a real one
   * is retransmitted until the path is back): a side that closes its end cannot tell the other
   * through a pulled cable.
   */
  private async finStaged(): Promise<void> {
    const dead = (): boolean => this.dir.config.state === 'blackhole' || this.dir.config.state === 'down';
    for (;;) {
      if (this.owner.isClosed) return;
      const due = this.endedAt + latencyDelay({ bytes: 0, sample: this.endSample }, this.dir.config);
      const wait = due - this.ctx.clock.now();
      if (!dead() && wait <= 0) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (!dead()) {
          const cancel = this.ctx.clock.setTimer(() => this.poke(), wait);
          const done = this.wake;
          this.wake = () => {
            cancel();
            done();
          };
        }
      });
    }
    this.passFin();
  }

  private passFin(): void {
    if (!this.owner.isClosed && !this.to.destroyed) this.to.end();
  }
}
