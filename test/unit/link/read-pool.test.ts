/**
 * Pooled reads: the accepted socket moved to one reading with `onread`, buffers reused, and
 * the relay forwarding through them with exact counters, also across a fault switched on and
 * off mid-stream. Real loopback sockets, an in-process relay.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptPooled, pooledOnRead, ReadPool, type PooledReader } from '../../../src/link/read-pool.js';
import { Relay } from '../../../src/link/relay-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => void s.destroy());
  });
}

/** Bytes with a position-dependent pattern, so a reorder or a stale pooled buffer shows. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 12)) & 0xff;
  return b;
}

function collect(s: net.Socket, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    s.on('data', (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= n) resolve(Buffer.concat(parts));
    });
  });
}

describe('read pool', () => {
  it('reuses given-back buffers and allocates only when empty', () => {
    const pool = new ReadPool(1024);
    const a = pool.take();
    pool.give(a);
    expect(pool.take()).toBe(a);
    pool.take();
    expect(pool.allocated).toBe(2);
    // A buffer of another size is not kept.
    pool.give(Buffer.alloc(10));
    pool.take();
    expect(pool.allocated).toBe(3);
  });

  it('leaves a socket without a movable handle as it is (the fallback: fresh buffers, data events)', () => {
    const s = new net.Socket();
    const r = adoptPooled(s, pooledOnRead(new ReadPool(), () => undefined));
    expect(r).toEqual({ socket: s, pooled: false });
    s.destroy();
  });

  it('moves an accepted socket to one reading into the pool, and the server stops counting it', async () => {
    const pool = new ReadPool(4096);
    const readers: { read?: PooledReader } = {};
    const server = net.createServer({ pauseOnConnect: true });
    const adopted = new Promise<{ socket: net.Socket; pooled: boolean }>((resolve) =>
      server.once('connection', (s) => resolve(adoptPooled(s, pooledOnRead(pool, () => readers.read)))),
    );
    const c = await dial(await listen(server));
    c.end(pattern(256 * 1024, 1));
    const { socket, pooled } = await adopted;
    cleanups.push(() => void socket.destroy());
    expect(pooled).toBe(true);
    // The old object let go of the handle and was destroyed: the server no longer counts it.
    await new Promise((r) => setImmediate(r));
    expect(await new Promise((r) => server.getConnections((_e, n) => r(n)))).toBe(0);
    const parts: Buffer[] = [];
    readers.read = (chunk, release) => {
      parts.push(Buffer.from(chunk));
      release();
      return true;
    };
    const ended = new Promise((r) => socket.once('end', r));
    socket.resume();
    await ended;
    expect(Buffer.concat(parts).equals(pattern(256 * 1024, 1))).toBe(true);
    // Many reads of 4 KiB, at most a couple of buffers ever allocated.
    expect(parts.length).toBeGreaterThan(8);
    expect(pool.allocated).toBeLessThanOrEqual(3);
  });
});

// Both write paths of ./chunk-writer.ts: handle writes (the default) and socket.write.
describe.each([true, false])('relay over pooled reads (handle writes %s)', (handleWrites) => {
  async function rig() {
    // The target: echoes everything back.
    const target = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    const targetPort = await listen(target);
    const relay = new Relay([{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: targetPort } }], { handleWrites });
    const [route] = await relay.listen();
    cleanups.push(() => relay.close());
    return { relay, port: route!.listen.port };
  }

  it('forwards both ways byte-exact, counters exact, reusing its buffers', async () => {
    const { relay, port } = await rig();
    const c = await dial(port);
    const data = pattern(8 * 1024 * 1024, 7);
    const back = collect(c, data.length);
    c.write(data);
    expect((await back).equals(data)).toBe(true);
    const snap = relay.snapshot();
    expect(snap['source-to-destination'].bytesForwarded).toBe(data.length);
    expect(snap['destination-to-source'].bytesForwarded).toBe(data.length);
    expect(snap['source-to-destination'].bytesDropped).toBe(0);
    expect(relay.pooledAccepts).toBe(1);
    // 16 MiB moved in 128 KiB reads: over a hundred reads, a handful of buffers.
    expect(relay.pool.allocated).toBeLessThan(40);
  });

  it('keeps order and counts across a latency switched on and off mid-stream', async () => {
    const { relay, port } = await rig();
    const c = await dial(port);
    const data = pattern(4 * 1024 * 1024, 3);
    const back = collect(c, data.length);
    const third = data.length / 4;
    c.write(data.subarray(0, third));
    relay.apply({ kind: 'latency', ms: 5, direction: 'source-to-destination' });
    c.write(data.subarray(third, 2 * third));
    await new Promise((r) => setTimeout(r, 20));
    relay.restore();
    c.write(data.subarray(2 * third));
    expect((await back).equals(data)).toBe(true);
    const snap = relay.snapshot();
    expect(snap['source-to-destination'].bytesForwarded).toBe(data.length);
    expect(snap['destination-to-source'].bytesForwarded).toBe(data.length);
  });

  it('a cut resets both ends of a pooled connection', async () => {
    const { relay, port } = await rig();
    const c = await dial(port);
    c.on('error', () => {});
    const closed = new Promise<boolean>((r) => c.once('close', (hadError) => r(hadError)));
    c.write(pattern(64 * 1024, 1));
    await collect(c, 64 * 1024);
    relay.apply({ kind: 'cut' });
    expect(await closed).toBe(true);
    expect(relay.snapshot().connections).toBe(0);
  });
});
