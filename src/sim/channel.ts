/**
 * One migration connection and everything listening on it, closed as a unit (the model is
 * Toxiproxy's ToxicStub). Once a channel is closed none of its callbacks runs again, whatever
 * the socket still emits and whatever a decoder still holds, so no handler has to ask whether
 * it still belongs to the current connection.
 */
import net from 'node:net';
import { adoptWithOnRead } from '../util/adopt-socket.js';

export interface ChannelHandlers {
  /** The outgoing connection is established. */
  connect?(): void;
  data?(chunk: Buffer): void;
  /** The kernel took everything that was queued. */
  drain?(): void;
  /** A socket error; the channel stays open until its owner closes it. */
  error(e: NodeJS.ErrnoException): void;
  /** The peer closed the connection (or it died); the channel stays open until its owner closes it. */
  close(): void;
}

export class Channel {
  private closed = false;

  constructor(readonly sock: net.Socket, handlers: ChannelHandlers) {
    sock.setNoDelay(true);
    const { connect, data, drain } = handlers;
    if (connect) sock.on('connect', this.bind(connect));
    if (data) sock.on('data', this.bind(data));
    if (drain) sock.on('drain', this.bind(drain));
    sock.on('error', this.bind(handlers.error));
    sock.on('close', this.bind(handlers.close));
  }

  get open(): boolean {
    return !this.closed;
  }

  /**
   * `fn`, run only while this channel is open: for decoder callbacks, timers and the like. One
   * argument, not a rest parameter: this wraps the per-page callback, and a rest parameter is
   * an array allocated per call.
   */
  bind<T = void>(fn: (arg: T) => void): (arg: T) => void {
    return (arg: T) => {
      if (!this.closed) fn(arg);
    };
  }

  /**
   * Queue bytes; false once the channel is closed (nothing is written then). `done` runs once
   * the kernel has taken all of `buf` or the socket failed: either way `buf` is free again.
   */
  write(buf: Buffer, done?: () => void): boolean {
    if (this.closed || this.sock.destroyed) return false;
    // `done` itself, not a closure around it: the sender writes a batch every few microseconds.
    if (done) this.sock.write(buf, done);
    else this.sock.write(buf);
    return true;
  }

  /** Bytes waiting in user space for the kernel to take them. */
  get writableLength(): number {
    return this.sock.writableLength;
  }

  /** Resolves once the queued bytes are in the kernel, or the channel is closed. */
  waitDrain(): Promise<void> {
    const s = this.sock;
    return new Promise((resolve) => {
      if (this.closed || s.destroyed || s.writableLength === 0) return resolve();
      const done = () => {
        s.off('drain', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
  }

  /** Close after the queued bytes are sent (the migration completed). */
  end(): void {
    this.closed = true;
    this.sock.end();
  }

  /** Close now, dropping whatever is queued (a failure or a newer connection). */
  destroy(): void {
    this.closed = true;
    if (!this.sock.destroyed) this.sock.destroy();
  }
}

/** QEMU-like text for a socket error. */
export function socketErrorText(e: NodeJS.ErrnoException): string {
  return `${e.code ?? ''} ${e.message}`.trim();
}

/**
 * An accepted socket, taken from a server made with `pauseOnConnect` before it read anything,
 * re-made to read into `buffer` (Node's `onread`, src/util/adopt-socket.ts): every read lands in
 * the same buffer and `onRead(n)` sees buffer[0, n), valid until it returns; returning false
 * pauses reading until `resume()`. A socket that reads through the stream machinery makes a
 * fresh buffer per read, and V8 forces a young-generation collection every 32 MiB of such
 * buffers: some 32 pauses per GiB received, each one delaying the page requests this process
 * serves. Where the handle cannot move, the socket reads as a stream, copied into `buffer`.
 */
export function readIntoBuffer(sock: net.Socket, buffer: Buffer, onRead: (n: number) => boolean): net.Socket {
  const { socket, adopted } = adoptWithOnRead(sock, { buffer, callback: (n: number) => onRead(n) }, { paused: false });
  if (!adopted) {
    sock.on('data', (d: Buffer) => {
      for (let o = 0; o < d.length; o += buffer.length) {
        const n = d.copy(buffer, 0, o, Math.min(d.length, o + buffer.length));
        if (!onRead(n)) sock.pause();
      }
    });
  }
  socket.resume();
  return socket;
}
