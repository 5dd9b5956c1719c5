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
import { Channel, socketErrorText } from './channel.js';
import { MainStreamDecoder, type MainMessage, type WireHeader } from './wire.js';

export type IncomingRole = 'pending' | 'main' | 'preempt';

/** What an incoming connection needs from the destination VM. */
export interface IncomingOwner {
  readonly pageSize: number;
  readonly pageCount: number;
  /** The header names a main channel: take it (throw to refuse). */
  adoptMain(conn: IncomingConnection, header: WireHeader): void;
  /** The header names a preempt channel: take it (throw to refuse). */
  adoptPreempt(conn: IncomingConnection): void;
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

  constructor(
    sock: net.Socket,
    private readonly owner: IncomingOwner,
    /** Accepted on a migrate-recover listener. */
    readonly recover: boolean,
  ) {
    this.channel = new Channel(sock, {
      data: (chunk) => this.onData(chunk),
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
          this.owner.adoptPreempt(this);
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

  private onData(chunk: Buffer): void {
    this.owner.noteData(this, chunk.length);
    try {
      this.decoder.push(chunk);
    } catch (e) {
      this.owner.lost(this, `migration stream error${this.state === 'preempt' ? ' (preempt channel)' : ''}: ${(e as Error).message}`);
      return;
    }
    if (this.state === 'main' && this.owner.hasPreempt()) {
      // libuv reads a ready socket many times in a row (up to ~2 MiB) before it looks at the
      // next one; yield after each chunk of the bulk stream so a requested page waiting on
      // the preempt channel is placed now, not after megabytes of background push.
      const sock = this.channel.sock;
      sock.pause();
      setImmediate(() => {
        if (!sock.destroyed) sock.resume();
      });
    }
  }

  write(buf: Buffer): boolean {
    return this.channel.write(buf);
  }
}
