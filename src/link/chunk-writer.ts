/**
 * How a relay pump writes a chunk to a socket: straight to the socket's libuv handle, the way
 * Node's own stream code does underneath `socket.write`, or through `socket.write` itself.
 *
 * Why: profiled at loopback speed, the relay's user time per GB went to Node's Writable
 * machinery around each write (writeOrBuffer, onwrite, a `process.nextTick` per write that
 * completed at once, the tick queue drained after every read callback), ~8 000 writes per GB.
 * A handle write is one `writeBuffer` call: a write the kernel took whole costs no callback, no
 * tick; one that did not completes in `oncomplete`, which resumes the reading side.
 *
 * The handle write needs `WriteWrap` and `streamBaseState` from Node's `stream_wrap` binding
 * (reached through `process.binding`, which Node 20 still allows for it) and the socket's
 * private `_handle`. Both are checked; on a Node where they are not what is expected every write
 * goes through `socket.write` and 'drain', as before. Either way all of a socket's writes go
 * through one writer, so their order is the order of the calls, and `socket.end()` after them
 * is a shutdown that libuv sends after every pending write.
 */
import type net from 'node:net';

/** A write's request object: Node's `WriteWrap`, with the fields its C++ side calls back on. */
interface WriteReq {
  handle: unknown;
  oncomplete: (this: WriteReq, status: number) => void;
  /** Keeps the bytes alive while libuv still writes from them. */
  buffer: Uint8Array | null;
  writer: HandleWriter | null;
  done: (() => void) | null;
}

interface StreamWrap {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

interface WritableHandle {
  writeBuffer(req: WriteReq, data: Uint8Array): number;
}

function loadStreamWrap(): StreamWrap | undefined {
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding?.('stream_wrap') as Partial<StreamWrap> | undefined;
    if (
      typeof binding?.WriteWrap === 'function' &&
      binding.streamBaseState instanceof Int32Array &&
      typeof binding.kLastWriteWasAsync === 'number'
    ) {
      return binding as StreamWrap;
    }
  } catch {
    // No such binding on this Node: the fallback.
  }
  return undefined;
}

const streamWrap = loadStreamWrap();

/** What the writer tells its pump. */
export interface WriterEvents {
  /** Every write so far is in the kernel: reading may go on. */
  drained(): void;
  /** A write failed (the peer reset, the socket closed under it): give up on the connection. */
  failed(): void;
}

export interface ChunkWriter {
  /** True when writes go to the handle (false: through `socket.write`). */
  readonly handleLevel: boolean;
  /**
   * Writes `chunk`; `done` runs once the kernel has all of it, or the write failed. Returns true
   * when nothing is left pending (the kernel took it at once); false means wait for `drained`.
   */
  write(chunk: Buffer, done: () => void): boolean;
}

function onWriteComplete(this: WriteReq, status: number): void {
  const writer = this.writer;
  const done = this.done;
  this.buffer = null;
  this.writer = null;
  this.done = null;
  done?.();
  writer?.completed(status);
}

class HandleWriter implements ChunkWriter {
  readonly handleLevel = true;
  private pending = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly binding: StreamWrap,
    private readonly events: WriterEvents,
  ) {}

  write(chunk: Buffer, done: () => void): boolean {
    const handle = (this.socket as unknown as { _handle?: WritableHandle | null })._handle;
    if (!handle || this.socket.destroyed) {
      done();
      return true;
    }
    const req = new this.binding.WriteWrap();
    req.handle = handle;
    req.oncomplete = onWriteComplete;
    req.buffer = chunk;
    req.writer = this;
    req.done = done;
    const err = handle.writeBuffer(req, chunk);
    if (err !== 0) {
      req.buffer = null;
      done();
      this.events.failed();
      return true;
    }
    if (this.binding.streamBaseState[this.binding.kLastWriteWasAsync] === 0) {
      // Written whole, at once: libuv will not call back.
      req.buffer = null;
      req.done = null;
      done();
      return true;
    }
    this.pending++;
    return false;
  }

  /** @internal from onWriteComplete */
  completed(status: number): void {
    this.pending--;
    if (status < 0) this.events.failed();
    else if (this.pending === 0) this.events.drained();
  }
}

class StreamWriter implements ChunkWriter {
  readonly handleLevel = false;

  constructor(
    private readonly socket: net.Socket,
    events: WriterEvents,
  ) {
    // Write errors reach the connection through the socket's 'error' event.
    socket.on('drain', () => events.drained());
  }

  write(chunk: Buffer, done: () => void): boolean {
    return this.socket.write(chunk, () => done());
  }
}

/** True when this Node lets the relay write to socket handles directly. */
export const handleWritesAvailable = streamWrap !== undefined;

/**
 * The writer for `socket` (connected, with its handle): handle-level when available and
 * `handleWrites` is not false, else through `socket.write`.
 */
export function chunkWriter(socket: net.Socket, events: WriterEvents, handleWrites = true): ChunkWriter {
  const handle = (socket as unknown as { _handle?: Partial<WritableHandle> | null })._handle;
  if (handleWrites && streamWrap && typeof handle?.writeBuffer === 'function') return new HandleWriter(socket, streamWrap, events);
  return new StreamWriter(socket, events);
}
