/**
 * One migration connection and everything listening on it, closed as a unit (the model is
 * Toxiproxy's ToxicStub). Once a channel is closed none of its callbacks runs again, whatever
 * the socket still emits and whatever a decoder still holds, so no handler has to ask whether
 * it still belongs to the current connection.
 */
import type net from 'node:net';

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

  /** `fn`, run only while this channel is open: for decoder callbacks, timers and the like. */
  bind<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      if (!this.closed) fn(...args);
    };
  }

  /**
   * Queue bytes; false once the channel is closed (nothing is written then). `done` runs once
   * the kernel has taken all of `buf` or the socket failed: either way `buf` is free again.
   */
  write(buf: Buffer, done?: () => void): boolean {
    if (this.closed || this.sock.destroyed) return false;
    if (done) this.sock.write(buf, () => done());
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
