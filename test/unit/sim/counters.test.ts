/**
 * The counters' definitions (PagesInfo in src/types.ts), each checked on the sim's own
 * bookkeeping without sockets, on a fake clock: sent, received, re-sent, duplicates discarded,
 * blocked vCPUs, blocktime (vCPU·ms, and the worst vCPU), wire bytes, remaining, and the
 * guest's rate (smoothed, not counting the ops carried over at switchover).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SourceMigration } from '../../../src/sim/source-migration.js';
import { IncomingMigration, type IncomingHost, type Waiting } from '../../../src/sim/incoming-migration.js';
import { Bitmap } from '../../../src/sim/bitmap.js';
import { makePage } from '../../../src/sim/content.js';
import { Guest, RATE_WINDOW_MS } from '../../../src/sim/workload.js';
import { summaryCounters, summaryCountersLine, summaryRows } from '../../../src/lab/summary.js';
import type { PagesInfo, RunSummary, Snapshot } from '../../../src/types.js';

const PAGE = 4096;
const guestInfo: PagesInfo['guest'] = { progress: 0, 'ops-per-second': 0, 'window-ms': 0 };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

function incoming(pages = 8): { m: IncomingMigration } {
  const host: IncomingHost = {
    versions: new Uint32Array(pages),
    request(_page: number, w: Waiting) {
      w.sentAt = performance.now();
    },
    unblock: () => {},
    vcpuStalls: () => ({ blocked: 0, totalMs: 0, worstMs: 0, perVcpuMs: [], allMs: 0 }),
    walkWindow: () => 1,
    walkRate: () => 0,
    log: () => {},
  };
  return { m: new IncomingMigration(pages, PAGE, host) };
}

/**
 * An incoming migration with a real guest on it, wired as the destination wires them: an access
 * to a missing page asks for it, a placed page unblocks who waited, and blocktime is the guest's.
 */
function incomingWithGuest(pages: number, vcpus: number): { m: IncomingMigration; guest: Guest } {
  const spec = { kind: 'sequential' as const, vcpus, readRate: 1000, dirtyRate: 0, hotFraction: 0.1, hotShare: 0.9, seed: 1 };
  const guest = new Guest(spec, pages, {
    access(vcpu, page) {
      if (m.present.get(page)) return 'ok';
      m.need(page, { vcpu });
      return 'blocked';
    },
  });
  const host: IncomingHost = {
    versions: new Uint32Array(pages),
    request(_page: number, w: Waiting) {
      w.sentAt = performance.now();
    },
    unblock: (v, page) => guest.unblock(v, page),
    vcpuStalls: () => guest.stalls(),
    walkWindow: () => 1,
    walkRate: () => 0,
    log: () => {},
  };
  const m = new IncomingMigration(pages, PAGE, host);
  return { m, guest };
}

const place = (m: IncomingMigration, index: number, version = 0) => m.place(index, version, makePage(index, version, PAGE), 0);

describe('source counters', () => {
  it('sent counts each page once however often it goes; received is not the source\'s to know', () => {
    const m = new SourceMigration(10, PAGE);
    m.noteSent([0, 1, 2], PAGE + 8, false);
    m.noteSent([0, 1], PAGE + 8, false); // dirtied and sent again in the next precopy pass
    const p = m.queryPages('active', new Bitmap(10), guestInfo);
    expect(p.sent).toBe(3);
    expect(p.received).toBe(0);
    // Dirty-page re-sends in precopy are not "re-sent": that word is for after a recovery.
    expect(p.resent).toBe(0);
  });

  it('re-sent counts pages sent again after a recovery, and not first sendings', () => {
    const m = new SourceMigration(10, PAGE);
    m.noteSent([0, 1], PAGE + 8, true);
    m.recovered = true;
    m.noteSent([1, 5], PAGE + 8, true);
    const p = m.queryPages('postcopy-active', new Bitmap(10), guestInfo);
    expect(p.resent).toBe(1);
    expect(p.sent).toBe(3);
  });

  it('re-sent counts only content sent before: a page dirtied since and sent anew is a new copy', () => {
    const m = new SourceMigration(10, PAGE);
    m.noteSent([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], PAGE + 8, false); // one full precopy pass
    const dirty = new Bitmap(10);
    dirty.set(3);
    dirty.set(4);
    m.takeDirty(dirty, 'add'); // switchover: 3 and 4 were written since they were sent
    expect(dirty.count).toBe(0);
    m.noteSent([3], PAGE + 8, true); // sent in postcopy, then lost in flight with the link
    m.recovered = true; // the destination lacks 3 and 4: both go (again)
    m.noteSent([3, 4], PAGE + 8, true);
    // Only page 3's content had been sent before; page 4's current content is a first copy.
    expect(m.queryPages('postcopy-active', new Bitmap(10), guestInfo).resent).toBe(1);
  });

  it('wire bytes are the bytes sent (query-migrate\'s transferred); remaining is what is still to send', () => {
    const m = new SourceMigration(10, PAGE);
    m.transferred = 12_345;
    m.noteSent([0, 1, 2, 3], PAGE + 8, false);
    const dirty = new Bitmap(10);
    const p = m.queryPages('postcopy-active', dirty, guestInfo);
    expect(p['wire-bytes']).toBe(12_345);
    expect(p.missing).toBe(6);
    expect(m.queryPages('completed', dirty, guestInfo).missing).toBe(0);
  });

  it('the throughput is smoothed over about two seconds', () => {
    const m = new SourceMigration(10, PAGE);
    const t0 = performance.now();
    m.sampleRates(t0);
    m.transferred = 1_000_000; // a burst in one poll...
    m.sampleRates(t0 + 200);
    m.sampleRates(t0 + 1800); // ...then nothing for 1.6 s
    const mbps = m.queryMigrate('active', new Bitmap(10), undefined).ram as { mbps: number };
    // Over the 1.8 s window: 1 MB -> ~4.4 Mbit/s, not 0 (a one-second window would have dropped the burst).
    expect(mbps.mbps).toBeCloseTo((1_000_000 * 8) / 1.8 / 1e6, 1);
  });
});

describe('destination counters', () => {
  it('received counts pages placed; sent and re-sent are the source\'s (0 here)', () => {
    const { m } = incoming();
    place(m, 0);
    place(m, 3);
    const p = m.queryPages(guestInfo);
    expect(p.received).toBe(2);
    expect(p.sent).toBe(0);
    expect(p.resent).toBe(0);
  });

  it('in precopy a newer copy replaces the page (no duplicate); in postcopy an arrival for a placed page is discarded', () => {
    const { m } = incoming();
    place(m, 0, 0);
    place(m, 0, 1);
    expect(m.queryPages(guestInfo)['duplicates-discarded']).toBe(0);
    m.postcopy = true;
    place(m, 0, 2);
    const p = m.queryPages(guestInfo);
    expect(p['duplicates-discarded']).toBe(1);
    expect(p.received).toBe(1);
  });

  it('blocked vCPUs are those blocked now; blocktime sums over vCPUs (vCPU·ms) with the worst vCPU beside it', () => {
    // Sequential over 2 pages: vCPUs 0 and 1 start at page 0 and touch page 1; vCPU 2 touches page 0.
    const { m, guest } = incomingWithGuest(2, 3);
    m.postcopy = true;
    guest.start();
    vi.advanceTimersByTime(10); // one tick: each vCPU's first access blocks
    guest.stop(); // no further accesses once unblocked, so the numbers are exact
    expect(m.waiting.get(1)?.vcpus).toEqual([0, 1]); // two vCPUs wait on the same page
    expect(m.waiting.get(0)?.vcpus).toEqual([2]);
    expect(m.queryPages(guestInfo)['blocked-vcpus']).toBe(3);
    vi.advanceTimersByTime(1000);
    place(m, 1);
    expect(guest.accounting().vcpus.map((v) => v.blocked)).toEqual([false, false, true]);
    let p = m.queryPages(guestInfo);
    expect(p['blocked-vcpus']).toBe(1);
    // vCPUs 0 and 1 blocked 1 s each, vCPU 2 still blocked for 1 s so far: 3 vCPU·s.
    expect(p['blocktime-ms']).toBe(3000);
    expect(p['blocktime-worst-vcpu-ms']).toBe(1000);
    vi.advanceTimersByTime(2000);
    place(m, 0);
    p = m.queryPages(guestInfo);
    expect(p['blocked-vcpus']).toBe(0);
    expect(p['blocktime-ms']).toBe(5000);
    // More vCPU·s than wall-clock seconds passed (3 s): that is why the unit says vCPU·s.
    expect(p['blocktime-worst-vcpu-ms']).toBe(3000);
  });

  it('wire bytes are the bytes received on the migration connection(s)', () => {
    const { m } = incoming();
    m.wireBytes += 5000;
    expect(m.queryPages(guestInfo)['wire-bytes']).toBe(5000);
  });
});

describe('guest rate', () => {
  const spec = { kind: 'random' as const, vcpus: 2, readRate: 4000, dirtyRate: 1000, hotFraction: 0.1, hotShare: 0.9, seed: 1 };

  it('is unknown (window 0) before it has been measured, then covers about two seconds', () => {
    const g = new Guest(spec, 1024, { access: () => 'ok' });
    expect(g.info()['window-ms']).toBe(0);
    g.start();
    vi.advanceTimersByTime(500);
    const early = g.info();
    // Measured from the start, not from the first question: 0.5 s, at the set rate.
    expect(early['window-ms']).toBe(500);
    expect(early['ops-per-second']).toBeGreaterThan(9000);
    for (let i = 0; i < 20; i++) {
      vi.advanceTimersByTime(200);
      g.info();
    }
    const later = g.info();
    expect(later['window-ms']).toBeGreaterThanOrEqual(RATE_WINDOW_MS);
    expect(later['window-ms']).toBeLessThan(RATE_WINDOW_MS + 300);
    expect(later['ops-per-second']).toBeGreaterThan(9000);
    expect(later['ops-per-second']).toBeLessThan(11000);
    g.stop();
  });

  it('does not count the progress carried over with the device state at switchover', () => {
    const src = new Guest(spec, 1024, { access: () => 'ok' });
    src.start();
    vi.advanceTimersByTime(3000);
    src.stop();
    const dst = new Guest(spec, 1024, { access: () => 'ok' });
    dst.info();
    vi.advanceTimersByTime(100);
    dst.importState(src.exportState());
    dst.start();
    vi.advanceTimersByTime(200);
    const r = dst.info();
    expect(r.progress).toBeGreaterThan(src.progress); // the total carries on...
    expect(r['ops-per-second']).toBeLessThan(11000); // ...but ~30000 imported ops are no spike
    expect(r['ops-per-second']).toBeGreaterThan(9000);
    dst.stop();
  });
});

describe('the summary takes the same fields', () => {
  it('reads each counter from the final snapshot and says it with its unit', () => {
    const pages = (over: Partial<PagesInfo>): PagesInfo =>
      ({ sent: 0, received: 0, resent: 0, 'duplicates-discarded': 0, 'blocktime-ms': 0, 'blocktime-worst-vcpu-ms': 0, recoveries: 0, ...over }) as PagesInfo;
    const snap = {
      source: { pages: pages({ sent: 1000, resent: 15, received: 0 }) },
      destination: { pages: pages({ received: 1000, 'duplicates-discarded': 4, 'blocktime-ms': 60_000, 'blocktime-worst-vcpu-ms': 31_000, recoveries: 2 }) },
    } as Snapshot;
    const c = summaryCounters(snap);
    expect(c).toEqual({ pagesSent: 1000, pagesReceived: 1000, pagesResent: 15, duplicatesDiscarded: 4, blocktimeMs: 60_000, blocktimeWorstVcpuMs: 31_000, recoveries: 2 });
    const sum: RunSummary = { ok: true, labId: 'x', durationMs: 50_000, verified: true, ...c };
    expect(summaryCountersLine(sum)).toBe(
      'pages sent 1000, pages received 1000, pages re-sent 15, duplicates discarded 4, vCPU blocktime 60.0 vCPU·s (worst vCPU 31.0 s), recoveries 2',
    );
    // Under a second, two decimals: 48 ms is not "0.0"; none is "0.0".
    expect(summaryCountersLine({ ...sum, blocktimeMs: 48, blocktimeWorstVcpuMs: 0 })).toContain('vCPU blocktime 0.05 vCPU·s (worst vCPU 0.0 s)');
    // A record written before pagesSent existed: the row is left out, not shown as 0.
    expect(summaryRows({ ok: true, labId: 'x', durationMs: 1, verified: true, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0 }).map((r) => r.label)).not.toContain(
      'pages sent',
    );
  });
  it('a backend without page counters (libvirt): its placeholders are "not reported", not zeros; what it knows stays', () => {
    const base = { ok: true, labId: 'x', durationMs: 1, verified: true, pagesSent: 0, pagesReceived: 15360, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 1 };
    expect(Object.fromEntries(summaryRows({ ...base, blocktimeNotMeasured: true }).map((r) => [r.label, r.value]))['vCPU blocktime']).toMatch(/^not measured \(QEMU measures it with the postcopy-blocktime capability/);
    expect(summaryCounters({ source: { pages: {} }, destination: { pages: { received: 10, 'blocktime-unknown': true } } } as unknown as Snapshot)).toMatchObject({ blocktimeNotMeasured: true });
    expect(summaryCounters({ source: { pages: {} }, destination: { pages: { received: 10, 'blocktime-at-end': true } } } as unknown as Snapshot)).toMatchObject({ blocktimeAtEnd: true });
    expect(Object.fromEntries(summaryRows({ ...base, blocktimeAtEnd: true }).map((r) => [r.label, r.value]))['vCPU blocktime']).toBe('not reported (QEMU reports it only when the migration completes)');
    const qemu = summaryCounters({ source: { pages: { unreported: ['resent'] } }, destination: { pages: { received: 10, unreported: ['requested', 'duplicates-discarded'] } } } as unknown as Snapshot);
    expect(qemu.notReported).toEqual(['pagesResent', 'duplicatesDiscarded']);
    const qemuRows = Object.fromEntries(summaryRows({ ...base, ...qemu }).map((r) => [r.label, r.value]));
    expect(qemuRows).toMatchObject({ 'pages re-sent': 'not reported', 'duplicates discarded': 'not reported', 'pages received': '10' });
    const rows = Object.fromEntries(summaryRows({ ...base, countsNotReported: true }).map((r) => [r.label, r.value]));
    expect(rows).toMatchObject({ 'pages sent': 'not reported', 'pages re-sent': 'not reported', 'duplicates discarded': 'not reported', 'vCPU blocktime': 'not reported', 'pages received': '15360', recoveries: '1' });
    expect(Object.fromEntries(summaryRows(base).map((r) => [r.label, r.value]))['pages sent']).toBe('0');
  });
});

describe('the walker (x-recovery-walk)', () => {
  /** A walking incoming migration whose host answers every request at once, at `rate` requests a second. */
  function walking(pages: number, rate: { value: number }) {
    const requested: number[] = [];
    const host: IncomingHost = {
      versions: new Uint32Array(pages),
      request(page: number, w: Waiting) {
        w.sentAt = performance.now();
        requested.push(page);
        // The source answers at once (a microtask: the walker asks for the next one after).
        queueMicrotask(() => place(m, page));
      },
      unblock: () => {},
      vcpuStalls: () => ({ blocked: 0, totalMs: 0, worstMs: 0, perVcpuMs: [], allMs: 0 }),
      walkWindow: () => 1,
      walkRate: () => rate.value,
      log: () => {},
    };
    const m = new IncomingMigration(pages, PAGE, host);
    m.postcopy = true;
    m.walkMode = true;
    return { m, requested };
  }

  it('x-walk-rate paces the walk to that many requests a second; 0 lets it run, at once', async () => {
    const rate = { value: 10 };
    const { m, requested } = walking(100, rate);
    m.startWalker();
    await vi.advanceTimersByTimeAsync(2000);
    // Ten a second (and the bucket's first slice): nowhere near the 100 pages an unpaced walk asks for at once.
    expect(requested.length).toBeGreaterThanOrEqual(15);
    expect(requested.length).toBeLessThanOrEqual(40);
    expect(m.queryPages(guestInfo).walker.done).toBe(false);
    // The hold released: the walk goes on at once, to its end.
    rate.value = 0;
    m.advanceWalker();
    await vi.advanceTimersByTimeAsync(10);
    expect(requested).toHaveLength(100);
    expect(m.queryPages(guestInfo).walker.done).toBe(true);
  });

  it('a stopped walker leaves no paced wake-up behind', async () => {
    const { m, requested } = walking(100, { value: 5 });
    m.startWalker();
    await vi.advanceTimersByTimeAsync(500);
    const before = requested.length;
    m.stopWalker();
    await vi.advanceTimersByTimeAsync(5000);
    expect(requested).toHaveLength(before);
  });
});

