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

/** Indent of a command line set apart in a lab text, as shown. */
const SET_APART = '  ';

/**
 * Word-wrap `text` to `width` cells (words longer than a line are split). Ink's own wrapping
 * keeps the space it broke at, which starts the next line with a blank.
 *
 * A single newline is a space: lab texts are YAML block scalars broken at ~95 columns for the
 * file's sake, and keeping those breaks in a 40-column panel gave ragged half-empty lines. A
 * blank line still separates paragraphs (kept as an empty line). A line indented past the
 * text's own left edge is set apart (a command to type: "pmemsave {…}", "postcopy-lab
 * recovery-source FILE …"): it starts a row of its own, indented, and the text goes on below
 * it. Run into the prose, a newcomer read "--expect-digest HEX It checks every record" as one.
 */
export function wrapWords(text: string, width: number): string[] {
  if (width <= 0) return [];
  const out: string[] = [];
  const paras = text.replace(/\s+$/, '').split(/\n[ \t]*\n/);
  for (const [i, para] of paras.entries()) {
    if (i > 0) out.push('');
    const lines = para.split('\n');
    const edge = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
    let flow: string[] = [];
    const flush = () => {
      if (flow.length) out.push(...flowWords(flow.join(' '), width));
      flow = [];
    };
    for (const l of lines) {
      const apart = l.trim() !== '' && /^ */.exec(l)![0].length > edge;
      if (!apart) {
        flow.push(l);
        continue;
      }
      flush();
      // Indented where a panel has room for it; a narrow one keeps every cell for the command.
      const indent = width > SET_APART.length + 8 ? SET_APART : '';
      out.push(...flowWords(l, width - indent.length).map((r) => indent + r));
    }
    flush();
  }
  return out;
}

/** `text`'s words in rows of at most `width` cells; one row (empty) for no words. */
function flowWords(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) {
        out.push(line);
        line = '';
      }
      // After a '/' or '-' where the row has one: "postcopy/recovery/double-failur" + "es)" at
      // 80 columns read as a misspelling (a newcomer's walk).
      const soft = Math.max(word.lastIndexOf('/', width - 1), word.lastIndexOf('-', width - 1));
      const cut = soft >= width / 2 ? soft + 1 : width;
      out.push(word.slice(0, cut));
      word = word.slice(cut);
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= width) line += ' ' + word;
    else {
      out.push(line);
      line = word;
    }
  }
  out.push(line);
  return out;
}
