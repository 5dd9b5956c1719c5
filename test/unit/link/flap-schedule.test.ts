import { describe, expect, it } from 'vitest';
import { FlapSchedule, type FlapState } from '../../../src/link/flap-schedule.js';
import { ManualClock } from './helpers.js';

describe('FlapSchedule', () => {
  it('alternates the fault and up, count times, and ends up', async () => {
    const clock = new ManualClock();
    const states: [number, string][] = [];
    let done = false;
    const flap = new FlapSchedule({ upMs: 100, downMs: 50, mode: 'blackhole', count: 2 }, clock, {
      setState: (s) => void states.push([clock.now(), s]),
      onDone: () => (done = true),
    });
    void flap.start();
    await clock.advance(1000);
    expect(states).toEqual([
      [0, 'blackhole'],
      [50, 'up'],
      [150, 'blackhole'],
      [200, 'up'],
    ]);
    expect(done).toBe(true);
    expect(flap.active).toBe(false);
  });

  it('flips the fault phase synchronously when setState is synchronous (the relay)', () => {
    const clock = new ManualClock();
    const states: FlapState[] = [];
    const flap = new FlapSchedule({ upMs: 10, downMs: 10, mode: 'cut' }, clock, { setState: (s) => void states.push(s) });
    expect(flap.start()).toBeUndefined();
    expect(states).toEqual(['cut']);
    expect(clock.pending).toBe(1);
  });

  it('runs until stopped without a count, and leaves no timer behind', async () => {
    const clock = new ManualClock();
    let flips = 0;
    const flap = new FlapSchedule({ upMs: 10, downMs: 10, mode: 'cut' }, clock, { setState: () => void flips++ });
    void flap.start();
    await clock.advance(995);
    expect(flips).toBe(100); // at 0, 10, ..., 990
    flap.stop();
    await clock.advance(1000);
    expect(flips).toBe(100);
    expect(clock.pending).toBe(0);
  });

  it('with an asynchronous setState (the kernel), times each phase from when the flip finished', async () => {
    const clock = new ManualClock();
    const states: [number, FlapState][] = [];
    const flap = new FlapSchedule({ upMs: 100, downMs: 50, mode: 'cut', count: 1 }, clock, {
      setState: async (s) => {
        states.push([clock.now(), s]);
        await Promise.resolve();
      },
    });
    await flap.start();
    expect(states).toEqual([[0, 'cut']]);
    await clock.advance(1000);
    expect(states).toEqual([
      [0, 'cut'],
      [50, 'up'],
    ]);
    expect(flap.active).toBe(false);
  });

  it('a first flip that fails rejects start() and stops the schedule', async () => {
    const clock = new ManualClock();
    const flap = new FlapSchedule({ upMs: 10, downMs: 10, mode: 'blackhole' }, clock, {
      setState: () => Promise.reject(new Error('nft refused')),
    });
    await expect(flap.start()).rejects.toThrow('nft refused');
    expect(flap.active).toBe(false);
    expect(clock.pending).toBe(0);
  });

  it('a later flip that fails goes to onError and stops the schedule', async () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    let n = 0;
    const flap = new FlapSchedule({ upMs: 10, downMs: 10, mode: 'cut' }, clock, {
      setState: () => (n++ === 0 ? Promise.resolve() : Promise.reject(new Error('tc failed'))),
      onError: (err) => errors.push(err),
    });
    await flap.start();
    await clock.advance(100);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('tc failed');
    expect(flap.active).toBe(false);
    expect(n).toBe(2);
    expect(clock.pending).toBe(0);
  });
});
