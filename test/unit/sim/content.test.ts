/**
 * Page content: (index, version) -> bytes is deterministic, and checkPage accepts exactly that
 * page: any flipped byte, a wrong version or a wrong index is rejected. This is what lets the
 * destination refuse a corrupt page and the final verification mean something.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkPage, makePage, PAGE_HEADER_BYTES, pageBuffer, writePage } from '../../../src/sim/content.js';

const pageSizes = fc.constantFrom(512, 1024, 4096, 65536);
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const index = fc.integer({ min: 0, max: 2 ** 31 - 1 });

describe('page content', () => {
  it('a page written into a pageBuffer (copied beside the pool, allocating nothing) is byte for byte the same page', () => {
    fc.assert(
      fc.property(pageSizes, index, u32, fc.integer({ min: 0, max: 100 }), (ps, i, v, offset) => {
        const buf = pageBuffer(offset + ps + 3, ps).fill(0xaa);
        writePage(buf, offset, i, v, ps);
        expect(buf.subarray(offset, offset + ps).equals(makePage(i, v, ps))).toBe(true);
        expect(checkPage(buf, offset, i, v, ps)).toBe(true);
        // Nothing outside the page is touched (the pool beside it is not part of the buffer).
        expect(buf.subarray(0, offset).every((b) => b === 0xaa)).toBe(true);
        expect(buf.subarray(offset + ps).every((b) => b === 0xaa)).toBe(true);
        // A view of it (the sender's batch-sized one) works the same.
        const view = buf.subarray(offset);
        writePage(view, 0, i, (v + 1) >>> 0, ps);
        expect(view.subarray(0, ps).equals(makePage(i, (v + 1) >>> 0, ps))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('writePage then checkPage round-trips at any offset, and makePage gives the same bytes', () => {
    fc.assert(
      fc.property(pageSizes, index, u32, fc.integer({ min: 0, max: 100 }), (ps, i, v, offset) => {
        const buf = Buffer.alloc(offset + ps + 3, 0xaa);
        writePage(buf, offset, i, v, ps);
        expect(checkPage(buf, offset, i, v, ps)).toBe(true);
        // Nothing outside [offset, offset+ps) is touched.
        expect(buf.subarray(0, offset).every((b) => b === 0xaa)).toBe(true);
        expect(buf.subarray(offset + ps).every((b) => b === 0xaa)).toBe(true);
        expect(makePage(i, v, ps).equals(buf.subarray(offset, offset + ps))).toBe(true);
        // The header is the index and version, little-endian.
        expect(buf.readUInt32LE(offset)).toBe(i);
        expect(buf.readUInt32LE(offset + 4)).toBe(v);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects any single flipped byte', () => {
    fc.assert(
      fc.property(
        pageSizes.chain((ps) => fc.tuple(fc.constant(ps), index, u32, fc.integer({ min: 0, max: ps - 1 }), fc.integer({ min: 1, max: 255 }))),
        ([ps, i, v, at, xor]) => {
          const page = makePage(i, v, ps);
          page[at] ^= xor;
          expect(checkPage(page, 0, i, v, ps)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects a page checked against another version or index', () => {
    fc.assert(
      fc.property(pageSizes, index, u32, u32, index, (ps, i, v, v2, i2) => {
        const page = makePage(i, v, ps);
        if (v2 !== v) expect(checkPage(page, 0, i, v2, ps)).toBe(false);
        if (i2 !== i) expect(checkPage(page, 0, i2, v, ps)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a page whose header was rewritten to claim another version (the body gives it away)', () => {
    fc.assert(
      fc.property(pageSizes, index, u32, u32, (ps, i, v, v2) => {
        fc.pre(v2 !== v);
        const page = makePage(i, v, ps);
        page.writeUInt32LE(v2, 4);
        expect(checkPage(page, 0, i, v2, ps)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a forged header even for two versions that share a pool window (the trailer tells them apart)', () => {
    // The pool has 2^17 window starts, so some version of page 0 shares version 1's window:
    // find one, then rewrite version 1's header to claim it.
    const ps = 512;
    const a = makePage(0, 1, ps);
    const bodyOf = (b: Buffer) => b.subarray(PAGE_HEADER_BYTES, ps - 8);
    let twin = -1;
    for (let v = 2; v < 1 << 21 && twin < 0; v++) if (bodyOf(makePage(0, v, ps)).equals(bodyOf(a))) twin = v;
    expect(twin).toBeGreaterThan(1);
    const forged = Buffer.from(a);
    forged.writeUInt32LE(twin, 4);
    expect(checkPage(forged, 0, 0, twin, ps)).toBe(false);
    expect(checkPage(makePage(0, twin, ps), 0, 0, twin, ps)).toBe(true);
  });

  it('rejects a truncated page instead of reading past the buffer', () => {
    const page = makePage(7, 3, 4096);
    expect(checkPage(page.subarray(0, 4095), 0, 7, 3, 4096)).toBe(false);
    expect(checkPage(page, 1, 7, 3, 4096)).toBe(false);
  });

  it('is deterministic and differs between versions of the same page', () => {
    const a = makePage(42, 1, 4096);
    expect(makePage(42, 1, 4096).equals(a)).toBe(true);
    const b = makePage(42, 2, 4096);
    // Not only the header: the bodies differ too (a stale page is caught byte for byte).
    expect(a.subarray(PAGE_HEADER_BYTES).equals(b.subarray(PAGE_HEADER_BYTES))).toBe(false);
    // Pages of different sizes agree on their common prefix region's header.
    expect(makePage(42, 1, 512).readUInt32LE(0)).toBe(42);
  });
});
