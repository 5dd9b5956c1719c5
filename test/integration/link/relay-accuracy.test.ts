/**
 * The relay's faults measure as configured, and its direct path (no fault set) and its staged
 * path (a fault set) hand over to each other without losing or reordering a byte. Timing
 * bounds are deliberately generous (a loaded CI host): lower bounds are exact, upper bounds and
 * the rate's ±30 % catch a fault that is off by a factor, not by a millisecond.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RelayLink } from '../../../src/link/relay.js';
import type { LinkEndpoints } from '../../../src/types.js';
import { client, ensureBuilt, peer, RELAY_MAIN_DIST, sleep, tempDir, waitFor } from './helpers.js';

beforeAll(ensureBuilt, 120_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function startLink(): Promise<{ link: RelayLink; ends: LinkEndpoints }> {
  const dir = tempDir();
  const link = new RelayLink({ runtimeDir: dir, relayMain: RELAY_MAIN_DIST });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => link.stop());
  return { link, ends: await link.start() };
}

async function connect(port: number) {
  const c = await client(port);
  c.socket.setNoDelay(true);
  cleanups.push(() => void c.socket.destroy());
  return c;
}

/** Round trips of `n` 8-byte pings through the link, one at a time, in ms. */
async function pings(port: number, n: number): Promise<number[]> {
  const c = await connect(port);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const want = c.state.received + 8;
    const t0 = performance.now();
    c.socket.write(Buffer.alloc(8, i));
    await waitFor(() => c.state.received >= want, 10_000, `ping ${i}`);
    out.push(performance.now() - t0);
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

describe('relay faults as configured', () => {
  it('a 60 ms latency on one direction adds at least 60 ms to a round trip, and not several times that', async () => {
    const { link, ends } = await startLink();
    const echo = await peer(ends.incoming.listen.port, true);
    cleanups.push(() => echo.close());
    await link.apply({ kind: 'latency', ms: 60, direction: 'source-to-destination' });
    const rtts = await pings(ends.incoming.connect.port, 7);
    expect(Math.min(...rtts)).toBeGreaterThanOrEqual(60);
    expect(median(rtts)).toBeLessThan(60 + 200);
  });

  it('a 1 MiB/s cap moves 1 MiB/s within ±30 %', async () => {
    const { link, ends } = await startLink();
    const arrivals: { t: number; bytes: number }[] = [];
    const server = net.createServer((s) => s.on('data', (d: Buffer) => arrivals.push({ t: performance.now(), bytes: d.length })));
    await new Promise<void>((r) => server.listen(ends.incoming.listen.port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const rate = 1024 * 1024;
    await link.apply({ kind: 'bandwidth', bytesPerSec: rate, direction: 'source-to-destination' });
    const c = await connect(ends.incoming.connect.port);
    const size = 2 * rate;
    c.socket.write(Buffer.alloc(size));
    await waitFor(() => arrivals.reduce((n, a) => n + a.bytes, 0) === size, 20_000, 'the capped transfer');
    // From the first chunk's arrival to the last: the bytes after the first over that time.
    const seconds = (arrivals[arrivals.length - 1]!.t - arrivals[0]!.t) / 1000;
    const measured = (size - arrivals[0]!.bytes) / seconds;
    expect(measured).toBeGreaterThan(0.7 * rate);
    expect(measured).toBeLessThan(1.3 * rate);
  });

  it('a FIN takes the latency too, even when it follows the data long after', async () => {
    const { link, ends } = await startLink();
    let endedAt = 0;
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.resume();
      s.on('end', () => {
        endedAt = performance.now();
        s.end();
      });
    });
    await new Promise<void>((r) => server.listen(ends.incoming.listen.port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const c = await connect(ends.incoming.connect.port);
    await link.apply({ kind: 'latency', ms: 300, direction: 'source-to-destination' });
    await sleep(100);
    const t0 = performance.now();
    c.socket.end();
    await waitFor(() => endedAt > 0, 10_000, 'the FIN');
    expect(endedAt - t0).toBeGreaterThanOrEqual(300);
  });

  it('bytes stay whole and in order while faults come and go mid-stream (direct and staged paths in turn)', async () => {
    const { link, ends } = await startLink();
    const chunks: Buffer[] = [];
    const server = net.createServer((s) => s.on('data', (d: Buffer) => chunks.push(d)));
    await new Promise<void>((r) => server.listen(ends.incoming.listen.port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const c = await connect(ends.incoming.connect.port);
    // A counter stream: byte i is i mod 251, so any loss, duplicate or reordering shows.
    const total = 24 * 1024 * 1024;
    const piece = 64 * 1024;
    let sent = 0;
    const more = (): void => {
      while (sent < total) {
        const b = Buffer.alloc(piece);
        for (let i = 0; i < piece; i++) b[i] = (sent + i) % 251;
        sent += piece;
        if (!c.socket.write(b)) return;
      }
    };
    c.socket.on('drain', more);
    more();
    const faults = [
      { kind: 'latency', ms: 5, jitterMs: 3 },
      { kind: 'latency', ms: 0 },
      { kind: 'bandwidth', bytesPerSec: 8 * 1024 * 1024 },
      { kind: 'down' },
      { kind: 'up' },
      { kind: 'bandwidth', bytesPerSec: 0 },
      { kind: 'loss', percent: 1 },
      { kind: 'loss', percent: 0 },
    ] as const;
    for (const f of faults) {
      await sleep(150);
      await link.apply({ ...f, direction: 'source-to-destination' });
    }
    await link.restore();
    const received = () => chunks.reduce((n, d) => n + d.length, 0);
    await waitFor(() => received() === total, 30_000, 'every byte');
    const all = Buffer.concat(chunks);
    let bad = -1;
    for (let i = 0; i < all.length; i++) {
      if (all[i] !== i % 251) {
        bad = i;
        break;
      }
    }
    expect(bad).toBe(-1);
    const snap = await link.snapshot();
    expect(snap['source-to-destination'].bytesForwarded).toBe(total);
    expect(snap['source-to-destination'].bytesDropped).toBe(0);
  });
});
