import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseSize, UnitError } from '../../../src/lab/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1.5m', 90_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['0ms', 0],
    [' 3 s ', 3000],
    ['0.25s', 250],
    [750, 750],
    [0, 0],
  ] as const)('%j -> %i ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    ['2', 'add a unit'],
    ['2 seconds', 'expected a duration like 500ms, 2s or 1.5m'],
    ['-1s', 'expected a duration'],
    ['s', 'expected a duration'],
    ['', 'expected a duration'],
    ['1e3ms', 'expected a duration'],
  ])('refuses %j', (input, text) => {
    expect(() => parseDuration(input)).toThrow(UnitError);
    expect(() => parseDuration(input)).toThrow(text);
  });

  it('refuses negative and non-finite numbers', () => {
    expect(() => parseDuration(-1)).toThrow(UnitError);
    expect(() => parseDuration(Number.NaN)).toThrow(UnitError);
    expect(() => parseDuration(Infinity)).toThrow(UnitError);
  });

  it('formats back', () => {
    expect(formatDuration(500)).toBe('500ms');
    expect(formatDuration(2000)).toBe('2s');
    expect(formatDuration(120_000)).toBe('2m');
    expect(formatDuration(0)).toBe('0ms');
  });
});

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['256M', 256 * 2 ** 20],
    ['1G', 2 ** 30],
    ['1T', 2 ** 40],
    ['64K', 65536],
    ['64k', 65536],
    ['64KiB', 65536],
    ['64KB', 65536],
    ['2MiB', 2 * 2 ** 20],
    ['1GiB', 2 ** 30],
    ['1.5G', 1.5 * 2 ** 30],
    ['512B', 512],
    ['0', 0],
    [8192, 8192],
  ] as const)('%j -> %i bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each([
    ['256Q', 'expected a size like 4096, 64K, 256M or 1G'],
    ['M', 'expected a size'],
    ['-1K', 'expected a size'],
    ['0.3K', 'not a whole number of bytes'],
    ['1.5', 'not a whole number of bytes'],
    ['99999999T', 'too large'],
    ['1 G B', 'expected a size'],
  ])('refuses %j', (input, text) => {
    expect(() => parseSize(input)).toThrow(UnitError);
    expect(() => parseSize(input)).toThrow(text);
  });

  it('refuses negative and fractional numbers', () => {
    expect(() => parseSize(-1)).toThrow(UnitError);
    expect(() => parseSize(1.5)).toThrow(UnitError);
  });
});
