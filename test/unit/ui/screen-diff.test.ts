import { describe, expect, it } from 'vitest';
import xterm from '@xterm/headless';
import chalk from 'chalk';
import { FULL_FRAME_EVERY, changedRows, diffScreenWrites, eraseLines } from '../../../src/ui/screen-diff.js';

const { Terminal } = xterm;
const COLS = 40;
/** Taller than the frame, with a line above it, so a cursor moved one row too far shows. */
const ROWS = 12;
/** The frame's 8 rows and the line below them where log-update leaves the cursor. */
const FRAME_LINES = 9;

interface LogUpdate {
  (str: string): boolean;
  setCursorPosition(p: { x: number; y: number } | undefined): void;
}
/** Ink's own frame writer (not exported by Ink: reached by its file, as src/ui/ink-output-cache.ts does). */
async function logUpdate(stream: object): Promise<LogUpdate> {
  const mod = (await import(new URL('./log-update.js', import.meta.resolve('ink')).href)) as { default: { create(s: object): LogUpdate } };
  return mod.default.create(stream);
}

/** A terminal stream as Ink sees it, feeding a headless xterm and keeping every write. */
function terminal() {
  // convertEol: what the tty's onlcr does to Ink's '\n' on the way to a real terminal.
  const term = new Terminal({ cols: COLS, rows: ROWS, allowProposedApi: true, scrollback: 0, convertEol: true });
  const writes: string[] = [];
  const stream = {
    rows: ROWS,
    columns: COLS,
    write(chunk: string) {
      writes.push(chunk);
      term.write(chunk);
      return true;
    },
  };
  /** Each cell's character, colours and attributes, and the cursor. */
  const cells = async () => {
    await new Promise<void>((r) => term.write('', r));
    const buf = term.buffer.active;
    const out: string[] = [`cursor ${buf.cursorX},${buf.cursorY}`];
    for (let y = 0; y < ROWS; y++) {
      const line = buf.getLine(y)!;
      for (let x = 0; x < COLS; x++) {
        const c = line.getCell(x)!;
        out.push(`${y},${x}:${c.getChars()}|${c.getFgColor()}|${c.getBgColor()}|${c.isBold()}|${c.isDim()}|${c.isInverse()}|${c.getWidth()}`);
      }
    }
    return out;
  };
  return { term, stream, writes, cells };
}

/** Frame n: styled rows, a wide character, a full-width row. */
function frame(n: number): string {
  chalk.level = 3;
  return [
    chalk.bold(`title t=${n}`),
    `${chalk.green('✓')} step ${chalk.inverse(' '.repeat(n % 5))} 世界`,
    'x'.repeat(COLS - (n % 2)), // fills the width on even frames
    '',
    n % 3 === 0 ? chalk.bgBlue('counter ') + String(n) : 'a shorter row',
    chalk.blue('a row that stays the same'.padEnd(COLS - 2, '-')),
    'another row that stays the same'.padEnd(COLS - 2, '.'),
    `${'█'.repeat(n % 9)}${'·'.repeat(9 - (n % 9))}`,
  ].join('\n');
}

const frameChars = (ws: string[]) => ws.filter((w) => !w.startsWith('\u001b[?2026')).reduce((a, w) => a + w.length, 0);

describe('screen diff', () => {
  it('changedRows moves to the first row and rewrites only the rows that differ', () => {
    expect(changedRows(['a', 'b', 'c', ''], ['a', 'x', 'c', ''])).toBe('\u001b[3A\u001b[G\n\u001b[2Kb\n\n');
    expect(changedRows(['a', ''], ['a', 'b', ''])).toBeNull();
    expect(changedRows(['a', ''], null)).toBeNull();
  });

  it("leaves the screen and the cursor exactly as Ink's whole frames do, in fewer characters", async () => {
    const whole = terminal();
    const diffed = terminal();
    const undo = diffScreenWrites(diffed.stream);
    const inkWhole = await logUpdate(whole.stream);
    const inkDiffed = await logUpdate(diffed.stream);
    whole.term.write('above the frame\n');
    diffed.term.write('above the frame\n');
    for (let n = 0; n < 30; n++) {
      inkWhole(`${frame(n)}\n`);
      diffed.stream.write('\u001b[?2026h');
      inkDiffed(`${frame(n)}\n`);
      diffed.stream.write('\u001b[?2026l');
      expect(await diffed.cells(), `frame ${n}`).toEqual(await whole.cells());
    }
    // Diffs were written (not every frame whole), and they were smaller.
    expect(diffed.writes.filter((w) => w.startsWith(eraseLines(FRAME_LINES)))).toHaveLength(0);
    expect(frameChars(diffed.writes)).toBeLessThan(frameChars(whole.writes) * 0.8);
    undo();
    inkDiffed(`${frame(31)}\n`);
    expect(diffed.writes.at(-1)!.startsWith(eraseLines(FRAME_LINES))).toBe(true);
  });

  it('a frame with the cursor shown is written whole, and so is the next one; the screen stays the same', async () => {
    const whole = terminal();
    const diffed = terminal();
    diffScreenWrites(diffed.stream);
    const inks = [await logUpdate(whole.stream), await logUpdate(diffed.stream)];
    const both = (n: number, cursor?: { x: number; y: number }) => {
      for (const ink of inks) {
        ink.setCursorPosition(cursor);
        ink(`${frame(n)}\n`);
      }
    };
    both(1);
    both(2);
    both(3, { x: 4, y: 2 });
    expect(diffed.writes.at(-1)).toBe(whole.writes.at(-1));
    both(4);
    expect(diffed.writes.at(-1)).toBe(whole.writes.at(-1));
    both(5);
    expect(diffed.writes.at(-1)).not.toBe(whole.writes.at(-1));
    expect(await diffed.cells()).toEqual(await whole.cells());
  });

  it('writes the frame whole after anything else reached the terminal', async () => {
    const t = terminal();
    const stderr = { write: (s: string) => t.stream.write(s) };
    diffScreenWrites(t.stream, [stderr as never]);
    const ink = await logUpdate(t.stream);
    const isWhole = () => t.writes.at(-1)!.startsWith(eraseLines(FRAME_LINES));
    ink(`${frame(1)}\n`);
    ink(`${frame(2)}\n`);
    expect(isWhole()).toBe(false);
    stderr.write('a stray line\n');
    ink(`${frame(3)}\n`);
    expect(isWhole()).toBe(true);
    t.stream.write('\u001b[2J'); // anything on stdout that is not a frame
    ink(`${frame(4)}\n`);
    expect(isWhole()).toBe(true);
    t.stream.columns = COLS - 1; // a resize
    ink(`${frame(5)}\n`);
    expect(isWhole()).toBe(true);
    ink(`${frame(6)}\n`);
    expect(isWhole()).toBe(false);
    const tall = `${frame(7)}\n${'more\n'.repeat(ROWS)}`;
    ink(tall);
    ink(tall.replace('t=7', 't=8'));
    expect(t.writes.at(-1)!.startsWith(eraseLines(FRAME_LINES + ROWS))).toBe(true);
  });

  it('writes a frame whole every FULL_FRAME_EVERY frames', async () => {
    const t = terminal();
    diffScreenWrites(t.stream);
    const ink = await logUpdate(t.stream);
    let whole = 0;
    // The first frame and the one after FULL_FRAME_EVERY diffs, twice.
    for (let n = 0; n < (FULL_FRAME_EVERY + 1) * 2 + 1; n++) {
      ink(`${frame(n)}\n`);
      if (!t.writes.at(-1)!.startsWith('\u001b[8A')) whole++;
    }
    expect(whole).toBe(3);
  });
});
