/** In-memory harness for the relay's fault stages: a hand-driven clock and a stage context. */
import { PassThrough } from 'node:stream';
import { TokenBucket } from '../../../src/util/token-bucket.js';
import type { Clock } from '../../../src/util/clock.js';
import type { DirectionConfig } from '../../../src/link/fault-model.js';
import { Notifier, type Chunk, type Stage, type StageContext } from '../../../src/link/faults/stage.js';

/** A clock that only moves when told to; timers fire in time order as it passes them. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by ms, firing due timers in order and letting promises settle between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

/** Lets every pending promise chain and stream tick run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export interface Harness {
  ctx: StageContext;
  config: DirectionConfig;
  clock: ManualClock;
  dropped: () => number;
  /** Changes the config and tells the stages, as the relay does. */
  set(patch: Partial<DirectionConfig>): void;
  close(): void;
}

export function harness(patch: Partial<DirectionConfig> = {}, random: () => number = () => 0.5): Harness {
  const clock = new ManualClock();
  const config: DirectionConfig = { state: 'up', latencyMs: 0, jitterMs: 0, lossPercent: 0, rateBytesPerSec: 0, ...patch };
  const bucket = new TokenBucket(clock, config.rateBytesPerSec);
  const changes = new Notifier();
  const closing = new Notifier();
  let dropped = 0;
  let closed = false;
  const ctx: StageContext = {
    get config() {
      return config;
    },
    clock,
    random,
    bucket,
    countDropped: (n) => (dropped += n),
    onChange: (fn) => changes.on(fn),
    onClose: (fn) => closing.on(fn),
    get closed() {
      return closed;
    },
  };
  return {
    ctx,
    config,
    clock,
    dropped: () => dropped,
    set(p) {
      Object.assign(config, p);
      if (p.rateBytesPerSec !== undefined) bucket.setRate(p.rateBytesPerSec);
      changes.fire();
    },
    close() {
      closed = true;
      closing.fire();
    },
  };
}

/** The chunks written to `input`, stamped with the clock's time when the stage pulls them (as the relay stamps reads). */
async function* stamped(input: AsyncIterable<Buffer>, clock: ManualClock): AsyncGenerator<Chunk> {
  for await (const data of input) yield { data, at: clock.now() };
}

/**
 * An in-memory stream pair around a stage: write chunks in, read what comes out and when
 * (`at`: the clock when it came out; `due`: the time the stage said it left).
 */
export function runStage(stage: Stage, h: Harness) {
  const input = new PassThrough({ objectMode: true, highWaterMark: 4 });
  const out: { at: number; due: number; chunk: Buffer }[] = [];
  let ended = false;
  let error: unknown;
  const done = (async () => {
    try {
      for await (const c of stage(stamped(input as AsyncIterable<Buffer>, h.clock), h.ctx)) out.push({ at: h.clock.now(), due: c.at, chunk: c.data });
    } catch (err) {
      error = err;
    } finally {
      ended = true;
    }
  })();
  return {
    input,
    out,
    /** Writes a chunk; false when the stage is not taking more (backpressure). */
    write: (chunk: Buffer | string): boolean => input.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk),
    end: () => input.end(),
    text: () => Buffer.concat(out.map((o) => o.chunk)).toString(),
    bytes: () => out.reduce((n, o) => n + o.chunk.length, 0),
    get ended() {
      return ended;
    },
    get error() {
      return error;
    },
    done,
  };
}
