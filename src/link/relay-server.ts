/**
 * The relay's data plane: one listener per route on 127.0.0.1, and for every accepted
 * connection one connection to the route's target, pumped both ways through the direction's
 * fault stages (./faults). Source = the accepting side (client), destination = the target.
 */
import net from 'node:net';
import type { Direction, HostPort, LinkFault, LinkSnapshot } from '../types.js';
import { runStages } from './faults/pipeline.js';
import { realClock, type Clock } from '../util/clock.js';
import { Notifier, type StageContext } from './faults/stage.js';
import { LinkState, type LinkDirection } from './relay-state.js';

export interface Route {
  listen: HostPort;
  target: HostPort;
}

export interface RelayOptions {
  clock?: Clock;
  random?: () => number;
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
  private closed = false;

  constructor(
    private readonly routes: readonly Route[],
    options: RelayOptions = {},
  ) {
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.state = new LinkState({ clock: this.clock, onCut: () => this.resetAll() });
  }

  /** Listens on every route; resolves to the routes with the ports actually bound. */
  async listen(): Promise<Route[]> {
    const bound: Route[] = [];
    for (const route of this.routes) {
      const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket, route.target));
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
    return this.state.snapshot(this.connections.size);
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

  private accept(client: net.Socket, target: HostPort): void {
    client.on('error', () => {});
    if (this.closed || this.state.refuseNew) {
      // A refusal as the source sees it: the connection is reset, not politely closed.
      resetSocket(client);
      return;
    }
    const conn = new RelayConnection(this, client, target);
    this.connections.add(conn);
    conn.start();
  }

  private resetAll(): void {
    for (const conn of [...this.connections]) conn.reset();
  }
}

/** One relayed TCP connection: the accepted socket and the one to the target. */
class RelayConnection {
  readonly closing = new Notifier();
  private upstream: net.Socket | undefined;
  private closed = false;
  private readonly read: Record<Direction, number> = { 'source-to-destination': 0, 'destination-to-source': 0 };
  private readonly settled: Record<Direction, number> = { 'source-to-destination': 0, 'destination-to-source': 0 };
  private cancelHold: (() => void) | undefined;

  constructor(
    private readonly relay: Relay,
    private readonly client: net.Socket,
    private readonly target: HostPort,
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
    const upstream = net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    this.upstream = upstream;
    // An error on either socket (a refused connect, a reset) is shown to the other peer as a
    // reset: that is what the source sees when the destination is not listening.
    upstream.on('error', () => this.reset());
    upstream.once('close', () => this.checkClosed());
    upstream.once('connect', () => {
      if (this.closed) return;
      void this.pump('source-to-destination', this.client, upstream);
      void this.pump('destination-to-source', upstream, this.client);
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

  /** Resolves once the direction is neither blackholed nor down (or the connection closes). */
  private whilePathDead(dir: { config: { state: string }; changes: Notifier }): Promise<void> {
    const dead = () => dir.config.state === 'blackhole' || dir.config.state === 'down';
    if (!dead() || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (dead() && !this.closed) return;
        offChange();
        offClose();
        resolve();
      };
      const offChange = dir.changes.on(done);
      const offClose = this.closing.on(done);
    });
  }

  private async pump(d: Direction, from: net.Socket, to: net.Socket): Promise<void> {
    const dir = this.relay.direction(d);
    const read = this.read;
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const chunk of from.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        read[d] += chunk.length;
        yield chunk;
      }
    }
    try {
      for await (const chunk of runStages(counted(), this.relay.makeContext(d, this))) {
        if (this.closed || to.destroyed) break;
        this.settled[d] += chunk.length;
        dir.bytesForwarded += chunk.length;
        if (!to.write(chunk)) await drained(to);
      }
      // The sender finished its direction (FIN): pass the half-close on once every byte is out.
      // A blackholed or downed direction swallows the FIN too (a real one is retransmitted until
      // the path is back), so a side that closes its end cannot tell the other through a
      // pulled cable: the other side must notice, or be paused, by itself.
      await this.whilePathDead(dir);
      if (!this.closed && !to.destroyed) to.end();
    } catch {
      // A reset or error on either socket: show the other peer a reset too, as a real path would.
      this.reset();
    }
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

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
