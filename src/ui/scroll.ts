/**
 * Scrolling text in a fixed number of rows, as pure math: the steps panel, the event log and
 * the QMP console all show a window of a longer list of lines, and say what lies outside it
 * ("↑ 3 lines above", "↓ more (12 lines)") so nothing is cut without a marker.
 *
 * A marker takes a row of the window itself: the panel's height never changes with scrolling.
 */

/** What a window of `rows` rows shows of `total` lines. */
export interface ScrollWindow {
  /** Index of the first line shown. */
  start: number;
  /** One past the last line shown. */
  end: number;
  /** Lines hidden above (a marker row is shown when > 0). */
  above: number;
  /** Lines hidden below (a marker row is shown when > 0). */
  below: number;
  /** The largest `start` (the window showing the last line). */
  maxStart: number;
  /** Lines shown per page in the middle (both markers showing): what PgUp/PgDn move by. */
  page: number;
}

/**
 * The window that starts at line `offset` (clamped). Markers use rows only when there is
 * something to mark, and a window too small for text and markers shows text only.
 */
export function scrollWindow(total: number, rows: number, offset: number): ScrollWindow {
  const n = Math.max(0, Math.floor(total));
  const r = Math.max(0, Math.floor(rows));
  if (n <= r) return { start: 0, end: n, above: 0, below: 0, maxStart: 0, page: Math.max(1, r) };
  // Too small for a line of text beside a marker: show what fits, unmarked.
  if (r < 2) {
    const start = clamp(offset, 0, n - r);
    return { start, end: start + r, above: start, below: n - start - r, maxStart: n - r, page: 1 };
  }
  const maxStart = n - (r - 1); // the last page: a marker above, none below
  const start = clamp(offset, 0, maxStart);
  const markers = (start > 0 ? 1 : 0) + (start < maxStart ? 1 : 0);
  const end = Math.min(n, start + Math.max(1, r - markers));
  return { start, end, above: start, below: n - end, maxStart, page: Math.max(1, r - 2) };
}

/** The marker rows, in the words the panels use. */
export const moreAbove = (n: number): string => `↑ ${n} more line${n === 1 ? '' : 's'} above`;
export const moreBelow = (n: number): string => `↓ more (${n} line${n === 1 ? '' : 's'})`;

/**
 * A window over the end of a growing list (the event log, the console): `back` lines up from
 * the end, 0 following the newest. Returns the window and the clamped `back`.
 */
export function tailWindow(total: number, rows: number, back: number): ScrollWindow {
  const bottom = scrollWindow(total, rows, Number.MAX_SAFE_INTEGER);
  return scrollWindow(total, rows, bottom.maxStart - Math.max(0, back));
}

/**
 * `text` in rows of at most `width` characters, broken at the last space that fits, so prose
 * (QEMU's errors, the lab's refusals) reads word by word; a word longer than a row (an address, a
 * JSON value without spaces) is cut where the row ends, and a line's leading indent (JSON replies)
 * is kept. The space a row breaks at is dropped. Not wrap-ansi: its trimming would take the
 * indent of pretty-printed replies, and these strings carry no escape codes.
 */
export function wrapText(text: string, width: number): string[] {
  if (width <= 0) return [];
  const out: string[] = [];
  for (const line of text.split('\n')) {
    let rest = [...line];
    if (rest.length === 0) out.push('');
    while (rest.length > width) {
      let cut = width;
      while (cut > 0 && rest[cut] !== ' ') cut--;
      // Only spaces of the indent before it: no word to keep whole, cut at the row's end.
      if (rest.slice(0, cut).every((c) => c === ' ')) cut = 0;
      if (cut === 0) {
        out.push(rest.slice(0, width).join(''));
        rest = rest.slice(width);
      } else {
        out.push(rest.slice(0, cut).join(''));
        rest = rest.slice(cut + 1);
      }
    }
    if (rest.length > 0) out.push(rest.join(''));
  }
  return out;
}

const clamp = (n: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, Math.floor(n)));
