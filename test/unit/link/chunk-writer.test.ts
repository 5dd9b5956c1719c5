/**
 * The relay's chunk writer: handle-level writes where Node allows them, `socket.write`
 * otherwise; both keep order, report when pending writes are in the kernel, and report a
 * failed write. Real loopback sockets.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { chunkWriter, handleWritesAvailable } from '../../../src/link/chunk-writer.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** A connected pair: `a` dialled, `b` accepted (paused, so writes to `a` back up). */
async function pair(): Promise<{ a: net.Socket; b: net.Socket }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  await new Promise((r) => a.once('connect', r));
  const b = await accepted;
  a.on('error', () => {});
  b.on('error', () => {});
  cleanups.push(() => void a.destroy(), () => void b.destroy());
  return { a, b };
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed + (i >> 10)) & 0xff;
  return b;
}

describe.each([true, false])('chunk writer (handle writes %s)', (handleWrites) => {
  it('writes chunks in order; one the kernel cannot take at once completes later, then drained', async () => {
    const { a, b } = await pair();
    let drained = 0;
    let failed = 0;
    const w = chunkWriter(a, { drained: () => drained++, failed: () => failed++ }, handleWrites);
    expect(w.handleLevel).toBe(handleWrites && handleWritesAvailable);
    const chunks = Array.from({ length: 64 }, (_, i) => pattern(128 * 1024, i));
    let done = 0;
    // The reader is paused: 8 MiB cannot all fit in the kernel's buffers, so some write waits.
    const results = chunks.map((c) => w.write(c, () => done++));
    expect(results).toContain(false);
    expect(done).toBeLessThan(chunks.length);
    const want = Buffer.concat(chunks);
    const parts: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) =>
      b.on('data', (d: Buffer) => {
        parts.push(d);
        got += d.length;
        if (got >= want.length) resolve();
      }),
    );
    b.resume();
    await all;
    expect(Buffer.concat(parts).equals(want)).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(chunks.length);
    expect(drained).toBeGreaterThan(0);
    expect(failed).toBe(0);
  });

  it('writes pending when the peer resets still complete, and the failure is reported', async () => {
    const { a, b } = await pair();
    let failed = 0;
    let done = 0;
    const w = chunkWriter(a, { drained: () => {}, failed: () => failed++ }, handleWrites);
    // The peer reads nothing: write until a write is left pending.
    let writes = 0;
    for (let pending = false; !pending; writes++) pending = !w.write(pattern(128 * 1024, writes), () => done++);
    const closed = new Promise((r) => a.once('close', r));
    b.resetAndDestroy();
    await closed;
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(writes);
    // Through socket.write the failure is the socket's 'error', on which the relay resets.
    if (w.handleLevel) expect(failed).toBeGreaterThan(0);
  });
});
