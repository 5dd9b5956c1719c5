/**
 * Durations and sizes as lab authors write them ("500ms", "2s", "256M", "1GiB"), turned into
 * the plain numbers the rest of the program uses: milliseconds and bytes (sizes: src/util/format.ts).
 */
import { UnitError } from '../util/format.js';

export { parseSize, UnitError } from '../util/format.js';

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;

/**
 * A duration in milliseconds. Strings need a unit (ms, s, m, h; fractions allowed: "1.5m");
 * a number is already milliseconds. The result is rounded to a whole millisecond.
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new UnitError(`expected a duration of zero or more milliseconds, got ${value}`);
    }
    return Math.round(value);
  }
  const text = value.trim();
  const m = DURATION_RE.exec(text);
  if (!m) {
    const hint = /^\d+(\.\d+)?$/.test(text) ? ' (add a unit: ms, s, m or h)' : '';
    throw new UnitError(`expected a duration like 500ms, 2s or 1.5m, got '${value}'${hint}`);
  }
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
  if (!Number.isSafeInteger(ms)) throw new UnitError(`duration '${value}' is too long`);
  return ms;
}

/** Prints milliseconds back the way an author would write them ("1500ms", "2s", "1m"). */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms !== 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
