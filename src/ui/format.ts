/** Number formatting shared by the panels: short, fixed-ish widths, units always shown. */

export { fmtBytes, fmtDuration, fmtRate } from '../util/format.js';

/** An integer count, or '–' when unknown. */
export function fmtCount(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '–';
  return String(Math.round(n));
}

/**
 * QEMU's `mbps` (megabits per second, as query-migrate reports it) as megabytes per second,
 * the unit the screen uses.
 */
export function fmtMBps(mbps: number | undefined): string {
  if (mbps === undefined || !Number.isFinite(mbps)) return '–';
  const v = mbps / 8;
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

/** Microseconds as milliseconds with one or two significant decimals. */
export function fmtUsAsMs(us: number): string {
  const ms = us / 1000;
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/** Run time shown in the header and event log: seconds with one decimal. */
export function fmtT(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Cut or pad `s` to exactly `width` cells (ASCII and single-width symbols only). */
export function fit(s: string, width: number): string {
  if (width <= 0) return '';
  if (s.length > width) return width === 1 ? '…' : s.slice(0, width - 1) + '…';
  return s.padEnd(width);
}

/**
 * Word-wrap `text` to `width` cells (words longer than a line are split). Ink's own wrapping
 * keeps the space it broke at, which starts the next line with a blank.
 *
 * A single newline is a space: lab texts are YAML block scalars broken at ~95 columns for the
 * file's sake, and keeping those breaks in a 40-column panel gave ragged half-empty lines. A
 * blank line still separates paragraphs (kept as an empty line).
 */
export function wrapWords(text: string, width: number): string[] {
  if (width <= 0) return [];
  const out: string[] = [];
  const paras = text.replace(/\s+$/, '').split(/\n[ \t]*\n/);
  for (const [i, para] of paras.entries()) {
    if (i > 0) out.push('');
    let line = '';
    for (let word of para.split(/\s+/).filter(Boolean)) {
      while (word.length > width) {
        if (line) {
          out.push(line);
          line = '';
        }
        out.push(word.slice(0, width));
        word = word.slice(width);
      }
      if (!line) line = word;
      else if (line.length + 1 + word.length <= width) line += ' ' + word;
      else {
        out.push(line);
        line = word;
      }
    }
    out.push(line);
  }
  return out;
}
