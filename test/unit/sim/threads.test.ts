/**
 * Guest threads per vCPU (src/sim/workload.ts), on a fake clock: a thread blocked on a missing
 * page lets its vCPU run another (async page faults), the vCPU stalls only when every thread
 * is blocked, the threads share their vCPU's rate and throttle, one thread per vCPU is exactly
 * the guest from before threads, and the threads' state crosses the wire as device state.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Guest, MAX_THREADS_PER_VCPU, type WorkloadSpec } from '../../../src/sim/workload.js';
import { recorder, run } from './guest-harness.js';
import { encodeJson, MainStreamDecoder, MIG_CMD, type MainMessage } from '../../../src/sim/wire.js';

function spec(over: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return { kind: 'random', vcpus: 2, readRate: 4000, dirtyRate: 1000, hotFraction: 0.1, hotShare: 0.9, seed: 7, ...over };
}


/** mulberry32, as the guest draws its numbers: the reference for "the stream from before threads". */
function mulberry32(a: number): [number, number] {
  a = (a + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, a];
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('one thread per vCPU is the guest from before threads', () => {
  it('each vCPU makes exactly the random accesses its seed gave before threads existed', () => {
    const s = spec({ vcpus: 3, seed: 11 });
    const pages = 4096;
    const { log } = run(s, pages, 300);
    const writeShare = s.dirtyRate / (s.readRate + s.dirtyRate);
    for (let i = 0; i < s.vcpus; i++) {
      // The pre-threads vCPU: seeded from (seed, vCPU), one number for the page, one for read/write.
      let rng = (s.seed * 0x9e3779b1 + i * 0x85ebca6b) >>> 0;
      const mine = log.filter((a) => a.vcpu === i);
      expect(mine.length).toBeGreaterThan(1000);
      for (const a of mine) {
        let r: number;
        [r, rng] = mulberry32(rng);
        expect(a.page).toBe(Math.floor(r * pages));
        [r, rng] = mulberry32(rng);
        expect(a.write).toBe(r < writeShare);
      }
    }
  });

  it('threadsPerVcpu: 1 and no setting give the same accesses, and the same device state format', () => {
    const a = run(spec(), 4096, 300);
    const b = run(spec({ threadsPerVcpu: 1 }), 4096, 300);
    expect(b.log).toEqual(a.log);
    expect(Object.keys(b.guest.exportState()[0]).sort()).toEqual(['ops', 'pos', 'rng']);
  });

  it('refuses a thread count outside 1 to the maximum, naming what would do', () => {
    for (const t of [0, -1, 1.5, MAX_THREADS_PER_VCPU + 1]) {
      expect(() => new Guest(spec({ threadsPerVcpu: t }), 64, recorder())).toThrow(`expected a whole number from 1 to ${MAX_THREADS_PER_VCPU}`);
    }
  });
});

describe('threads on a vCPU', () => {
  it('share the vCPU: four threads do no more work than one', () => {
    const one = run(spec(), 4096, 1000).log.length;
    const four = run(spec({ threadsPerVcpu: 4 }), 4096, 1000).log.length;
    // 5000 ops/s per vCPU, 2 vCPUs, 1 s: the same within a tick either way.
    expect(Math.abs(four - one)).toBeLessThanOrEqual(2 * 50);
    expect(four).toBeGreaterThan(9500);
    expect(four).toBeLessThanOrEqual(10_000);
  });

  it('each have their own stream, taking turns', () => {
    const { log } = run(spec({ vcpus: 1, threadsPerVcpu: 4, kind: 'sequential' }), 4000, 100);
    // Sequential: thread t of the one vCPU starts at t * 1000; turns go 0, 1, 2, 3, 0, ...
    expect(log.slice(0, 8).map((a) => a.page)).toEqual([1, 1001, 2001, 3001, 2, 1002, 2002, 3002]);
  });

  it('one thread blocked: the vCPU runs the others at about its full rate; it is not a stall', () => {
    let blockedPage = -1;
    const hooks = recorder((a) => {
      if (a.vcpu !== 0) return 'ok';
      if (blockedPage < 0) blockedPage = a.page; // vCPU 0's first access never gets its page
      return a.page === blockedPage ? 'blocked' : 'ok';
    });
    const { guest } = run(spec({ threadsPerVcpu: 4 }), 1 << 20, 1000, hooks);
    const acc = guest.accounting();
    expect(acc.vcpus[0]).toMatchObject({ blocked: false, 'blocked-threads': 1, 'longest-stall-ms': 0 });
    expect(guest.blockedCount).toBe(0);
    expect(guest.stalls()).toEqual({ blocked: 0, totalMs: 0, worstMs: 0, perVcpuMs: [0, 0], allMs: 0 });
    // vCPU 0 lost one access out of ~5000 to the blocked thread, and nothing else.
    expect(acc.vcpus[0].ops).toBeGreaterThanOrEqual(acc.vcpus[1].ops - 2);
    expect(acc.vcpus[0].ops).toBeGreaterThan(4900);
  });

  it('every thread blocked: the vCPU stalls; one page back and it runs again, at its full rate', () => {
    // vCPU 0's first four accesses (one per thread) miss.
    const missing = new Set<number>();
    let fresh = 0;
    const hooks = recorder((a) => {
      if (a.vcpu !== 0) return 'ok';
      if (fresh++ < 4) missing.add(a.page);
      return missing.has(a.page) ? 'blocked' : 'ok';
    });
    const g = new Guest(spec({ threadsPerVcpu: 4 }), 1 << 20, hooks);
    g.start();
    vi.advanceTimersByTime(500);
    const v0 = () => hooks.log.filter((a) => a.vcpu === 0);
    expect(v0()).toHaveLength(4); // each thread tried once, then all were blocked
    let acc = g.accounting();
    expect(acc.vcpus[0]).toMatchObject({ blocked: true, 'blocked-threads': 4, ops: 0 });
    expect(acc.vcpus[0]['longest-stall-ms']).toBeGreaterThanOrEqual(480);
    expect(g.blockedCount).toBe(1);
    expect(g.stalls().blocked).toBe(1);
    expect(acc.vcpus[1].ops).toBeGreaterThan(2000); // the other vCPU never noticed

    // The third thread's page arrives: only that thread goes on, and the stall ends.
    const page = v0()[2].page;
    missing.delete(page);
    g.unblock(0, page);
    acc = g.accounting();
    expect(acc.vcpus[0]).toMatchObject({ blocked: false, 'blocked-threads': 3, ops: 1 });
    const stalled = g.stalls().totalMs;
    expect(stalled).toBeGreaterThanOrEqual(480);
    vi.advanceTimersByTime(500);
    g.stop();
    acc = g.accounting();
    // One runnable thread gets the whole vCPU: about as much work as the other vCPU did meanwhile.
    expect(acc.vcpus[0].ops).toBeGreaterThan(2400);
    expect(acc.vcpus[0]['blocked-threads']).toBe(3);
    expect(g.stalls().totalMs).toBe(stalled); // no stall since
  });

  it("counts the time every vCPU was stalled at once apart from each vCPU's own (QEMU's postcopy-blocktime and postcopy-vcpu-blocktime)", () => {
    // Each vCPU's first access misses: both stall at once on the first tick.
    const missing = new Set<number>();
    const seen = new Set<number>();
    const hooks = recorder((a) => {
      if (!seen.has(a.vcpu)) {
        seen.add(a.vcpu);
        missing.add(a.page);
      }
      return missing.has(a.page) ? 'blocked' : 'ok';
    });
    const g = new Guest(spec(), 1 << 20, hooks);
    g.start();
    vi.advanceTimersByTime(300);
    const first = (vcpu: number) => hooks.log.find((a) => a.vcpu === vcpu)!.page;
    // vCPU 1 runs again: the overlap ends; vCPU 0 stays stalled 200 ms more.
    missing.delete(first(1));
    g.unblock(1, first(1));
    vi.advanceTimersByTime(200);
    missing.delete(first(0));
    g.unblock(0, first(0));
    g.stop();
    const s = g.stalls();
    expect(s.allMs).toBeGreaterThanOrEqual(270);
    expect(s.allMs).toBeLessThanOrEqual(300);
    expect(s.perVcpuMs[0]).toBeCloseTo(s.perVcpuMs[1]! + 200, 0);
    expect(s.totalMs).toBeCloseTo(s.perVcpuMs[0]! + s.perVcpuMs[1]!, 6);
  });

  it('throttling and the dirty limit hold per vCPU, whatever its threads', () => {
    const free = run(spec({ threadsPerVcpu: 4 }), 4096, 1000).log.length;
    const hooks = recorder();
    const t = new Guest(spec({ threadsPerVcpu: 4 }), 4096, hooks);
    t.setThrottle(75);
    t.start();
    vi.advanceTimersByTime(1000);
    t.stop();
    expect(hooks.log.length).toBeLessThanOrEqual(free / 4 + 2 * 50);
    expect(hooks.log.length).toBeGreaterThan(free / 4 - 2 * 50);
    const dl = recorder();
    const d = new Guest(spec({ threadsPerVcpu: 4, readRate: 0, dirtyRate: 5000 }), 4096, dl);
    d.start();
    d.setDirtyLimit({ pagesPerSec: 100, periodMs: 1000 });
    vi.advanceTimersByTime(999);
    d.stop();
    for (let v = 0; v < 2; v++) expect(dl.log.filter((a) => a.vcpu === v && a.write).length).toBeLessThanOrEqual(100);
  });
});

describe('progress with threads against one thread, under the same faults', () => {
  /**
   * The faults: the vCPU's n-th fresh access (whichever thread makes it) misses when `pattern[n]`
   * says so, and its page arrives `delayMs` later. With one thread the vCPU waits for each; with
   * T it goes on with another thread and stalls only when all T wait, and each of those waits
   * began no later than the one-thread vCPU's same wait, so access n is never later with T
   * threads than with one: progress with T is never behind.
   */
  function faulty(T: number, pattern: boolean[], delayMs: number): Guest {
    let n = 0;
    let retrying = false;
    const g: Guest = new Guest(spec({ vcpus: 1, threadsPerVcpu: T }), 1 << 20, {
      access(vcpu, page) {
        if (retrying) return 'ok';
        if (!pattern[n++ % pattern.length]) return 'ok';
        setTimeout(() => {
          retrying = true;
          g.unblock(vcpu, page);
          retrying = false;
        }, delayMs);
        return 'blocked';
      },
    });
    return g;
  }

  it('T threads are never behind one thread', () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 30 }).map((n) => n * 7),
        fc.integer({ min: 2, max: 8 }),
        (pattern, delayMs, T) => {
          const one = faulty(1, pattern, delayMs);
          const many = faulty(T, pattern, delayMs);
          one.start();
          many.start();
          for (let t = 0; t < 60; t++) {
            vi.advanceTimersByTime(10);
            expect(many.progress).toBeGreaterThanOrEqual(one.progress);
          }
          // A miss early in the first tick costs the one-thread vCPU the rest of that tick's
          // work; another thread does it, so T threads end strictly ahead.
          if (pattern.slice(0, 10).some(Boolean)) expect(many.progress).toBeGreaterThan(one.progress);
          one.stop();
          many.stop();
          vi.clearAllTimers();
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('the threads cross at switchover as device state', () => {
  it('the imported guest continues every thread exactly where it left off', () => {
    const s = spec({ threadsPerVcpu: 3, vcpus: 2 });
    const whole = run(s, 4096, 600).log;
    const first = run(s, 4096, 300);
    const hooks = recorder();
    const cont = new Guest(s, 4096, hooks);
    cont.importState(JSON.parse(JSON.stringify(first.guest.exportState())));
    expect(cont.progress).toBe(first.guest.progress);
    cont.start();
    vi.advanceTimersByTime(300);
    cont.stop();
    for (let v = 0; v < s.vcpus; v++) {
      const expected = whole.filter((x) => x.vcpu === v);
      const got = [...first.log, ...hooks.log].filter((x) => x.vcpu === v);
      const n = Math.min(expected.length, got.length);
      expect(n).toBeGreaterThan(1000);
      expect(got.slice(0, n)).toEqual(expected.slice(0, n));
    }
  });

  it('the largest guest fits one device state frame, and the decoder gives it back whole', () => {
    const s = spec({ vcpus: 64, threadsPerVcpu: MAX_THREADS_PER_VCPU });
    const { guest } = run(s, 1 << 20, 50);
    const state = guest.exportState();
    const got: MainMessage[] = [];
    new MainStreamDecoder(4096, 1 << 20, (m) => got.push(m)).push(encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: state }));
    expect(got).toHaveLength(1);
    const m = got[0];
    expect(m.type).toBe('postcopy-run');
    const back = new Guest(s, 1 << 20, recorder());
    back.importState(m.type === 'postcopy-run' ? m.device.vcpus : null);
    expect(back.exportState()).toEqual(state);
  });

  it('between thread counts: thread 0 carries both ways, other threads as far as both have them', () => {
    const four = run(spec({ threadsPerVcpu: 4 }), 4096, 100).guest.exportState();
    const one = new Guest(spec(), 4096, recorder());
    one.importState(four);
    expect(one.exportState()).toEqual(four.map(({ rng, pos, ops }) => ({ rng, pos, ops })));
    const two = new Guest(spec({ threadsPerVcpu: 2 }), 4096, recorder());
    two.importState(four);
    expect(two.exportState()[0].threads).toEqual(four[0].threads!.slice(0, 2));
    const back = new Guest(spec({ threadsPerVcpu: 4 }), 4096, recorder());
    const fresh = back.exportState();
    back.importState(one.exportState());
    expect(back.exportState()[0].threads![0]).toEqual({ rng: four[0].rng, pos: four[0].pos });
    expect(back.exportState()[0].threads!.slice(1)).toEqual(fresh[0].threads!.slice(1));
    // Junk in the threads list is ignored, as junk anywhere in the device state is.
    back.importState([{ threads: [null, 'x', { rng: 1.5, pos: 'a' }], next: -1 }]);
    expect(back.exportState()[0].threads!.slice(1)).toEqual(fresh[0].threads!.slice(1));
  });
});
