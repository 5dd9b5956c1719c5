/**
 * Whether a recovery file can complete a destination, and if not, exactly why: the pages
 * missing, the bytes that were in flight at the failure, and the window that would have been
 * enough. Measured, not guessed: the file carries where in the stream each page's frame last
 * started and how many bytes the stream had when postcopy failed (format.ts), so the bytes in
 * flight are the stream's bytes at the failure minus the position of the earliest page the
 * destination lacks although it had been sent. The window (x-recovery-file-window) keeps the
 * pages whose frame started within its last bytes of the stream, so a window of at least that
 * many bytes would have held every page lost in flight. Pure: the property tests drive it.
 */
import { minimumFileBytes } from './format.js';

/** How many missing pages a report names (the count is always given). */
export const NAMED_PAGES = 16;

export interface FileView {
  pageSize: number;
  pageCount: number;
  /** Whether the file holds page i (a record of its frozen version). */
  held: { get(i: number): boolean };
  /** Per page, where its frame last started in the stream + 1; 0: its content was never sent. */
  positions: Float64Array;
  /** Stream bytes at the failure; 0: not known (continuous mode writes before any failure). */
  streamBytes: number;
  windowBytes: number;
}

export interface Assessment {
  /** Pages the destination lacked (all of them with the bitmap strategy; those asked, with walk). */
  lacked: number;
  /** Of those, pages whose content had been sent: lost in flight (sockets, the relay, the link). */
  lostInFlight: number;
  /** Of those lacked, pages the file does not hold: recovery cannot be complete if any. */
  missing: number;
  /** The first NAMED_PAGES missing pages, ascending. */
  missingFirst: number[];
  /** Stream bytes at the failure, or null when the file does not know them. */
  streamBytes: number | null;
  /** Bytes between the earliest page lost in flight and the end of the stream at the failure. */
  inFlightBytes: number | null;
  /** The x-recovery-file-window that would have held every page lost in flight. */
  windowNeededBytes: number | null;
  /** The smallest file that completes this destination: the pages it lacked, one record each. */
  minimumBytes: number;
}

/** `lacks`: the pages the destination lacks, ascending (its received bitmap's complement, or the walker's asks). */
export function assess(f: FileView, lacks: Iterable<number>): Assessment {
  let lacked = 0;
  let lostInFlight = 0;
  let missing = 0;
  const missingFirst: number[] = [];
  let earliest = Infinity;
  for (const p of lacks) {
    lacked++;
    const pos = f.positions[p];
    if (pos > 0) {
      lostInFlight++;
      earliest = Math.min(earliest, pos - 1);
    }
    if (!f.held.get(p)) {
      missing++;
      if (missingFirst.length < NAMED_PAGES) missingFirst.push(p);
    }
  }
  missingFirst.sort((a, b) => a - b);
  const known = f.streamBytes > 0;
  const inFlight = !known ? null : Number.isFinite(earliest) ? f.streamBytes - earliest : 0;
  return {
    lacked,
    lostInFlight,
    missing,
    missingFirst,
    streamBytes: known ? f.streamBytes : null,
    inFlightBytes: inFlight,
    windowNeededBytes: inFlight,
    minimumBytes: minimumFileBytes(f.pageSize, f.pageCount, lacked),
  };
}

/** The refusal, one sentence beginning "recovery cannot be complete" (the lab runner keys on it). */
export function refusalText(a: Assessment, file: string, windowBytes: number, how: 'lacks' | 'asked'): string {
  const n = a.missing;
  const pages = `${a.missingFirst.join(', ')}${n > a.missingFirst.length ? ', …' : ''}`;
  const what =
    how === 'lacks'
      ? `the destination lacks ${n} page${n === 1 ? '' : 's'} the recovery file ${file} does not hold (${pages})`
      : `the destination asked for ${n === 1 ? 'page' : 'pages'} ${pages}, which the recovery file ${file} does not hold`;
  const measured =
    a.inFlightBytes === null
      ? 'the file does not record the stream at the failure (written before it), so the bytes in flight are not known'
      : `${a.inFlightBytes} bytes were in flight at the failure (the stream had ${a.streamBytes} bytes; the earliest page lost in flight started ${a.inFlightBytes} bytes before its end); ` +
        `the file kept a window of ${windowBytes} bytes, a window of ${a.windowNeededBytes} bytes would have been enough` +
        (how === 'asked' ? ' for the pages asked so far' : '');
  return `recovery cannot be complete: ${what}; ${measured}`;
}

/** The figures for query-migrate's x-recovery-source. */
export function assessmentFields(a: Assessment): Record<string, unknown> {
  return {
    'destination-lacked': a.lacked,
    'lost-in-flight-pages': a.lostInFlight,
    'missing-pages': a.missing,
    'missing-first': a.missingFirst,
    'stream-bytes': a.streamBytes,
    'in-flight-bytes': a.inFlightBytes,
    'window-needed-bytes': a.windowNeededBytes,
    'minimum-bytes': a.minimumBytes,
  };
}
