import { describe, expect, it } from 'vitest';
import { wrapText, moreAbove, moreBelow, scrollWindow, tailWindow } from '../../../src/ui/scroll.js';
import { wrapWords } from '../../../src/ui/format.js';

describe('scrollWindow', () => {
  it('shows everything, unmarked, when it fits', () => {
    expect(scrollWindow(5, 5, 3)).toMatchObject({ start: 0, end: 5, above: 0, below: 0, maxStart: 0 });
  });

  it.each([
    // total, rows, offset -> start, end, above, below
    [20, 10, 0, 0, 9, 0, 11], // top: 9 lines and the "more below" row
    [20, 10, 4, 4, 12, 4, 8], // middle: a marker each side, 8 lines
    [20, 10, 11, 11, 20, 11, 0], // the last page: a marker above, 9 lines
    [20, 10, 99, 11, 20, 11, 0], // clamped to the last page
    [20, 10, -3, 0, 9, 0, 11],
    [3, 1, 1, 1, 2, 1, 1], // one row: text only
  ])('%i lines in %i rows from %i', (total, rows, offset, start, end, above, below) => {
    const w = scrollWindow(total, rows, offset);
    expect([w.start, w.end, w.above, w.below]).toEqual([start, end, above, below]);
    // Every row is used, never more: lines plus one row per marker.
    expect(w.end - w.start + (w.above > 0 && rows > 1 ? 1 : 0) + (w.below > 0 && rows > 1 ? 1 : 0)).toBe(rows);
  });

  it('reaches every line by paging down from the top', () => {
    const seen = new Set<number>();
    let w = scrollWindow(47, 11, 0);
    for (let i = 0; i < 20; i++) {
      for (let l = w.start; l < w.end; l++) seen.add(l);
      if (w.start === w.maxStart) break;
      w = scrollWindow(47, 11, w.start + w.page);
    }
    expect(seen.size).toBe(47);
  });

  it('counts back from the end for the logs', () => {
    expect(tailWindow(30, 5, 0)).toMatchObject({ start: 26, end: 30, above: 26, below: 0 });
    expect(tailWindow(30, 5, 2)).toMatchObject({ start: 24, end: 27, below: 3 });
  });

  it('words the markers', () => {
    expect(moreBelow(12)).toBe('↓ more (12 lines)');
    expect(moreBelow(1)).toBe('↓ more (1 line)');
    expect(moreAbove(3)).toBe('↑ 3 more lines above');
  });

  it('cuts words longer than a row where the row ends, and keeps empty lines', () => {
    expect(wrapText('abcdefg\n\nxy', 3)).toEqual(['abc', 'def', 'g', '', 'xy']);
  });

  // Found playing link-cut-recovery: a refusal read "the source's co / nnection to tcp".
  it('breaks prose at spaces, never inside a word that fits a row', () => {
    const text = "Error: refused by the lab: the lab's link forwards the source's connection to tcp:127.0.0.1:35667, so";
    const rows = wrapText(text, 30);
    expect(rows).toEqual(["Error: refused by the lab: the", "lab's link forwards the", "source's connection to", 'tcp:127.0.0.1:35667, so']);
    expect(rows.every((r) => r.length <= 30)).toBe(true);
    expect(rows.join(' ')).toBe(text);
  });

  it('keeps the indent of a JSON reply, and cuts a long word after it', () => {
    expect(wrapText('{\n  "status": "postcopy-active"\n}', 12)).toEqual(['{', '  "status":', '"postcopy-ac', 'tive"', '}']);
    expect(wrapText('    abcdefghij', 6)).toEqual(['    ab', 'cdefgh', 'ij']);
  });
});

describe('wrapWords', () => {
  it("flows a lab text's lines together, keeps blank lines between paragraphs, and splits words longer than a row", () => {
    expect(wrapWords('one two\nthree four five\n\nsix', 9)).toEqual(['one two', 'three', 'four five', '', 'six']);
    expect(wrapWords('abcdefghijkl', 5)).toEqual(['abcde', 'fghij', 'kl']);
    // A long word breaks after a '/' or '-' in the second half of the row, where there is one.
    expect(wrapWords('see tests/integration/recovery/double-failures.test.ts', 32)).toEqual(['see', 'tests/integration/recovery/', 'double-failures.test.ts']);
  });
  it('sets a line indented past the text apart: a row of its own, indented, the prose going on below it', () => {
    const text = 'The tool:\n  postcopy-lab recovery-source FILE --qmp SOCK\nIt checks every record.';
    expect(wrapWords(text, 24)).toEqual(['The tool:', '  postcopy-lab', '  recovery-source FILE', '  --qmp SOCK', 'It checks every record.']);
    // Two set-apart lines stay two; too narrow a panel for an indent gets none.
    expect(wrapWords('Do:\n  a b\n  c d\nDone.', 20)).toEqual(['Do:', '  a b', '  c d', 'Done.']);
    expect(wrapWords('Do:\n  a b\nDone.', 8)).toEqual(['Do:', 'a b', 'Done.']);
  });
});
