import { describe, expect, it } from 'vitest';
import { calculateLayout, COUNTERS_HEIGHT, LINK_HEIGHT, tooSmallMessage } from '../../../src/ui/layout.js';

describe('calculateLayout', () => {
  it.each([
    // columns, rows, tooSmall, mode, left, right, main, bottom, pageMap rows, sparkline
    [80, 24, false, 'compact', 32, 47, 17, 4, 3, false],
    [99, 24, false, 'compact', 38, 60, 17, 4, 3, false],
    [99, 30, false, 'compact', 38, 60, 19, 8, 5, true],
    [100, 24, false, 'wide', 40, 59, 17, 4, 3, true],
    [120, 35, false, 'wide', 48, 71, 23, 9, 9, true],
    [200, 60, false, 'wide', 64, 135, 43, 14, 29, true],
    [79, 24, true, 'compact', 32, 47, 17, 4, 3, false],
    [80, 23, true, 'compact', 32, 47, 17, 4, 3, false],
    [0, 0, true, 'compact', 32, 47, 17, 4, 3, false],
  ] as const)('%ix%i', (columns, rows, tooSmall, mode, left, right, main, bottom, pageMap, sparkline) => {
    const l = calculateLayout(columns, rows);
    expect(l.tooSmall).toBe(tooSmall);
    expect(l.mode).toBe(mode);
    expect(l.left.width).toBe(left);
    expect(l.right.width).toBe(right);
    expect(l.main.height).toBe(main);
    expect(l.bottom.height).toBe(bottom);
    expect(l.right.pageMap.height).toBe(pageMap);
    expect(l.left.sparkline !== null).toBe(sparkline);
  });

  it('fills exactly one row less than the terminal, and never more than its width', () => {
    for (let columns = 80; columns <= 240; columns += 7) {
      for (let rows = 24; rows <= 80; rows += 5) {
        const l = calculateLayout(columns, rows);
        expect(l.header.height + l.main.height + l.bottom.height + l.keyBar.height).toBe(rows - 1);
        expect(l.left.width + 1 + l.right.width).toBe(columns);
        expect(COUNTERS_HEIGHT + LINK_HEIGHT + l.right.pageMap.height).toBe(l.main.height);
        expect(l.left.steps.height + (l.left.sparkline ? l.left.sparkline.height + 1 : 0)).toBe(l.main.height);
        expect(l.bottom.height).toBeGreaterThanOrEqual(4);
        expect(l.right.pageMap.height).toBeGreaterThanOrEqual(3);
      }
    }
  });

  it.each([
    // columns, rows -> bottom, main, counters, link, page map, steps
    [80, 24, 10, 11, 11, 0, 0, 11],
    [120, 36, 16, 17, 11, 3, 3, 14],
    [200, 60, 28, 29, 11, 3, 15, 26],
  ] as const)('with the console open at %ix%i the bottom grows to about half and the right column drops what no longer fits', (columns, rows, bottom, main, counters, link, pageMap, steps) => {
    const l = calculateLayout(columns, rows, { tall: true });
    expect([l.bottom.height, l.main.height, l.right.counters.height, l.right.link.height, l.right.pageMap.height, l.left.steps.height]).toEqual([
      bottom,
      main,
      counters,
      link,
      pageMap,
      steps,
    ]);
    expect(l.header.height + l.main.height + l.bottom.height + l.keyBar.height).toBe(rows - 1);
    expect(l.right.counters.height + l.right.link.height + l.right.pageMap.height).toBeLessThanOrEqual(l.main.height);
  });

  it('says what it needs and what it has', () => {
    expect(tooSmallMessage(70, 20)).toBe('Terminal too small: need 80x24, have 70x20');
  });
});
