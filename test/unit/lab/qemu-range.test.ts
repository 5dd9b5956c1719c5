import { describe, expect, it } from 'vitest';
import { inRange, parseRange, parseVersion, QemuRangeError } from '../../../src/lab/qemu-range.js';

describe('QEMU version ranges', () => {
  it.each([
    ['>=8.2', '7.2', false],
    ['>=8.2', '8.2', true],
    ['>=8.2', '10.0', true], // numbers, not strings: 10.0 is after 8.2
    ['<9.1', '9.0', true],
    ['<9.1', '9.1', false],
    ['<=7.2', '7.2', true],
    ['>7.2', '7.2', false],
    ['=10.0', '10.0', true],
    ['10.0', '10.0', true],
    ['>=7.2 <10.0', '7.2', true],
    ['>=7.2 <10.0', '10.0', false],
    ['>=8.2', '7.2.22', false],
  ])('%s holds for %s: %s', (range, version, holds) => {
    expect(inRange(parseRange(range), version)).toBe(holds);
  });

  it('keeps the text as written, spaces collapsed', () => {
    expect(parseRange('  >=7.2    <9.1 ').source).toBe('>=7.2 <9.1');
    expect(parseRange('>=7.2 <9.1').clauses).toEqual([
      { op: '>=', major: 7, minor: 2 },
      { op: '<', major: 9, minor: 1 },
    ]);
  });

  it.each([
    ['', /empty string/],
    ['>=8', /a version is major\.minor: write >=8\.0/],
    ['>=7.2.22', /ranges name major\.minor only: write >=7\.2/],
    ['=>8.2', /operators are >=, <=, <, >, =/],
    ['~8.2', /'~8\.2' in "~8\.2" is not a version clause; expected a QEMU version range/],
    ['>=8.2 || <7.0', /'\|\|'/],
  ])('refuses %j, saying what is wrong', (range, message) => {
    expect(() => parseRange(range)).toThrow(QemuRangeError);
    expect(() => parseRange(range)).toThrow(message);
  });

  it('a version that is not one', () => {
    expect(parseVersion('10.0')).toEqual([10, 0]);
    expect(() => parseVersion('ten')).toThrow("'ten' is not a QEMU version (expected major.minor, like 7.2 or 10.0)");
  });
});
