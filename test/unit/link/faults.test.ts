import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bandwidth } from '../../../src/link/faults/bandwidth.js';
import { TokenBucket } from '../../../src/util/token-bucket.js';
import { blackhole } from '../../../src/link/faults/blackhole.js';
import { delayStage } from '../../../src/link/faults/delay-queue.js';
import { down } from '../../../src/link/faults/down.js';
import { latency, latencyDelay } from '../../../src/link/faults/latency.js';
import type { Chunk } from '../../../src/link/faults/stage.js';
import { loss, RETRANSMIT_DELAY_MS, stallProbability } from '../../../src/link/faults/loss.js';
import { runStages } from '../../../src/link/faults/pipeline.js';
import { harness, ManualClock, runStage, settle } from './helpers.js';

describe('latency', () => {
  it('delays each chunk by the latency and keeps order', async () => {
    const h = harness({ latencyMs: 100 });
    const s = runStage(latency, h);
    s.write('a');
    await h.clock.advance(30);
    s.write('b');
    await h.clock.advance(69);
    expect(s.text()).toBe('');
    await h.clock.advance(1);
    expect(s.out.map((o) => [o.at, o.chunk.toString()])).toEqual([[100, 'a']]);
    await h.clock.advance(30);
    expect(s.out.map((o) => [o.at, o.chunk.toString()])).toEqual([
      [100, 'a'],
      [130, 'b'],
    ]);
  });

  it('with jitter, never reorders: a chunk leaves at max(previous departure, its own due)', async () => {
    // The first chunk draws +jitter, the second -jitter: the second must wait for the first.
    const samples = [1, 0];
    const h = harness({ latencyMs: 100, jitterMs: 50 }, () => samples.shift() ?? 0.5);
    const s = runStage(latency, h);
    s.write('first');
    await h.clock.advance(10);
    s.write('second');
    await h.clock.advance(200);
    expect(s.out.map((o) => [o.at, o.chunk.toString()])).toEqual([
      [150, 'first'],
      [150, 'second'],
    ]);
  });

  it('keeps order for any arrival times and jitter draws (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.double({ min: 0, max: 0.999, noNaN: true })), { minLength: 1, maxLength: 20 }),
        async (arrivals) => {
          const draws = arrivals.map(([, r]) => r);
          const h = harness({ latencyMs: 50, jitterMs: 40 }, () => draws.shift() ?? 0.5);
          const s = runStage(latency, h);
          for (const [i, [gap]] of arrivals.entries()) {
            await h.clock.advance(gap);
            s.write(String.fromCharCode(65 + i));
          }
          await h.clock.advance(1000);
          expect(s.text()).toBe(arrivals.map((_, i) => String.fromCharCode(65 + i)).join(''));
          const times = s.out.map((o) => o.at);
          expect([...times].sort((a, b) => a - b)).toEqual(times);
          h.close();
        },
      ),
      { numRuns: 30 },
    );
  });

  it('a live change applies to chunks still waiting (removing latency releases them)', async () => {
    const h = harness({ latencyMs: 5000 });
    const s = runStage(latency, h);
    s.write('held');
    await h.clock.advance(100);
    expect(s.text()).toBe('');
    h.set({ latencyMs: 0 });
    await settle();
    expect(s.text()).toBe('held');
  });

  it('passes the end of input on only after the last chunk is out', async () => {
    const h = harness({ latencyMs: 100 });
    const s = runStage(latency, h);
    s.write('x');
    s.end();
    await h.clock.advance(50);
    expect(s.ended).toBe(false);
    await h.clock.advance(50);
    await s.done;
    expect(s.text()).toBe('x');
  });

  it('counts the delay from when the chunk was read, not from when it reached the stage', async () => {
    // The relay stamps a chunk when it reads it; the stages before this one took 30 ms (the
    // promise turns between stages cost real time, more under load).
    const h = harness({ latencyMs: 100 });
    await h.clock.advance(30);
    async function* readAtZero(): AsyncGenerator<Chunk> {
      yield { data: Buffer.from('x'), at: 0 };
    }
    const out: { at: number; due: number }[] = [];
    const done = (async () => {
      for await (const c of latency(readAtZero(), h.ctx)) out.push({ at: h.clock.now(), due: c.at });
    })();
    await h.clock.advance(69);
    expect(out).toEqual([]);
    await h.clock.advance(1);
    await done;
    expect(out).toEqual([{ at: 100, due: 100 }]);
  });

  it('passes on the time a chunk was due, so a late wake-up is not counted again downstream', async () => {
    // Bucket debt (two slices: 51.2 ms, then 100 ms in all) then latency (100 ms): the second
    // stage counts from the due time the first one reports, which a late timer in the relay
    // would otherwise push back.
    const h = harness({ latencyMs: 100, rateBytesPerSec: 10_000 });
    const s = runStage((input, ctx) => runStages(input, ctx), h);
    s.write(Buffer.alloc(1000));
    await h.clock.advance(250);
    const dues = s.out.map((o) => o.due);
    expect(dues).toHaveLength(2);
    expect(dues[0]).toBeCloseTo(151.2, 6);
    expect(dues[1]).toBeCloseTo(200, 6);
  });

  it('holds a bounded number of bytes, then stops pulling (backpressure)', async () => {
    const h = harness({ latencyMs: 1000 });
    const s = runStage(delayStage(() => 1000, () => true, 10), h);
    let accepted = 0;
    for (let i = 0; i < 40; i++) if (s.write('12345')) accepted++;
    await settle();
    // The stage holds 10 bytes (and has pulled one more chunk): the rest waits in the input.
    expect(s.input.writableLength + s.input.readableLength).toBeGreaterThan(30);
    expect(accepted).toBeLessThan(40);
    h.close();
  });
});

describe('loss', () => {
  it('with only latency set, holds one chunk: no second window of queueing in front of the latency', async () => {
    // Latency holds 10 bytes; loss, which delays nothing here, must not run ahead of it.
    const h = harness({ latencyMs: 1000 });
    const s = runStage((input, ctx) => runStages(input, ctx, [loss, delayStage(latencyDelay, () => true, 10)]), h);
    for (let i = 0; i < 40; i++) s.write('12345');
    await settle();
    // Latency took 10 bytes and pulled one more chunk; loss holds one: 4 chunks of 40 left the input.
    expect(s.input.writableLength + s.input.readableLength).toBeGreaterThanOrEqual(35);
    h.close();
  });

  it('never loses bytes: a lost chunk stalls for the retransmission delay, and so does what follows', async () => {
    const samples = [0, 0.99]; // first chunk "lost", second not
    const h = harness({ lossPercent: 50 }, () => samples.shift() ?? 0.99);
    const s = runStage(loss, h);
    s.write('a');
    s.write('b');
    await h.clock.advance(RETRANSMIT_DELAY_MS - 1);
    expect(s.text()).toBe('');
    await h.clock.advance(1);
    expect(s.text()).toBe('ab');
  });

  it('treats percent as per-packet: bigger chunks stall more often', () => {
    expect(stallProbability(0, 65536)).toBe(0);
    expect(stallProbability(100, 1)).toBe(1);
    expect(stallProbability(1, 1000)).toBeCloseTo(0.01);
    expect(stallProbability(1, 65536)).toBeCloseTo(1 - 0.99 ** 46);
  });
});

describe('bandwidth', () => {
  it('token bucket: the long-run rate is the configured one', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(clock, 1000);
    expect(bucket.take(500)).toBe(500); // empty bucket: 500 B at 1000 B/s is 500 ms away
    expect(bucket.take(500)).toBe(1000); // debt queues behind the first
    expect(new TokenBucket(clock, 0).take(1e9)).toBe(0); // 0 means unlimited
  });

  it('delivers at the configured rate with an injected clock', async () => {
    const rate = 10_000;
    const h = harness({ rateBytesPerSec: rate });
    const s = runStage(bandwidth, h);
    const total = 50_000;
    const feeding = (async () => {
      for (let sent = 0; sent < total; sent += 5000) {
        if (!s.write(Buffer.alloc(5000))) await new Promise((r) => s.input.once('drain', r));
      }
      s.end();
    })();
    await h.clock.advance(1000);
    // One second at 10 kB/s: 10 kB, give or take a slice.
    expect(s.bytes()).toBeGreaterThanOrEqual(rate - 1000);
    expect(s.bytes()).toBeLessThanOrEqual(rate + 1000);
    await h.clock.advance(4100);
    await feeding;
    await s.done;
    expect(s.bytes()).toBe(total);
    const last = s.out[s.out.length - 1];
    expect(last.at).toBeGreaterThanOrEqual(4800);
    expect(last.at).toBeLessThanOrEqual(5100);
  });

  it('stops pulling while the bucket is empty, so the writer sees backpressure', async () => {
    const h = harness({ rateBytesPerSec: 1000 });
    const s = runStage(bandwidth, h);
    let refused = false;
    for (let i = 0; i < 20 && !refused; i++) refused = !s.write(Buffer.alloc(1000));
    await settle();
    expect(refused).toBe(true);
    expect(s.bytes()).toBeLessThan(2000);
    h.close();
  });

  it('removing the cap releases a waiting chunk at once', async () => {
    const h = harness({ rateBytesPerSec: 100 });
    const s = runStage(bandwidth, h);
    s.write(Buffer.alloc(2000));
    await h.clock.advance(10);
    const before = s.bytes();
    h.set({ rateBytesPerSec: 0 });
    await settle();
    expect(before).toBeLessThan(2000);
    expect(s.bytes()).toBe(2000);
    // Released by the change, not by the bucket: it left now, not at the due time it had.
    expect(Math.max(...s.out.map((o) => o.due))).toBeLessThanOrEqual(h.clock.now());
  });
});

describe('blackhole', () => {
  it('drops and counts every byte while blackholed, and passes bytes again after', async () => {
    const h = harness({ state: 'blackhole' });
    const s = runStage(blackhole, h);
    s.write('abc');
    s.write('defg');
    await settle();
    expect(s.text()).toBe('');
    expect(h.dropped()).toBe(7);
    h.set({ state: 'up' });
    s.write('hi');
    await settle();
    expect(s.text()).toBe('hi');
    expect(h.dropped()).toBe(7);
  });
});

describe('down', () => {
  it('holds bytes without dropping any and releases them, intact, when up again', async () => {
    const h = harness({ state: 'down' });
    const s = runStage(down, h);
    s.write('pulled ');
    s.write('cable');
    await h.clock.advance(10_000);
    expect(s.text()).toBe('');
    expect(h.dropped()).toBe(0);
    h.set({ state: 'up' });
    await settle();
    expect(s.text()).toBe('pulled cable');
  });
});

describe('the whole pipeline', () => {
  it('composes latency and bandwidth', async () => {
    const h = harness({ latencyMs: 100, rateBytesPerSec: 10_000 });
    const s = runStage((input, ctx) => runStages(input, ctx), h);
    s.write(Buffer.alloc(1000)); // 100 ms of bucket debt, then 100 ms of latency
    await h.clock.advance(199);
    expect(s.bytes()).toBeLessThan(1000);
    await h.clock.advance(2);
    expect(s.bytes()).toBe(1000);
  });

  it('blackhole drops bytes already in flight (held by latency)', async () => {
    const h = harness({ latencyMs: 100 });
    const s = runStage((input, ctx) => runStages(input, ctx), h);
    s.write('in flight');
    await h.clock.advance(50);
    h.set({ state: 'blackhole' });
    await h.clock.advance(100);
    expect(s.text()).toBe('');
    expect(h.dropped()).toBe(9);
  });
});
