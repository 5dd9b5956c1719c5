/** The source's per-migration bookkeeping, without sockets. */
import { expect, it, vi } from 'vitest';
import { SourceMigration } from '../../../src/sim/source-migration.js';
import { Bitmap } from '../../../src/sim/bitmap.js';

it('a new migration has every page to send; sending settles a page, and re-sending counts only after a recovery', () => {
  const m = new SourceMigration(10, 4096);
  expect(m.toSend.count).toBe(10);
  m.noteSent([0, 1], 100, false);
  expect(m.toSend.count).toBe(8);
  expect(m.sentOnce.count).toBe(2);
  expect(m.precopyBytes).toBe(200);
  m.noteSent([0], 100, true);
  expect(m.resent).toBe(0);
  m.recovered = true;
  m.noteSent([1, 2], 100, true);
  expect(m.resent).toBe(1);
  expect(m.postcopyBytes).toBe(300);
  expect(m.normalPages).toBe(5);
});

it('the background push goes in address order from the cursor, wrapping only when asked (postcopy)', () => {
  const m = new SourceMigration(8, 4096);
  m.toSend.clearAll();
  for (const p of [1, 5, 6]) m.toSend.set(p);
  m.cursor = 5;
  expect(m.nextBackgroundPages(10, false)).toEqual([5, 6]);
  m.cursor = 5;
  expect(m.nextBackgroundPages(2, true)).toEqual([5, 6]);
  // Past the end: postcopy wraps to what is left anywhere (page 1, then 5 and 6 again: still to send).
  expect(m.nextBackgroundPages(3, true)).toEqual([1, 5, 6]);
});

it('a batch that wraps stops before the pages it already holds (they are still to send until sent)', () => {
  const m = new SourceMigration(8, 4096);
  m.toSend.clearAll();
  for (const p of [1, 5, 6]) m.toSend.set(p);
  m.cursor = 5;
  expect(m.nextBackgroundPages(16, true)).toEqual([5, 6, 1]);
  m.cursor = 0;
  expect(m.nextBackgroundPages(16, true)).toEqual([1, 5, 6]);
  m.cursor = 6;
  expect(m.nextBackgroundPages(16, true)).toEqual([6, 1, 5]);
  // The sender's one reused array: refilled, and cut to the batch, each time.
  const batch = [9, 9, 9, 9, 9];
  m.cursor = 5;
  expect(m.nextBackgroundPages(2, true, batch)).toBe(batch);
  expect(batch).toEqual([5, 6]);
  m.cursor = 0;
  expect(m.nextBackgroundPages(16, true, batch)).toEqual([1, 5, 6]);
});

it('the discard set is the to-send set as ranges', () => {
  const m = new SourceMigration(10, 4096);
  m.toSend.clearAll();
  for (const p of [0, 1, 2, 5, 9]) m.toSend.set(p);
  expect(m.toSendRanges()).toEqual([
    [0, 3],
    [5, 1],
    [9, 1],
  ]);
});

it('remaining pages: precopy counts what was dirtied since the last sync, postcopy only what is still to send', () => {
  const m = new SourceMigration(10, 4096);
  const dirty = new Bitmap(10);
  m.toSend.clearAll();
  m.toSend.set(3);
  dirty.set(4);
  expect(m.remainingPages('active', dirty)).toBe(2);
  expect(m.remainingPages('postcopy-active', dirty)).toBe(1);
  expect(m.remainingPages('completed', dirty)).toBe(0);
});

it('the bandwidth estimate is measured over windows of at least 100 ms, so a burst into the socket buffers is not a fast link', () => {
  vi.useFakeTimers({ toFake: ['performance'] });
  try {
    const m = new SourceMigration(4096, 4096);
    // 400 pages in 1 ms (what a socket buffer swallows): no window has closed, so no estimate
    // and no switchover threshold yet. A per-pass estimate would have said 1.6 GB/s.
    vi.advanceTimersByTime(1);
    for (let p = 0; p < 400; p++) m.noteSent([p], 4096, false);
    expect(m.bandwidthEstimate).toBe(0);
    // The link then carries 4 KiB per ms until the window is 100 ms old: the estimate is the window's.
    for (let ms = 2; ms <= 100; ms++) {
      vi.advanceTimersByTime(1);
      m.noteSent([400 + ms], 4096, false);
    }
    expect(m.bandwidthEstimate).toBeCloseTo((499 * 4096) / 100, 0);
    // A tiny pass right after (5 pages in 1 ms) leaves it alone.
    vi.advanceTimersByTime(1);
    for (let p = 600; p < 605; p++) m.noteSent([p], 4096, false);
    expect(m.bandwidthEstimate).toBeCloseTo((499 * 4096) / 100, 0);
  } finally {
    vi.useRealTimers();
  }
});
