/**
 * One accepted connection on the destination, and what it turns out to be. Its first frame,
 * the stream header, decides:
 *
 *   pending --header(main)-----> main     the stream in, the return path out
 *   pending --header(preempt)--> preempt  requested pages only (postcopy-preempt)
 *   pending --anything else----> closed   rejected: reported, never a channel
 *
 * The VM adopts a main or preempt connection, or refuses it (by throwing); after that the
 * connection passes the stream's messages on, and closes as a unit with its decoder.
 */
import type net from 'node:net';
import { Channel, readIntoBuffer, socketErrorText } from './channel.js';
import { MainStreamDecoder, type MainMessage, type WireHeader } from './wire.js';
import { task, taskStart } from './loop-stats.js';

export type IncomingRole = 'pending' | 'main' | 'preempt';

/**
 * Bytes per read: what the decoder places before the loop turns, so what a requested page on
 * the preempt channel may wait behind (128 KiB of pages are placed in ~0.06 ms).
 */
const READ_BYTES = 128 * 1024;

/** What an incoming connection needs from the destination VM. */
export interface IncomingOwner {
  readonly pageSize: number;
  readonly pageCount: number;
  /** The header names a main channel: take it (throw to refuse). */
  adoptMain(conn: IncomingConnection, header: WireHeader): void;
  /** The header names a preempt channel: take it (throw to refuse). */
  adoptPreempt(conn: IncomingConnection, header: WireHeader): void;
  /** A message on an adopted channel (on a preempt channel, only pages get here). */
  onMessage(conn: IncomingConnection, m: MainMessage): void;
  /** Bytes arrived on this connection (for the stall detector). */
  noteData(conn: IncomingConnection, bytes: number): void;
  /** Whether a preempt channel is up beside the main one. */
  hasPreempt(): boolean;
  /** The connection failed: a stream error, a socket error or the peer closed it. */
  lost(conn: IncomingConnection, reason: string): void;
}

export class IncomingConnection {
  private state: IncomingRole = 'pending';
  readonly channel: Channel;
  private readonly decoder: MainStreamDecoder;

  /** Every read of this connection lands here (readIntoBuffer): reads allocate nothing. */
  private readonly readBuf = Buffer.allocUnsafe(READ_BYTES);

  constructor(
    /** Accepted paused (a server with pauseOnConnect), so no byte was read before readIntoBuffer. */
    sock: net.Socket,
    private readonly owner: IncomingOwner,
    /** Accepted on a migrate-recover listener. */
    readonly recover: boolean,
  ) {
    this.channel = new Channel(readIntoBuffer(sock, this.readBuf, (n) => this.onRead(n)), {
      error: (e) => owner.lost(this, socketErrorText(e)),
      close: () => owner.lost(this, `the ${this.state === 'preempt' ? 'preempt channel' : 'migration connection'} was closed by the peer`),
    });
    this.decoder = new MainStreamDecoder(owner.pageSize, owner.pageCount, this.channel.bind((m) => this.onFrame(m)));
  }

  get role(): IncomingRole {
    return this.state;
  }

  private onFrame(m: MainMessage): void {
    switch (this.state) {
      case 'pending':
        if (m.type !== 'header') throw new Error(`expected the stream header, got ${m.type}`);
        if (m.header.preemptChannel) {
          this.owner.adoptPreempt(this, m.header);
          this.state = 'preempt';
        } else {
          this.owner.adoptMain(this, m.header);
          this.state = 'main';
        }
        return;
      case 'preempt':
        if (m.type !== 'page') throw new Error(`only pages belong on the preempt channel, got ${m.type}`);
        return this.owner.onMessage(this, m);
      case 'main':
        return this.owner.onMessage(this, m);
    }
  }

  /** readBuf[0, n) arrived; false pauses reading (a yield to the preempt channel, see below). */
  private onRead(n: number): boolean {
    if (!this.channel.open) return true;
    const t0 = taskStart();
    try {
      return this.read(n);
    } finally {
      task(`read:${this.state}`, t0);
    }
  }

  private read(n: number): boolean {
    this.owner.noteData(this, n);
    try {
      this.decoder.push(this.readBuf, n);
    } catch (e) {
      this.owner.lost(this, `migration stream error${this.state === 'preempt' ? ' (preempt channel)' : ''}: ${(e as Error).message}`);
      return true;
    }
    if (this.state === 'main' && this.owner.hasPreempt()) {
      // libuv reads a ready socket many times in a row (up to 32 reads) before it looks at the
      // next one; yield after each read of the bulk stream so a requested page waiting on the
      // preempt channel is placed now, not after megabytes of background push.
      setImmediate(this.resume);
      return false;
    }
    return true;
  }

  /** One function for every yield, not a closure per read. */
  private readonly resume = (): void => {
    if (this.channel.open && !this.channel.sock.destroyed) this.channel.sock.resume();
  };

  write(buf: Buffer): boolean {
    return this.channel.write(buf);
  }
}
