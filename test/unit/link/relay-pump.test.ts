/**
 * The direct path's turn: a bulk direction reads at most TURN_BYTES (plus the read that crossed
 * it) before the event loop moves on, so another connection's or the return path's bytes wait
 * behind a couple of chunks, not behind libuv's batch of 32 reads. An in-process relay on real
 * loopback sockets; bytes forwarded are sampled once per turn (setImmediate).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { READ_BUFFER_BYTES } from '../../../src/link/read-pool.js';
import { TURN_BYTES } from '../../../src/link/relay-pump.js';
import { Relay } from '../../../src/link/relay-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
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
    await new Promise<void>((r) => sink.listen({ host: '127.0.0.1', port: 0 }, r));
    cleanups.push(() => new Promise<void>((r) => sink.close(() => r())));
    const relay = new Relay([{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: (sink.address() as net.AddressInfo).port } }]);
    const [route] = await relay.listen();
    cleanups.push(() => relay.close());
    const c = net.connect({ host: '127.0.0.1', port: route!.listen.port });
    cleanups.push(() => void c.destroy());
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
