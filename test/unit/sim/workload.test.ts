/**
 * The Guest workload, on a fake clock: deterministic for a seed (same accesses in the same
 * order), the vCPU state carries across export/import as it does across switchover, and a
 * vCPU blocked on a missing page stops alone while the others carry on.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Guest, type WorkloadSpec } from '../../../src/sim/workload.js';
import { recorder, run } from './guest-harness.js';

function spec(over: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return { kind: 'random', vcpus: 3, readRate: 2000, dirtyRate: 500, hotFraction: 0.1, hotShare: 0.9, seed: 7, ...over };
}


beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Guest workload', () => {
  for (const kind of ['random', 'sequential', 'hotset'] as const) {
    it(`${kind}: the same seed gives the same accesses in the same order`, () => {
      const a = run(spec({ kind }), 4096, 500);
      const b = run(spec({ kind }), 4096, 500);
      expect(a.log.length).toBeGreaterThan(500);
      expect(b.log).toEqual(a.log);
      expect(a.guest.progress).toBe(a.log.length);
      for (const x of a.log) {
        expect(x.page).toBeGreaterThanOrEqual(0);
        expect(x.page).toBeLessThan(4096);
        expect(Number.isInteger(x.page)).toBe(true);
      }
    });
  }

  it('a different seed gives different accesses (random and hotset)', () => {
    for (const kind of ['random', 'hotset'] as const) {
      const a = run(spec({ kind, seed: 1 }), 4096, 300);
      const b = run(spec({ kind, seed: 2 }), 4096, 300);
      expect(b.log.map((x) => x.page)).not.toEqual(a.log.map((x) => x.page));
    }
  });

  it('runs at the set rate, with the set share of writes', () => {
    const s = spec({ vcpus: 2, readRate: 3000, dirtyRate: 1000 });
    const { log } = run(s, 1 << 16, 2000);
    // 4000 ops/s per vCPU for 2 s on 2 vCPUs, within a tick's worth.
    expect(log.length).toBeGreaterThan(15_000);
    expect(log.length).toBeLessThanOrEqual(16_000);
    const writes = log.filter((x) => x.write).length / log.length;
    expect(writes).toBeGreaterThan(0.2);
    expect(writes).toBeLessThan(0.3);
  });

  it('a read-only workload never writes; a zero rate never starts', () => {
    expect(run(spec({ dirtyRate: 0 }), 1024, 300).log.every((x) => !x.write)).toBe(true);
    const idle = run(spec({ readRate: 0, dirtyRate: 0 }), 1024, 300);
    expect(idle.log).toEqual([]);
    expect(idle.guest.running).toBe(false);
  });

  it('hotset: most accesses go to the hot fraction of memory', () => {
    const pages = 10_000;
    const { log } = run(spec({ kind: 'hotset', hotFraction: 0.1, hotShare: 0.9 }), pages, 1000);
    const hot = log.filter((x) => x.page < pages * 0.1).length / log.length;
    expect(hot).toBeGreaterThan(0.85);
  });

  it('sequential: each vCPU walks its own stretch of memory in order', () => {
    const pages = 900;
    const { log } = run(spec({ kind: 'sequential', vcpus: 3 }), pages, 200);
    for (let v = 0; v < 3; v++) {
      const mine = log.filter((x) => x.vcpu === v).map((x) => x.page);
      const start = (v * pages) / 3;
      mine.forEach((p, i) => expect(p).toBe((start + i + 1) % pages));
    }
  });

  it('export/import carries the vCPU state: the imported guest continues exactly where the first left off', () => {
    const s = spec({ kind: 'random' });
    const whole = run(s, 4096, 600).log;
    const first = run(s, 4096, 300);
    const second = new Guest(s, 4096, recorder());
    second.importState(JSON.parse(JSON.stringify(first.guest.exportState())));
    expect(second.progress).toBe(first.guest.progress);
    const hooks = recorder();
    const cont = new Guest(s, 4096, hooks);
    cont.importState(first.guest.exportState());
    cont.start();
    vi.advanceTimersByTime(300);
    cont.stop();
    // Per vCPU, the accesses continue the same sequence (interleaving across vCPUs may differ
    // at the tick boundary, the order within each vCPU may not).
    for (let v = 0; v < s.vcpus; v++) {
      const expected = whole.filter((x) => x.vcpu === v);
      const got = [...first.log, ...hooks.log].filter((x) => x.vcpu === v);
      const n = Math.min(expected.length, got.length);
      expect(n).toBeGreaterThan(100);
      expect(got.slice(0, n)).toEqual(expected.slice(0, n));
    }
  });

  it('importState ignores junk and keeps positions inside memory', () => {
    const g = new Guest(spec(), 100, recorder());
    const before = g.exportState();
    g.importState('nonsense');
    g.importState(null);
    g.importState([null, 'x', { rng: 1.5, pos: 'a', ops: -0.5 }]);
    expect(g.exportState()).toEqual(before);
    g.importState([{ rng: 5, pos: 12345, ops: 9 }]);
    expect(g.exportState()[0]).toEqual({ rng: 5, pos: 12345 % 100, ops: 9 });
  });

  it('a blocked vCPU stops alone; the others go on; unblock retries the same access', () => {
    let blockPage = -1;
    let stillMissing = true;
    const hooks = recorder((a) => {
      if (a.vcpu !== 1) return 'ok';
      if (blockPage < 0) blockPage = a.page; // vCPU 1's first access hits a missing page
      return a.page === blockPage && stillMissing ? 'blocked' : 'ok';
    });
    const g = new Guest(spec({ vcpus: 3 }), 4096, hooks);
    g.start();
    vi.advanceTimersByTime(500);
    expect(g.blockedCount).toBe(1);
    const v1 = hooks.log.filter((x) => x.vcpu === 1);
    expect(v1).toHaveLength(1); // tried once, then stopped: no more accesses from vCPU 1
    const others = hooks.log.filter((x) => x.vcpu !== 1).length;
    expect(others).toBeGreaterThan(1000);
    expect(g.progress).toBe(others); // the blocked access is not counted as done
    const frozen = g.exportState()[1];

    vi.advanceTimersByTime(500);
    expect(hooks.log.filter((x) => x.vcpu === 1)).toHaveLength(1);
    expect(g.exportState()[1]).toEqual(frozen);
    expect(hooks.log.filter((x) => x.vcpu !== 1).length).toBeGreaterThan(others + 1000);

    // unblock while the page is still missing: the retry blocks again, nothing moves.
    g.unblock(1);
    expect(g.blockedCount).toBe(1);
    expect(hooks.log.filter((x) => x.vcpu === 1)).toHaveLength(2);

    // The page arrives: the same access is retried and succeeds, then vCPU 1 runs on.
    stillMissing = false;
    const progress = g.progress;
    g.unblock(1);
    expect(g.blockedCount).toBe(0);
    const retried = hooks.log.filter((x) => x.vcpu === 1);
    expect(retried[2]).toEqual(retried[0]);
    expect(g.progress).toBe(progress + 1);
    vi.advanceTimersByTime(200);
    expect(hooks.log.filter((x) => x.vcpu === 1).length).toBeGreaterThan(100);
    g.stop();
    // unblocking a vCPU that is not blocked (or does not exist) does nothing.
    const n = hooks.log.length;
    g.unblock(0);
    g.unblock(99);
    expect(hooks.log.length).toBe(n);
  });

  it('every vCPU blocked: progress stops, ops-per-second falls to zero', () => {
    const g = new Guest(spec({ vcpus: 2 }), 4096, recorder(() => 'blocked'));
    g.start();
    vi.advanceTimersByTime(100);
    expect(g.blockedCount).toBe(2);
    expect(g.progress).toBe(0);
    g.opsPerSecond(performance.now());
    vi.advanceTimersByTime(1500);
    expect(g.opsPerSecond(performance.now())).toBe(0);
    g.stop();
  });

  it('stop halts every vCPU; start again resumes', () => {
    const hooks = recorder();
    const g = new Guest(spec(), 4096, hooks);
    g.start();
    vi.advanceTimersByTime(100);
    g.stop();
    expect(g.running).toBe(false);
    const n = hooks.log.length;
    vi.advanceTimersByTime(1000);
    expect(hooks.log.length).toBe(n);
    g.start();
    vi.advanceTimersByTime(100);
    expect(hooks.log.length).toBeGreaterThan(n);
    g.stop();
  });
});
