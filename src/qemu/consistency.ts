/**
 * The memory consistency check for the test guest (guest-image.ts).
 *
 * The guest bumps one byte in each written page, in address order, pass after pass, and RAM
 * starts zeroed. So at any instant, read in address order, the bytes are
 *
 *     n, n, ..., n, n-1, n-1, ..., n-1        (mod 256)
 *
 * where the step down sits where the loop was when the guest stopped (no step at all if it
 * stopped between passes). A migration that lost a page (the destination kept a zero or an
 * old copy), placed a stale copy, or left a page unplaced shows up as a second step, a step
 * the wrong way, or a jump of more than one. That is the whole check: one pass over the
 * dump, every written page compared with its predecessor. A working set smaller than the
 * range adds one rule: the pages after it were written once (the fill pass) and hold 1.
 */
import { readFile } from 'node:fs/promises';
import { OPS_ADDRESS, type GuestLayout } from './guest-image.js';

/** Where the checked bytes are, and where the dump starts in guest-physical memory. */
export interface DumpLayout extends GuestLayout {
  /**
   * Guest-physical address of the dump's first byte: 0 for `pmemsave {val: 0, size: RAM}`,
   * `startAddress` for a dump of just the written range. Default 0.
   */
  dumpBase?: number;
}

export interface ConsistencyResult {
  /** True when the written pages form one increment pattern with at most one step. */
  ok: boolean;
  /** How many written pages were compared. */
  pages: number;
  /** Steps seen before the verdict (0 or 1 when ok; 0: the guest stopped between passes). */
  boundaries: number;
  /** The value in the first written page: the number of full passes (mod 256) plus one if mid-pass. */
  firstValue: number;
  /** The first page that breaks the pattern. */
  firstBad?: {
    /** Guest page frame number (guest-physical address / page size). */
    page: number;
    /** Guest-physical address of the checked byte. */
    address: number;
    /** Position of the page among the written pages (0 = the first). */
    index: number;
    /** The value the pattern allows here (equal to the predecessor; or one less, if no step yet). */
    expected: number;
    found: number;
  };
  /** One sentence a person can read in a test failure or a drill report. */
  explanation: string;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

interface Run {
  dump: Uint8Array;
  base: number;
  first: number;
  step: number;
  pageSize: number;
  count: number;
}

/** The increment pattern over written pages [from, to): one value, at most one step down. */
function checkRun(r: Run, from: number, to: number): ConsistencyResult {
  const firstValue = r.dump[r.first + from * r.step - r.base];
  let last = firstValue;
  let boundaries = 0;
  for (let index = from + 1; index < to; index++) {
    const address = r.first + index * r.step;
    const found = r.dump[address - r.base];
    if (found === last) continue;
    if (boundaries === 0 && ((found + 1) & 0xff) === last) {
      // The one place the guest's loop was: pages before it have this pass, pages after do not.
      boundaries = 1;
      last = found;
      continue;
    }
    const page = Math.floor(address / r.pageSize);
    const why =
      boundaries === 0
        ? `expected ${last} (or ${(last - 1) & 0xff} at the guest's position)`
        : `expected ${last}: the guest's position was already seen, so every later page must equal its predecessor`;
    return {
      ok: false,
      pages: r.count,
      boundaries,
      firstValue,
      firstBad: { page, address, index, expected: last, found },
      explanation: `page ${hex(page)} (byte at ${hex(address)}, written page ${index} of ${r.count}) holds ${found}; ${why}. The page was lost (never placed), stale (an old copy placed) or corrupted.`,
    };
  }
  const where = boundaries === 0 ? 'no step (stopped between passes)' : 'one step (where the guest was mid-pass)';
  return {
    ok: true,
    pages: r.count,
    boundaries,
    firstValue,
    explanation: `${to - from} written pages form one increment pattern with ${where}; first page value ${firstValue}.`,
  };
}

/**
 * Check a dump of guest RAM against the guest's increment pattern. Throws a RangeError when the
 * dump does not cover the layout (a truncated or wrong-range dump is a usage error, not a
 * verdict about the migration).
 *
 * With a working set smaller than the range, the guest filled every written page once and then
 * wrote only the working set: the working set must show the pattern and every page after it
 * must hold exactly 1. While the fill pass is still running, the whole range is one pattern of
 * 1s then 0s, which is accepted too.
 */
export function checkConsistency(dump: Uint8Array, layout: DumpLayout): ConsistencyResult {
  const base = layout.dumpBase ?? 0;
  const step = layout.stridePages * layout.pageSize;
  const first = layout.startAddress + layout.byteOffset;
  if (first < base) {
    throw new RangeError(`the dump starts at ${hex(base)}, after the first checked byte at ${hex(first)}`);
  }
  // The last written byte: the same offset in the last written page below the end.
  const count = Math.ceil((layout.endAddress - first) / step);
  if (count < 1) throw new RangeError('the layout has no written pages');
  const lastAddress = first + (count - 1) * step;
  if (lastAddress - base >= dump.length) {
    throw new RangeError(
      `the dump (${dump.length} bytes from ${hex(base)}) ends before the last checked byte at ${hex(lastAddress)}; save guest RAM up to ${hex(layout.endAddress)}`,
    );
  }
  const run: Run = { dump, base, first, step, pageSize: layout.pageSize, count };
  const workingSet = Math.min(count, layout.workingSetPages ?? count);
  const whole = checkRun(run, 0, count);
  if (layout.order === 'random') return checkRandom(run, layout, workingSet, whole);
  if (workingSet === count) return whole;
  if (whole.ok && whole.firstValue <= 1) {
    return { ...whole, explanation: `${whole.explanation} (the fill pass, before the working set of ${workingSet} pages is written again)` };
  }
  const ws = checkRun(run, 0, workingSet);
  if (!ws.ok) return ws;
  for (let index = workingSet; index < count; index++) {
    const address = first + index * step;
    const found = dump[address - base];
    if (found === 1) continue;
    const page = Math.floor(address / layout.pageSize);
    return {
      ...ws,
      ok: false,
      firstBad: { page, address, index, expected: 1, found },
      explanation: `page ${hex(page)} (byte at ${hex(address)}, written page ${index} of ${count}, outside the working set of ${workingSet}) holds ${found}; expected 1 (written once by the fill pass). The page was lost (never placed), stale (an old copy placed) or corrupted.`,
    };
  }
  return {
    ...ws,
    explanation: `${ws.explanation.replace(/\.$/, '')}; the ${count - workingSet} pages outside the working set hold 1 (filled once).`,
  };
}

/** The guest's xorshift32 step (guest-image.ts, the random order). */
function xorshift32(x: number): number {
  x = (x ^ (x << 13)) >>> 0;
  x = (x ^ (x >>> 17)) >>> 0;
  return (x ^ (x << 5)) >>> 0;
}

/**
 * The random order: replay the guest's `ops` writes (the counter is in the dump) from its seed;
 * every working-set page must hold 1 + its count (mod 256), every other page 1. The write after
 * the last counted one may already have reached memory (the guest stopped between its write and
 * its count), so that one page may hold one more.
 */
function checkRandom(r: Run, layout: DumpLayout, workingSet: number, whole: ConsistencyResult): ConsistencyResult {
  const at = OPS_ADDRESS - r.base;
  if (at < 0 || at + 8 > r.dump.length) throw new RangeError(`a random-order check needs the ops counter at ${hex(OPS_ADDRESS)} in the dump (dump from 0)`);
  const ops = r.dump[at] + r.dump[at + 1] * 2 ** 8 + r.dump[at + 2] * 2 ** 16 + r.dump[at + 3] * 2 ** 24 + (r.dump[at + 4] + r.dump[at + 5] * 2 ** 8) * 2 ** 32;
  if (ops === 0 && whole.ok && whole.firstValue <= 1) return { ...whole, explanation: `${whole.explanation} (the fill pass; no random write counted yet)` };
  const expected = new Uint8Array(r.count).fill(1);
  let x = layout.seed;
  const pick = (): number => {
    x = xorshift32(x);
    return Math.floor((x * workingSet) / 2 ** 32);
  };
  for (let i = 0; i < ops; i++) expected[pick()]++;
  const uncounted = pick();
  for (let index = 0; index < r.count; index++) {
    const address = r.first + index * r.step;
    const found = r.dump[address - r.base];
    if (found === expected[index] || (index === uncounted && found === ((expected[index] + 1) & 0xff))) continue;
    const page = Math.floor(address / r.pageSize);
    return {
      ok: false,
      pages: r.count,
      boundaries: 0,
      firstValue: r.dump[r.first - r.base],
      firstBad: { page, address, index, expected: expected[index], found },
      explanation: `page ${hex(page)} (byte at ${hex(address)}, written page ${index} of ${r.count}) holds ${found}; replaying the guest's ${ops} random writes (seed ${layout.seed}) gives ${expected[index]}. The page was lost (never placed), stale (an old copy placed) or corrupted.`,
    };
  }
  return {
    ok: true,
    pages: r.count,
    boundaries: 0,
    firstValue: r.dump[r.first - r.base],
    explanation: `${r.count} written pages hold exactly what replaying the guest's ${ops} random writes over ${workingSet} pages (seed ${layout.seed}) gives.`,
  };
}

/** Read a dump file (as `pmemsave` writes it) and check it. */
export async function checkConsistencyFile(path: string, layout: DumpLayout): Promise<ConsistencyResult> {
  return checkConsistency(await readFile(path), layout);
}
