import { describe, expect, it } from 'vitest';
import { checkConsistency, type DumpLayout } from '../../../src/qemu/consistency.js';
import { guestLayout, OPS_ADDRESS } from '../../../src/qemu/guest-image.js';

const MiB = 1 << 20;
const layout: DumpLayout = guestLayout({ endMiB: 2, byteOffset: 5 }); // 256 pages from 1 MiB
const PAGES = 256;

/** A dump of guest RAM from address 0 whose written pages hold `values[i]`. */
function fabricate(values: (i: number) => number, l: DumpLayout = layout): Buffer {
  const dump = Buffer.alloc(l.endAddress);
  const step = l.stridePages * l.pageSize;
  for (let i = 0, a = l.startAddress + l.byteOffset; a < l.endAddress; i++, a += step) dump[a] = values(i) & 0xff;
  return dump;
}

describe('checkConsistency', () => {
  it('accepts a dump taken between passes (no step)', () => {
    const r = checkConsistency(fabricate(() => 7), layout);
    expect(r).toMatchObject({ ok: true, pages: PAGES, boundaries: 0, firstValue: 7 });
  });

  it('accepts a dump taken mid-pass (one step down where the guest was)', () => {
    const r = checkConsistency(fabricate((i) => (i < 100 ? 9 : 8)), layout);
    expect(r).toMatchObject({ ok: true, pages: PAGES, boundaries: 1 });
    expect(r.explanation).toMatch(/one step/);
  });

  it('accepts the step across the 255 -> 0 wrap-around', () => {
    expect(checkConsistency(fabricate((i) => (i < 40 ? 0 : 255)), layout)).toMatchObject({ ok: true, boundaries: 1 });
  });

  it('accepts a fresh guest before its first pass ends (1s then zeros)', () => {
    expect(checkConsistency(fabricate((i) => (i < 3 ? 1 : 0)), layout).ok).toBe(true);
  });

  it('rejects two boundaries, naming the page at the second', () => {
    const r = checkConsistency(fabricate((i) => (i < 50 ? 5 : i < 120 ? 4 : 3)), layout);
    expect(r.ok).toBe(false);
    expect(r.boundaries).toBe(1);
    const address = layout.startAddress + 120 * layout.pageSize + layout.byteOffset;
    expect(r.firstBad).toEqual({ page: address >> 12, address, index: 120, expected: 4, found: 3 });
  });

  it('rejects a single wrong page (a lost page reads as zero)', () => {
    const r = checkConsistency(fabricate((i) => (i === 77 ? 0 : 12)), layout);
    expect(r.ok).toBe(false);
    expect(r.firstBad).toMatchObject({ index: 77, expected: 12, found: 0, page: (MiB >> 12) + 77 });
    expect(r.explanation).toContain(`page 0x${((MiB >> 12) + 77).toString(16)}`);
  });

  it('rejects a step the wrong way (a page ahead of its predecessor)', () => {
    const r = checkConsistency(fabricate((i) => (i < 10 ? 3 : 4)), layout);
    expect(r).toMatchObject({ ok: false, firstBad: { index: 10, expected: 3, found: 4 } });
  });

  it('checks only the written pages under a stride, and honours dumpBase', () => {
    const strided: DumpLayout = { ...guestLayout({ endMiB: 3, stridePages: 4 }) };
    const full = fabricate((i) => (i < 30 ? 2 : 1), strided);
    full[strided.startAddress + 4096] = 99; // an unwritten page in between: not checked
    expect(checkConsistency(full, strided)).toMatchObject({ ok: true, pages: 128, boundaries: 1 });
    const tail = full.subarray(strided.startAddress);
    expect(checkConsistency(tail, { ...strided, dumpBase: strided.startAddress }).ok).toBe(true);
  });

  it('throws on a dump that does not cover the range', () => {
    expect(() => checkConsistency(Buffer.alloc(MiB + 100), layout)).toThrow(RangeError);
  });
});

describe('checkConsistency with a working set', () => {
  const ws: DumpLayout = guestLayout({ endMiB: 2, workingSetPages: 64 }); // 256 pages, the loop over the first 64

  it('accepts the working set mid-pass with the rest filled once', () => {
    const r = checkConsistency(fabricate((i) => (i < 64 ? (i < 20 ? 6 : 5) : 1), ws), ws);
    expect(r).toMatchObject({ ok: true, boundaries: 1, firstValue: 6 });
    expect(r.explanation).toMatch(/192 pages outside the working set hold 1/);
  });

  it('accepts the fill pass in progress (1s then 0s over the whole range)', () => {
    expect(checkConsistency(fabricate((i) => (i < 100 ? 1 : 0), ws), ws).ok).toBe(true);
  });

  it('rejects a lost page outside the working set, naming it', () => {
    const r = checkConsistency(fabricate((i) => (i < 64 ? 9 : i === 200 ? 0 : 1), ws), ws);
    expect(r.ok).toBe(false);
    expect(r.firstBad).toMatchObject({ index: 200, expected: 1, found: 0 });
    expect(r.explanation).toMatch(/outside the working set/);
  });

  it('rejects a stale page inside the working set', () => {
    const r = checkConsistency(fabricate((i) => (i < 64 ? (i === 30 ? 3 : 7) : 1), ws), ws);
    expect(r).toMatchObject({ ok: false, firstBad: { index: 30, found: 3 } });
  });
});

describe('checkConsistency in random order', () => {
  const rnd: DumpLayout = guestLayout({ endMiB: 2, workingSetPages: 64, order: 'random', seed: 42 });

  /** What the guest leaves after `ops` random writes: replayed here independently of the checker. */
  function randomDump(ops: number): Buffer {
    const dump = fabricate(() => 1, rnd);
    let x = 42;
    for (let i = 0; i < ops; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      const page = Math.floor((x * 64) / 2 ** 32);
      dump[rnd.startAddress + page * 4096]++;
    }
    dump.writeUInt32LE(ops, OPS_ADDRESS);
    return dump;
  }

  it('accepts the pages the replayed writes give, and names a lost one', () => {
    const dump = randomDump(5000);
    expect(checkConsistency(dump, rnd)).toMatchObject({ ok: true, pages: 256 });
    dump[rnd.startAddress + 10 * 4096] = 0;
    const r = checkConsistency(dump, rnd);
    expect(r).toMatchObject({ ok: false, firstBad: { index: 10, found: 0 } });
    expect(r.explanation).toMatch(/replaying the guest's 5000 random writes/);
  });

  it('rejects a dump whose counter does not match its pages (a stale page elsewhere)', () => {
    const dump = randomDump(300);
    dump.writeUInt32LE(200, OPS_ADDRESS);
    expect(checkConsistency(dump, rnd).ok).toBe(false);
  });
});
