/**
 * QEMU version ranges in lab files: `qemu: ">=8.2"` on a lab (the versions it holds for) and the
 * keys of a step's `notes` (what a version does differently). A range is one or more clauses
 * separated by spaces, all of which must hold: `>=7.2 <9.1`. A clause is an operator (>=, <=,
 * <, >, =) and a major.minor version; a bare version means `=`. Versions compare as numbers
 * (10.0 is after 9.2), and only major.minor: what QEMU's migration code does changes by release.
 */

export const RANGE_OPERATORS = ['>=', '<=', '<', '>', '='] as const;
export type RangeOperator = (typeof RANGE_OPERATORS)[number];

export interface RangeClause {
  op: RangeOperator;
  major: number;
  minor: number;
}

/** A parsed range; `source` is the text as written, for messages. */
export interface QemuRange {
  source: string;
  clauses: RangeClause[];
}

export class QemuRangeError extends Error {
  override name = 'QemuRangeError';
}

export const RANGE_EXPECTED = 'a QEMU version range like ">=8.2" or ">=7.2 <9.1" (operators >=, <=, <, >, =; versions major.minor)';

const CLAUSE = /^(>=|<=|<|>|=)?(\d+)\.(\d+)$/;

/** Parse a range; throws QemuRangeError saying which clause is wrong and what a right one looks like. */
export function parseRange(text: string): QemuRange {
  const parts = text.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) throw new QemuRangeError(`expected ${RANGE_EXPECTED}, got an empty string`);
  const clauses = parts.map((p): RangeClause => {
    const m = CLAUSE.exec(p);
    if (!m) {
      const why = /^(>=|<=|<|>|=)?\d+$/.test(p)
        ? ` (a version is major.minor: write ${p}.0)`
        : /^(>=|<=|<|>|=)?\d+\.\d+\.\d+$/.test(p)
          ? ` (ranges name major.minor only: write ${p.replace(/\.\d+$/, '')})`
          : /^(=>|=<|==|!=)/.test(p)
            ? ` (operators are ${RANGE_OPERATORS.join(', ')})`
            : '';
      throw new QemuRangeError(`'${p}' in "${text}" is not a version clause${why}; expected ${RANGE_EXPECTED}`);
    }
    return { op: (m[1] ?? '=') as RangeOperator, major: Number(m[2]), minor: Number(m[3]) };
  });
  return { source: parts.join(' '), clauses };
}

/** "7.2" or "10.0" (a full "7.2.22" is read as 7.2) as [major, minor]; throws on anything else. */
export function parseVersion(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(version.trim());
  if (!m) throw new QemuRangeError(`'${version}' is not a QEMU version (expected major.minor, like 7.2 or 10.0)`);
  return [Number(m[1]), Number(m[2])];
}

function compare(a: [number, number], b: [number, number]): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

/** Whether `version` ("7.2", "10.0", "7.2.22") is in `range`. */
export function inRange(range: QemuRange, version: string): boolean {
  const v = parseVersion(version);
  return range.clauses.every((c) => {
    const d = compare(v, [c.major, c.minor]);
    switch (c.op) {
      case '>=':
        return d >= 0;
      case '<=':
        return d <= 0;
      case '<':
        return d < 0;
      case '>':
        return d > 0;
      case '=':
        return d === 0;
    }
  });
}
