/**
 * The direct path's turn: a bulk direction reads at most TURN_BYTES (plus the read that crossed
 * it) before the event loop moves on, so another connection's or the return path's bytes wait
 * behind a couple of chunks, not behind libuv's batch of 32 reads. An in-process relay on real
 * loopback sockets; bytes forwarded are sampled once per turn (setImmediate).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_FREE, READ_BUFFER_BYTES } from '../../../src/link/read-pool.js';
import { TURN_BYTES } from '../../../src/link/relay-pump.js';
import type { LinkFault } from '../../../src/types.js';
import { Relay } from '../../../src/link/relay-server.js';

const cleanups: (() => Promise<void> | void)[] = [];

/** `sink` listening on loopback, a relay in front of it, and a client connecting through it; all closed after the test. */
async function throughRelay(sink: net.Server): Promise<{ relay: Relay; c: net.Socket }> {
  await new Promise<void>((r) => sink.listen({ host: '127.0.0.1', port: 0 }, r));
  cleanups.push(() => new Promise<void>((r) => sink.close(() => r())));
  const relay = new Relay([{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: (sink.address() as net.AddressInfo).port } }]);
  const [route] = await relay.listen();
  cleanups.push(() => relay.close());
  const c = net.connect({ host: '127.0.0.1', port: route!.listen.port });
  cleanups.push(() => void c.destroy());
  return { relay, c };
}
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('relay pump, direct path', () => {
  it('forwards at most one turn of bytes per turn of the event loop', async () => {
    const total = 32 * 1024 * 1024;
    let received = 0;
    let allIn: () => void = () => {};
    const done = new Promise<void>((r) => (allIn = r));
    const sink = net.createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= total) allIn();
      });
    });
    const { relay, c } = await throughRelay(sink);
    await new Promise((r) => c.once('connect', r));

    const forwarded = () => relay.snapshot()['source-to-destination'].bytesForwarded;
    let last = 0;
    let most = 0;
    let sampling = true;
    const sample = (): void => {
      const now = forwarded();
      most = Math.max(most, now - last);
      last = now;
      if (sampling) setImmediate(sample);
    };
    setImmediate(sample);
    c.write(Buffer.alloc(total, 5));
    await done;
    sampling = false;
    expect(forwarded()).toBe(total);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThan(TURN_BYTES + READ_BUFFER_BYTES);
  });
});

describe('relay pump, direct path, a destination that does not read', () => {
  it('stops reading while a chunk waits for the kernel, and delivers every byte in order once it reads', async () => {
    // More than the kernel's buffers on both hops hold when the sink reads nothing (measured:
    // ~20 MiB on loopback; the relay's receive buffer autotunes as it reads).
    const total = 48 * 1024 * 1024;
    let sinkSocket: net.Socket | undefined;
    let accepted: () => void = () => {};
    const connected = new Promise<void>((r) => (accepted = r));
    const sink = net.createServer({ pauseOnConnect: true }, (s) => {
      s.on('error', () => {});
      sinkSocket = s;
      accepted();
    });
    const { relay, c } = await throughRelay(sink);
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    await connected;
    const want = pattern(total);
    c.end(want);

    // Wait until the relay has stopped: its read count no longer moves across turns of polling.
    const forwarded = () => relay.snapshot()['source-to-destination'].bytesForwarded;
    for (let last = -1, still = 0; still < 5; ) {
      await new Promise((r) => setTimeout(r, 20));
      const now = forwarded();
      still = now === last ? still + 1 : 0;
      last = now;
    }
    // Backpressure reached the source: it still holds bytes the relay would not read.
    expect(forwarded()).toBeLessThan(total);
    expect(c.writableLength).toBeGreaterThan(0);
    // What the relay holds: the one chunk written but not yet in the kernel, plus the buffer
    // each reading socket keeps for its next read (two sockets). A second chunk read while the
    // first is written (double buffering) measured worse: more bytes queued at the relay's
    // input and more CPU per GB (README, Benchmarks → Issue 13).
    expect(relay.pool.lent - 2).toBe(1);

    const parts: Buffer[] = [];
    const ended = new Promise<void>((r) => sinkSocket!.on('end', r));
    sinkSocket!.on('data', (d: Buffer) => parts.push(d));
    sinkSocket!.resume();
    await ended;
    const got = Buffer.concat(parts);
    expect(got.length).toBe(total);
    expect(got.equals(want)).toBe(true);
  });
});

/** Bytes 0..n-1 as i * 7 + (i >> 16) mod 256: a buffer reused too early would show as a mismatch. */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 16)) & 0xff;
  return b;
}

/** `total` bytes of a pattern through an in-process relay with `fault` set; what the sink got and the relay's pool. */
async function throughFault(fault: LinkFault, total: number, until?: (relay: Relay) => boolean): Promise<{ got: Buffer; relay: Relay }> {
  const parts: Buffer[] = [];
  let ended: () => void = () => {};
  const end = new Promise<void>((r) => (ended = r));
  const sink = net.createServer((s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => ended());
  });
  await new Promise<void>((r) => sink.listen({ host: '127.0.0.1', port: 0 }, r));
  cleanups.push(() => new Promise<void>((r) => sink.close(() => r())));
  const relay = new Relay([{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: (sink.address() as net.AddressInfo).port } }]);
  const [route] = await relay.listen();
  cleanups.push(() => relay.close());
  relay.apply(fault);
  const c = net.connect({ host: '127.0.0.1', port: route!.listen.port });
  cleanups.push(() => void c.destroy());
  c.on('error', () => {});
  await new Promise((r) => c.once('connect', r));
  c.end(pattern(total));
  // A blackhole holds the FIN too (the path is dead): then wait for `until` instead.
  if (until) while (!until(relay)) await new Promise((r) => setTimeout(r, 20));
  else await end;
  return { got: Buffer.concat(parts), relay };
}

describe('relay pump, staged path', () => {
  it('keeps read buffers until their chunk is written: the bytes arrive intact and the pool is reused', async () => {
    const total = 24 * 1024 * 1024;
    const { got, relay } = await throughFault({ kind: 'latency', ms: 2, direction: 'source-to-destination' }, total);
    expect(got.length).toBe(total);
    expect(got.equals(pattern(total))).toBe(true);
    // 192 reads of 128 KiB or more: a pool that copied or never got its buffers back would
    // allocate about one per read; held ones are bounded by the delay queue's 4 MiB.
    expect(relay.pool.allocated).toBeLessThan(MAX_FREE + 8);
  });

  it('gives back the buffers of chunks a blackhole drops', async () => {
    const total = 24 * 1024 * 1024;
    const dropped = (r: Relay) => r.snapshot()['source-to-destination'].bytesDropped;
    const { got, relay } = await throughFault({ kind: 'blackhole', direction: 'source-to-destination' }, total, (r) => dropped(r) >= total);
    expect(got.length).toBe(0);
    expect(dropped(relay)).toBe(total);
    expect(relay.pool.allocated).toBeLessThan(MAX_FREE + 8);
  });
});
