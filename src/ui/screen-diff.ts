/**
 * Only the rows that changed, written to the terminal.
 *
 * Ink (log-update, ink/build/log-update.js) writes every frame whole: the last frame's lines
 * erased one by one going up, then every line of the new one, ~3.3 KiB for the lab screen at
 * 120x36, ten times a second while pages stream, although from one frame to the next most rows
 * are the same. That synchronous write to the tty was the largest single item of the TUI
 * process's CPU after Ink's own output (~1.3 % of a core idle, 2.2 % under load; the terminal
 * then parses and repaints all of it too). Ink's `incrementalRendering` does the same in
 * principle; with it, rows of this full-height frame came out shifted in a real terminal.
 *
 * Here the terminal's `write` recognises such a frame (exactly the erase of the last frame's
 * line count, then lines ending in a newline: no cursor shown, nothing else in the write) and
 * writes instead: the cursor up to the frame's first row, and for each row a newline, preceded
 * by the row erased and written again only where it differs from the last frame. The cursor ends
 * where the whole frame leaves it, on the line below. Each row of Ink's frame carries its own
 * styles and resets them at its end, so a row can be written alone. Anything else written to
 * the terminal (a frame with the cursor shown, a cleared screen, a resize, a write to stderr)
 * forgets the last frame, and the next one is written whole; so is every FULL_FRAME_EVERY-th
 * frame, which repairs whatever disturbed the screen unseen.
 */

/** Ink's (ansi-escapes') erase of `count` lines from the cursor's up, ending in column 1. */
export function eraseLines(count: number): string {
  let clear = '';
  for (let i = 0; i < count; i++) clear += `\u001b[2K${i < count - 1 ? '\u001b[1A' : ''}`;
  return count ? `${clear}\u001b[G` : '';
}
/** Synchronized-output begin and end (Ink brackets a frame with them on a TTY). */
const SYNC_MARKS = new Set(['\u001b[?2026h', '\u001b[?2026l']);
/** A whole frame now and then (about every 5 s at 10 frames a second). */
export const FULL_FRAME_EVERY = 50;

type Write = NodeJS.WriteStream['write'];

interface Terminal {
  write: Write;
  rows?: number;
  columns?: number;
}

/**
 * The write that turns the screen from frame `last` into frame `lines` (each a frame's text
 * split at '\n', its last line the empty one after the final newline), with the cursor on the
 * line below the frame before and after; null when the frame must be written whole.
 */
export function changedRows(lines: readonly string[], last: readonly string[] | null): string | null {
  if (!last || last.length !== lines.length || lines.length < 2) return null;
  let out = `\u001b[${lines.length - 1}A\u001b[G`;
  for (let i = 0; i < lines.length - 1; i++) out += lines[i] === last[i] ? '\n' : `\u001b[2K${lines[i]}\n`;
  return out;
}

/**
 * Make the frames Ink writes to `stdout` write only their changed rows; writing to `others`
 * (stderr, on the same terminal) forgets the last frame. Returns the undo.
 */
export function diffScreenWrites(stdout: Terminal, others: Terminal[] = []): () => void {
  let last: string[] | null = null;
  let size = '';
  let sinceFull = 0;
  const write = stdout.write;
  stdout.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
    const call = (c: unknown) => (write as (...a: unknown[]) => boolean).call(this, c, ...rest);
    if (typeof chunk === 'string' && SYNC_MARKS.has(chunk)) return call(chunk);
    const frame = typeof chunk === 'string' ? frameLines(chunk, last?.length ?? 0) : null;
    if (!frame) {
      last = null;
      return call(chunk);
    }
    const nowSize = `${stdout.columns}x${stdout.rows}`;
    // A frame taller than the terminal has scrolled: its first rows are not where the cursor can go.
    const fits = frame.lines.length <= (stdout.rows ?? Infinity);
    const diff = frame.afterLast && fits && nowSize === size && sinceFull < FULL_FRAME_EVERY ? changedRows(frame.lines, last) : null;
    last = frame.lines;
    size = nowSize;
    sinceFull = diff === null ? 0 : sinceFull + 1;
    return call(diff ?? chunk);
  } as Write;
  const undo = others.map((o) => {
    const w = o.write;
    o.write = function (this: unknown, ...a: unknown[]) {
      last = null;
      return (w as (...b: unknown[]) => boolean).apply(this, a);
    } as Write;
    return () => {
      o.write = w;
    };
  });
  return () => {
    stdout.write = write;
    for (const u of undo) u();
  };
}

/** `chunk` without the erase of any number of lines in front of it (as eraseLines writes it). */
function withoutErase(chunk: string): string {
  const up = '\u001b[2K\u001b[1A';
  const end = '\u001b[2K\u001b[G';
  let i = 0;
  while (chunk.startsWith(up, i)) i += up.length;
  return chunk.startsWith(end, i) ? chunk.slice(i + end.length) : chunk;
}

/**
 * The lines of a frame as log-update writes it, and whether it was written right after the last
 * frame (of `lastCount` lines: the erase is of exactly those); null when `chunk` is anything
 * else. A frame after something else (the cursor shown, another frame size) is still learnt from,
 * to diff the next one against.
 */
function frameLines(chunk: string, lastCount: number): { lines: string[]; afterLast: boolean } | null {
  if (!chunk.endsWith('\n')) return null;
  const erase = lastCount ? eraseLines(lastCount) : '';
  if (erase && chunk.startsWith(erase)) return { lines: chunk.slice(erase.length).split('\n'), afterLast: true };
  return { lines: withoutErase(chunk).split('\n'), afterLast: false };
}
