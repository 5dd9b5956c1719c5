/**
 * The relay's data plane: one listener per route on 127.0.0.1, and for every accepted
 * connection one connection to the route's target, pumped both ways (./relay-pump.ts: directly
 * while no fault is set, through the direction's fault stages in ./faults otherwise).
 * Source = the accepting side (client), destination = the target.
 */
import net from 'node:net';
import type { Direction, HostPort, LinkFault, LinkSnapshot } from '../types.js';
import type { Clock } from '../util/clock.js';
import { preciseClock } from './precise-clock.js';
import { Notifier, type StageContext } from './faults/stage.js';
import { LinkState, type LinkDirection } from './relay-state.js';
import { DirectionPump, type PumpOwner } from './relay-pump.js';
import { adoptPooled, pooledOnRead, ReadPool, type PooledReader } from './read-pool.js';

export interface Route {
  listen: HostPort;
  target: HostPort;
}

export interface RelayOptions {
  clock?: Clock;
  random?: () => number;
  /** False: write through `socket.write` even where handle writes work (for tests of that path). */
  handleWrites?: boolean;
}

/** A listen port that is taken; the message names it and suggests port 0. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(readonly address: HostPort) {
    super(
      `cannot listen on ${address.host}:${address.port}: the port is already in use; ` +
        `pick another port, or port 0 to let the system choose one (e.g. --route ${address.host}:0=<target>)`,
    );
  }
}

export class Relay {
  readonly state: LinkState;
  private readonly servers: net.Server[] = [];
  private readonly connections = new Set<RelayConnection>();
  private readonly clock: Clock;
  readonly random: () => number;
  readonly handleWrites: boolean;
  /** The read buffers every connection shares (see ./read-pool.ts). */
  readonly pool = new ReadPool();
  /** Accepted connections whose socket reads into the pool (all of them on Node 20). */
  pooledAccepts = 0;
  private refused = 0;
  private refusedSecond = 0;
  private closed = false;

  constructor(
    private readonly routes: readonly Route[],
    options: RelayOptions = {},
  ) {
    this.clock = options.clock ?? preciseClock;
    this.random = options.random ?? Math.random;
    this.handleWrites = options.handleWrites ?? true;
    this.state = new LinkState({ clock: this.clock, onCut: () => this.resetAll() });
  }

  /** Listens on every route; resolves to the routes with the ports actually bound. */
  async listen(): Promise<Route[]> {
    const bound: Route[] = [];
    for (const route of this.routes) {
      // Paused on connect: nothing is read before the socket is moved to one that reads into the pool.
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
        this.accept(socket, route.target),
      );
      this.servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(err.code === 'EADDRINUSE' ? new PortInUseError(route.listen) : err),
        );
        server.listen({ host: route.listen.host, port: route.listen.port, exclusive: true }, () => resolve());
      });
      server.on('error', (err) => process.emitWarning(`relay listener error: ${err.message}`));
      const addr = server.address() as net.AddressInfo;
      bound.push({ listen: { host: route.listen.host, port: addr.port }, target: route.target });
    }
    return bound;
  }

  apply(fault: LinkFault): void {
    this.state.apply(fault);
  }

  restore(): void {
    this.state.restore();
  }

  snapshot(): LinkSnapshot {
    return this.state.snapshot(this.connections.size, this.refused, this.refusedSecond);
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.state.close();
    const closing = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    this.resetAll();
    await Promise.all(closing);
  }

  /** @internal */
  direction(d: Direction): LinkDirection {
    return this.state.directions[d];
  }

  /** @internal */
  makeContext(d: Direction, conn: RelayConnection): StageContext {
    const dir = this.direction(d);
    return {
      get config() {
        return dir.config;
      },
      clock: this.clock,
      random: this.random,
      bucket: dir.bucket,
      countDropped: (bytes) => conn.countDropped(d, bytes),
      onChange: (fn) => dir.changes.on(fn),
      onClose: (fn) => conn.closing.on(fn),
      get closed() {
        return conn.isClosed;
      },
    };
  }

  /** @internal */
  forget(conn: RelayConnection): void {
    this.connections.delete(conn);
  }

  /** @internal A connection the destination refused (see LinkSnapshot's `refused`, `refusedSecond`). */
  noteRefused(conn: RelayConnection): void {
    this.refused++;
    for (const other of this.connections) {
      if (other !== conn && !other.isClosed && other.target === conn.target) {
        this.refusedSecond++;
        return;
      }
    }
  }

  private accept(accepted: net.Socket, target: HostPort): void {
    accepted.on('error', () => {});
    if (this.closed || this.state.refuseNew) {
      // A refusal as the source sees it: the connection is reset, not politely closed.
      resetSocket(accepted);
      return;
    }
    const readers: Readers = {};
    const { socket: client, pooled } = adoptPooled(
      accepted,
      pooledOnRead(this.pool, () => readers.client),
    );
    if (pooled) {
      this.pooledAccepts++;
      client.on('error', () => {});
    }
    const conn = new RelayConnection(this, client, target, readers);
    this.connections.add(conn);
    conn.start();
  }

  private resetAll(): void {
    for (const conn of [...this.connections]) conn.reset();
  }
}

/** Where each socket's pooled reads go: set when the pumps start (the sockets are paused until then). */
interface Readers {
  client?: PooledReader;
  upstream?: PooledReader;
}

/** One relayed TCP connection: the accepted socket and the one to the target. */
class RelayConnection implements PumpOwner {
  readonly closing = new Notifier();
  private upstream: net.Socket | undefined;
  private closed = false;
  private readonly read: Record<Direction, number> = { 'source-to-destination': 0, 'destination-to-source': 0 };
  private readonly settled: Record<Direction, number> = { 'source-to-destination': 0, 'destination-to-source': 0 };
  private cancelHold: (() => void) | undefined;

  constructor(
    private readonly relay: Relay,
    private readonly client: net.Socket,
    readonly target: HostPort,
    private readonly readers: Readers,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  start(): void {
    // The endpoints' own Nagle settings already apply on their sockets; the relay must not
    // add a second coalescing delay that a direct path would not have.
    this.client.setNoDelay(true);
    this.client.on('error', () => this.reset());
    this.client.once('close', () => this.checkClosed());
    // A pulled cable in the source-to-destination direction means the SYN would not get
    // through: hold the connection attempt until that direction is no longer down.
    const s2d = this.relay.direction('source-to-destination');
    if (s2d.config.state === 'down') {
      const off = s2d.changes.on(() => {
        if (s2d.config.state !== 'down') {
          off();
          this.cancelHold = undefined;
          if (!this.closed) this.connect();
        }
      });
      this.cancelHold = off;
      // If the source gives up meanwhile, stop waiting.
      this.client.once('close', () => this.reset());
      return;
    }
    this.connect();
  }

  private connect(): void {
    const upstream = net.connect({
      host: this.target.host,
      port: this.target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: pooledOnRead(this.relay.pool, () => this.readers.upstream),
    });
    this.upstream = upstream;
    // An error on either socket (a refused connect, a reset) is shown to the other peer as a
    // reset: that is what the source sees when the destination is not listening.
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' && !this.closed) this.relay.noteRefused(this);
      this.reset();
    });
    upstream.once('close', () => this.checkClosed());
    upstream.once('connect', () => {
      if (this.closed) return;
      for (const [d, from, to, side] of [
        ['source-to-destination', this.client, upstream, 'client'],
        ['destination-to-source', upstream, this.client, 'upstream'],
      ] as const) {
        const pump = new DirectionPump(d, from, to, this.relay.direction(d), this.relay.makeContext(d, this), this, this.relay.handleWrites);
        this.readers[side] = (chunk, release) => pump.read(chunk, release);
        pump.start();
      }
    });
  }

  countDropped(d: Direction, bytes: number): void {
    // After finish() every byte not delivered has been counted once already.
    if (this.closed) return;
    this.settled[d] += bytes;
    this.relay.direction(d).bytesDropped += bytes;
  }

  /** Tears both ends down with RST: what a cut link shows each peer. */
  reset(): void {
    if (this.closed) return;
    resetSocket(this.client);
    if (this.upstream) resetSocket(this.upstream);
    this.finish();
  }

  countRead(d: Direction, bytes: number): void {
    this.read[d] += bytes;
  }

  countForwarded(d: Direction, bytes: number): void {
    this.settled[d] += bytes;
  }

  onClose(fn: () => void): () => void {
    return this.closing.on(fn);
  }

  fail(): void {
    this.reset();
  }

  /** Done when both sockets are gone (after a clean close both ways, or a reset). */
  private checkClosed(): void {
    if (this.client.destroyed && (!this.upstream || this.upstream.destroyed)) this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelHold?.();
    // Bytes the relay read but neither delivered nor dropped were lost in its buffers.
    for (const d of ['source-to-destination', 'destination-to-source'] as const) {
      const lost = this.read[d] - this.settled[d];
      if (lost > 0) this.relay.direction(d).bytesDropped += lost;
    }
    this.closing.fire();
    this.relay.forget(this);
  }
}

function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
