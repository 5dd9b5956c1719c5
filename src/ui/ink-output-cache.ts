/**
 * Ink builds each frame in a fresh `Output` (ink/build/output.js), and each `Output` starts with
 * empty caches: every line written is tokenized again (Intl.Segmenter grapheme by grapheme, then
 * one styled-cell object per character) and every character's width measured again, on every
 * frame, although from one frame to the next most lines of the lab screen are the same text.
 * That tokenizing was the largest single cost of a frame (profile of bench/ui.ts's in-process
 * frames). Ink keeps its other text caches (measure-text.js, wrap-text.js) for the process's
 * life; this gives `Output` the same: one set of caches shared by every frame, dropped whole when
 * it grows large, so a long run with ever-new counter text stays bounded.
 *
 * `Output` is not exported by Ink, so it is reached by its file next to Ink's entry point. The
 * cached values are read-only to Ink (it places the cached cell objects into the frame's grid and
 * creates new ones for the cells after a wide character), which is what makes sharing them safe.
 * If a later Ink moves or reshapes `Output`, this does nothing and frames cost what they did.
 *
 * Rows, too: Ink builds every frame as a grid of one object per cell (120x36 of them) and turns
 * each row back into a string, although most rows are the same as in the last frame. Here each
 * row is first described by what is written on it (position and text of each write, after
 * Ink's vertical clipping and its transformers), and a row described as before is taken from a
 * cache; only a new row is built, by Ink's own code, alone in a one-row `Output`. A frame with
 * anything this does not model (a horizontal clip, a line a transformer split) is built by Ink
 * as a whole, as before.
 *
 * And a new row is put together from its writes, each built by Ink alone and kept (see
 * composeRow): while pages stream ~10 rows change per frame, but mostly in one write of each
 * (a counter, a row of the page map) beside others that did not (the step's text on the left).
 * Building all 120 cells of each such row again was most of what a frame's output still cost.
 */

/**
 * Entries (lines + widths) the shared caches may hold before they are started afresh. A frame of
 * the lab screen writes ~40 lines and ~150 distinct characters, a few of them new each frame; a
 * cached line holds one small object per character (~4 KiB for a long line), so this keeps the
 * caches near 10 MiB at most and restarts them every few hundred frames.
 */
const MAX_ENTRIES = 3_000;

interface StyledChar {
  value: string;
  styles: unknown[];
}

interface Caches {
  widths: Map<string, unknown>;
  blockWidths: Map<string, unknown>;
  styledChars: Map<string, unknown>;
  getStyledChars(line: string): StyledChar[];
  getStringWidth(text: string): number;
}

type Clip = { x1?: number; x2?: number; y1?: number; y2?: number };
type Operation =
  | { type: 'write'; x: number; y: number; text: string; transformers: Array<(line: string, index: number) => string> }
  | { type: 'clip'; clip: Clip }
  | { type: 'unclip' };

interface OutputLike {
  width: number;
  height: number;
  operations: Operation[];
  caches: Caches;
  get(): { output: string; height: number };
}

type OutputClass = new (o: { width: number; height: number }) => OutputLike;

/** Built rows by their description (see rowKey), shared by every frame; started afresh when full. */
const MAX_ROWS = 2_000;

/**
 * What each row of the frame gets written, as Ink's `Output.get` would place it: `[x, line]`
 * per write, in order. Null when the frame has something this does not model (then Ink builds it).
 */
function rowWrites(out: OutputLike): Array<Array<[number, string]>> | null {
  const rows: Array<Array<[number, string]>> = Array.from({ length: out.height }, () => []);
  const clips: Clip[] = [];
  for (const op of out.operations) {
    if (op.type === 'clip') clips.push(op.clip);
    else if (op.type === 'unclip') clips.pop();
    else if (op.type === 'write') {
      let { y } = op;
      let lines = op.text.split('\n');
      const clip = clips.at(-1);
      if (clip) {
        if (typeof clip.x1 === 'number' && typeof clip.x2 === 'number') return null;
        if (typeof clip.y1 === 'number' && typeof clip.y2 === 'number') {
          if (y + lines.length < clip.y1 || y > clip.y2) continue;
          const from = y < clip.y1 ? clip.y1 - y : 0;
          const to = y + lines.length > clip.y2 ? clip.y2 - y : lines.length;
          lines = lines.slice(from, to);
          if (y < clip.y1) y = clip.y1;
        }
      }
      let offsetY = 0;
      for (let index = 0; index < lines.length; index++) {
        const row = rows[y + offsetY];
        // As Ink: a line below the frame is dropped, and so is every line after it.
        if (!row) continue;
        let line = lines[index];
        for (const transformer of op.transformers) line = transformer(line, index);
        if (line.includes('\n')) return null;
        row.push([op.x, line]);
        offsetY++;
      }
    }
  }
  return rows;
}

/**
 * One write of a row, built by Ink alone (in an `Output` exactly as wide as it): its text, the
 * columns it covers and, of those, the ones its text keeps (Ink trims a row's trailing plain
 * spaces), and whether its first and last cells carry a style. Null when it cannot be placed
 * beside others as text (trailing whitespace other than plain spaces, which Ink's trim would
 * also take).
 */
interface Segment {
  text: string;
  width: number;
  kept: number;
  styledStart: boolean;
  styledEnd: boolean;
}

/**
 * A row from its writes' segments, or null when it must be built whole. Ink turns a row into text
 * cell by cell, emitting at each cell only the style change from the cell before, and resets at
 * the end. Cells no write covers are plain spaces. So a segment built alone starts with its
 * first cell's full style (the change from a plain space) and ends with the reset (the change to
 * one), exactly what the whole row has around it when plain cells separate it from the next
 * write, or when the two cells that meet have no style on one side. Writes that overlap, run
 * past the row, or meet with styles on both sides are left to Ink.
 */
function composeRow(width: number, writes: Array<[number, string]>, segment: (line: string) => Segment | null): string | null {
  const sorted = writes.length > 1 ? [...writes].sort((a, b) => a[0] - b[0]) : writes;
  let out = '';
  let end = 0; // the first column after the last write
  let kept = 0; // the first column after the last text kept
  let styledEnd = false;
  for (const [x, line] of sorted) {
    const seg = segment(line);
    if (!seg || x < end || x + seg.width > width || (x === end && styledEnd && seg.styledStart)) return null;
    if (seg.text) {
      out += ' '.repeat(x - kept) + seg.text;
      kept = x + seg.kept;
    }
    end = x + seg.width;
    styledEnd = seg.styledEnd;
  }
  return out;
}

/**
 * Characters that Ink's tokenizer takes one at a time and places as they are when unstyled:
 * printable ASCII, the middle dot, dashes, the ellipsis, arrows, box drawing, blocks and
 * shapes. No escape character, so no style. The lab's changing text (counters, the page map's
 * glyphs, sparklines) is mostly this, and tokenizing it grapheme by grapheme was most of what
 * building a changed write cost.
 */
const PLAIN = /^[\x20-\x7e\u00b7\u2013\u2014\u2026\u2190-\u21ff\u2500-\u25ff]*$/;

/** The segment of a plain line (see PLAIN) whose characters Ink measures one column each, without Ink; else null. */
function plainSegment(line: string, caches: Caches): Segment | null {
  if (!PLAIN.test(line)) return null;
  let width = 0;
  for (const ch of line) width += Math.max(1, caches.getStringWidth(ch));
  if (width !== line.length) return null;
  // As Ink trims a row: of these characters only the space is whitespace.
  const text = line.trimEnd();
  return { text, width, kept: text.length, styledStart: false, styledEnd: false };
}

const rowKey = (width: number, writes: Array<[number, string]>): string => `${width}\u0000${writes.map(([x, line]) => `${x}\u0001${line}`).join('\u0002')}`;

let installed: Promise<boolean> | undefined;

function isCaches(x: unknown): x is Caches {
  const c = x as Partial<Caches> | undefined;
  return c?.widths instanceof Map && c.blockWidths instanceof Map && c.styledChars instanceof Map && typeof c.getStyledChars === 'function' && typeof c.getStringWidth === 'function';
}

/**
 * Make every Ink frame in this process share one set of `Output` caches. Idempotent; resolves to
 * whether it applied (false: this Ink has no such `Output`, frames are built as before).
 */
export function shareInkOutputCaches(): Promise<boolean> {
  installed ??= (async () => {
    try {
      const url = new URL('./output.js', import.meta.resolve('ink'));
      const mod = (await import(url.href)) as { default?: OutputClass };
      const Output = mod.default;
      if (typeof Output !== 'function') return false;
      const probe = new Output({ width: 0, height: 0 });
      if (!isCaches(probe.caches) || !Array.isArray(probe.operations) || typeof Output.prototype.get !== 'function') return false;
      const Caches = probe.caches.constructor as new () => Caches;
      let shared = new Caches();
      const rowCache = new Map<string, string>();
      const segments = new Map<string, Segment | null>();
      const segment = (line: string): Segment | null => {
        let seg = segments.get(line);
        if (seg !== undefined) return seg;
        seg = plainSegment(line, shared);
        if (seg) {
          segments.set(line, seg);
          return seg;
        }
        const chars = shared.getStyledChars(line);
        let width = 0;
        for (const c of chars) width += Math.max(1, shared.getStringWidth(c.value));
        let plain = 0; // trailing plain spaces, which Ink's trim takes
        while (plain < chars.length && chars[chars.length - 1 - plain].value === ' ' && chars[chars.length - 1 - plain].styles.length === 0) plain++;
        const before = chars[chars.length - 1 - plain];
        if (before && before.styles.length === 0 && /^\s$/.test(before.value)) seg = null;
        else if (chars.length === 0) seg = { text: '', width: 0, kept: 0, styledStart: false, styledEnd: false };
        else {
          seg = { text: buildRow(width, [[0, line]]), width, kept: width - plain, styledStart: chars[0].styles.length > 0, styledEnd: chars[chars.length - 1].styles.length > 0 };
        }
        segments.set(line, seg);
        return seg;
      };
      const get = Output.prototype.get;
      /** A row built by Ink as a whole, alone in a one-row Output. */
      const buildRow = (width: number, writes: Array<[number, string]>): string => {
        const one = new Output({ width, height: 1 });
        one.caches = shared;
        for (const [x, text] of writes) one.operations.push({ type: 'write', x, y: 0, text, transformers: [] });
        return get.call(one).output;
      };
      Output.prototype.get = function (this: OutputLike) {
        if (shared.widths.size + shared.blockWidths.size + shared.styledChars.size > MAX_ENTRIES) shared = new Caches();
        if (rowCache.size > MAX_ROWS) rowCache.clear();
        if (segments.size > MAX_ROWS) segments.clear();
        this.caches = shared;
        const rows = rowWrites(this);
        if (!rows) return get.call(this);
        const lines = rows.map((writes) => {
          if (writes.length === 0) return ''; // a row of spaces, trimmed as Ink trims it
          const key = rowKey(this.width, writes);
          let line = rowCache.get(key);
          if (line === undefined) {
            line = composeRow(this.width, writes, segment) ?? buildRow(this.width, writes);
            rowCache.set(key, line);
          }
          return line;
        });
        return { output: lines.join('\n'), height: this.height };
      };
      return true;
    } catch {
      return false;
    }
  })();
  return installed;
}
