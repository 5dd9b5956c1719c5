/**
 * The window and the "cannot be complete" report, as properties over many random runs: a
 * stream of page frames (pages sent in postcopy, some of them more than once, some never; other
 * frames between), the link failing at a random frame, an on-failure spill with a random
 * window. The file is really written and read back (format.ts), then assessed against what the
 * destination lacks (assess.ts), as the recovery source does.
 *
 * - A window at least the bytes in flight (from the first frame lost to the end of the stream)
 *   always completes: every page the destination lacks is in the file, with its frozen content.
 * - Any window: the report names exactly the pages the file lacks, and the window it says would
 *   have been enough is enough, and one byte less is not (when pages are missing).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Bitmap } from '../../../src/sim/bitmap.js';
import { checkPage } from '../../../src/sim/content.js';
import { encodePages, pageFrameBytes } from '../../../src/sim/wire.js';
import { RecoverySpill } from '../../../src/recovery/spill.js';
import { RecoveryFile } from '../../../src/recovery/format.js';
import { assess, NAMED_PAGES, refusalText } from '../../../src/recovery/assess.js';

const PS = 4096;
const FB = pageFrameBytes(PS);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recwin-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Scenario {
  pageCount: number;
  /** Batches of page sends, each followed by `gap` bytes of other frames. */
  batches: Array<{ pages: number[]; gap: number }>;
  /** The link fails at this frame (0-based over all page frames): it and everything after are lost. */
  cutFrame: number;
  windowBytes: number;
}

const scenario = fc
  .integer({ min: 8, max: 80 })
  .chain((pageCount) =>
    fc.record({
      pageCount: fc.constant(pageCount),
      batches: fc.array(fc.record({ pages: fc.array(fc.integer({ min: 0, max: pageCount - 1 }), { minLength: 1, maxLength: 6 }), gap: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 * FB })) }), {
        minLength: 1,
        maxLength: 30,
      }),
      cutFrame: fc.nat(),
      windowBytes: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 40 * FB })),
    }),
  );

let run = 0;

/** Plays the scenario through a real spill and file; what the destination lacks and what the file says. */
async function play(s: Scenario, windowBytes = s.windowBytes) {
  const versions = new Uint32Array(s.pageCount).map((_, i) => (i * 7 + 3) % 5);
  const spill = new RecoverySpill({ pageSize: PS, pageCount: s.pageCount, versions, log: () => {} }, 'on-failure', windowBytes, dir, `r${run++}`);
  const frames: Array<{ page: number; start: number }> = [];
  let stream = 100; // the header, the discard set, the device state
  for (const b of s.batches) {
    spill.noteSent(b.pages, encodePages(b.pages, versions, PS), stream);
    b.pages.forEach((page, k) => frames.push({ page, start: stream + k * FB }));
    stream += b.pages.length * FB + b.gap;
  }
  const cut = s.cutFrame % (frames.length + 1);
  // The destination placed every page whose frame arrived before the cut.
  const present = new Bitmap(s.pageCount);
  frames.slice(0, cut).forEach((f) => present.set(f.page));
  const sent = new Bitmap(s.pageCount);
  frames.forEach((f) => sent.set(f.page));
  const unsent = new Bitmap(s.pageCount);
  for (let i = 0; i < s.pageCount; i++) if (!sent.get(i)) unsent.set(i);
  spill.paused(unsent, stream);
  for (let k = 0; spill.report().state === 'writing'; k++) await new Promise((r) => setTimeout(r, 2));
  expect(spill.report().state).toBe('written');
  const rf = RecoveryFile.open(spill.file);
  const lacks: number[] = [];
  for (let i = 0; i < s.pageCount; i++) if (!present.get(i)) lacks.push(i);
  const a = assess({ pageSize: PS, pageCount: s.pageCount, held: rf.held, positions: rf.positions, streamBytes: rf.header.streamBytes, windowBytes }, lacks);
  // The bytes in flight as the link saw them: from the first frame lost to the end of the stream.
  const inFlight = cut < frames.length ? stream - frames[cut].start : 0;
  const expectedMissing = lacks.filter((p) => !rf.held.get(p));
  // Every page the file holds is the frozen content, checksums checked.
  const b = Buffer.alloc(PS);
  for (const p of lacks) {
    if (!rf.held.get(p)) continue;
    rf.readPage(p, b, 0);
    expect(checkPage(b, 0, p, versions[p], PS)).toBe(true);
  }
  rf.close();
  fs.rmSync(spill.file, { force: true });
  return { a, inFlight, stream, expectedMissing };
}

describe('recovery file window (property)', () => {
  it('a window at least the bytes in flight always completes; the report names exactly the missing pages and a window that is enough', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { a, inFlight, stream, expectedMissing } = await play(s);
        expect(a.streamBytes).toBe(stream);
        // Measured, and never more than what the link really had in flight.
        expect(a.inFlightBytes).not.toBeNull();
        expect(a.inFlightBytes!).toBeLessThanOrEqual(inFlight);
        if (s.windowBytes >= inFlight) expect(a.missing).toBe(0);
        expect(a.missing).toBe(expectedMissing.length);
        expect(a.missingFirst).toEqual(expectedMissing.slice(0, NAMED_PAGES));
        // Complete exactly when the window reached the measured figure.
        expect(a.missing === 0).toBe(s.windowBytes >= a.windowNeededBytes!);
        if (a.missing > 0) {
          const text = refusalText(a, 'f', s.windowBytes, 'lacks');
          expect(text.startsWith('recovery cannot be complete: ')).toBe(true);
          expect(text).toContain(`${a.inFlightBytes} bytes were in flight`);
          expect(text).toContain(`a window of ${a.windowNeededBytes} bytes would have been enough`);
          // The window it names is enough; one byte less is not.
          expect((await play(s, a.windowNeededBytes!)).a.missing).toBe(0);
          expect((await play(s, a.windowNeededBytes! - 1)).a.missing).toBeGreaterThan(0);
        }
      }),
      { numRuns: 80 },
    );
  }, 120_000);

  it('walk: the pages asked that the file lacks are named, with the bytes in flight measured from them', async () => {
    // Pages 0..9 sent in order, the link failing at page 6's frame; window 2 frames: 8 and 9 kept.
    const s: Scenario = { pageCount: 12, batches: [{ pages: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], gap: 0 }], cutFrame: 6, windowBytes: 2 * FB };
    const { a } = await play(s);
    expect(a.missingFirst).toEqual([6, 7]);
    expect(a.inFlightBytes).toBe(4 * FB);
    const held = { get: (i: number) => i >= 8 };
    const positions = new Float64Array(12).map((_, i) => (i < 10 ? 100 + i * FB + 1 : 0));
    const asked = assess({ pageSize: PS, pageCount: 12, held, positions, streamBytes: 100 + 10 * FB, windowBytes: 2 * FB }, [7]);
    expect(asked).toMatchObject({ missing: 1, missingFirst: [7], inFlightBytes: 3 * FB, windowNeededBytes: 3 * FB });
    expect(refusalText(asked, 'f', 2 * FB, 'asked')).toMatch(/^recovery cannot be complete: the destination asked for page 7, which the recovery file f does not hold; 12327 bytes were in flight .* for the pages asked so far$/);
  });
});
