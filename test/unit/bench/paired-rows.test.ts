/**
 * The bench's relay-vs-socat arithmetic (bench/paired-rows.ts) and its queue probe
 * (bench/link-probe.ts), which reads real sockets from /proc/net/tcp.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { held, median, pairedDiff, pairedRatio, rotation, spread } from '../../../bench/paired-rows.js';
import { queuedBytes } from '../../../bench/link-probe.js';

describe('paired rows', () => {
  it('takes the median of an even count as the mean of the middle two', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5, 1, 3])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('shows the spread beside the median, with signs when asked', () => {
    expect(spread([2, 1, 3], 1)).toBe('2.0 (1.0–3.0)');
    expect(spread([-0.5, 1, 2], 2, true)).toBe('+1.00 (-0.50–+2.00)');
    expect(spread([7], 0)).toBe('7');
  });

  it('compares each rep with the baseline of the same rep, not medians with medians', () => {
    const row = [{ v: 10 }, { v: 30 }];
    const base = [{ v: 20 }, { v: 10 }];
    expect(pairedDiff(row, base, (r) => r.v)).toEqual([-10, 20]);
    expect(pairedRatio(row, base, (r) => r.v)).toEqual([0.5, 3]);
    expect(held(pairedRatio(row, base, (r) => r.v), (x) => x >= 1)).toBe('1 of 2');
  });

  it('rotates the order by one each rep', () => {
    expect(rotation(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(rotation(['a', 'b', 'c'], 1)).toEqual(['b', 'c', 'a']);
    expect(rotation(['a', 'b', 'c'], 4)).toEqual(['b', 'c', 'a']);
  });
});

describe('queuedBytes', () => {
  it('counts what a socket holds unread on a port, and nothing for a port no socket uses', async () => {
    const accepted: net.Socket[] = [];
    const server = net.createServer({ pauseOnConnect: true }, (s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect({ host: '127.0.0.1', port });
    try {
      await new Promise<void>((r) => client.once('connect', () => r()));
      await new Promise<void>((r) => client.write(Buffer.alloc(20_000, 1), () => r()));
      // The server never reads: the bytes wait in its receive queue (or the client's send queue).
      let queued = 0;
      for (let i = 0; i < 50 && queued < 20_000; i++) {
        queued = queuedBytes(new Set([port]));
        if (queued < 20_000) await new Promise((r) => setTimeout(r, 10));
      }
      expect(queued).toBeGreaterThanOrEqual(20_000);
      expect(queuedBytes(new Set([1]))).toBe(0);
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
