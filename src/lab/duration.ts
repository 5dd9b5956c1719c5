/**
 * Durations and sizes as lab authors write them ("500ms", "2s", "256M", "1GiB"), turned into
 * the plain numbers the rest of the program uses: milliseconds and bytes.
 */

/** Thrown for a duration or size that cannot be read; the message says what was expected. */
export class UnitError extends Error {
  override readonly name = 'UnitError';
}

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

const SIZE_SHIFT: Record<string, number> = { '': 0, K: 10, M: 20, G: 30, T: 40 };

// K, KB, KiB (and lower-case k, as QEMU accepts) all mean 1024: sizes here are always binary.
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(?:([KMGTkmgt])(?:i?B)?|B)?$/;

/**
 * A size in bytes. Units are binary: K/KiB = 1024, M/MiB, G/GiB, T/TiB; "B" or no unit means
 * bytes; a number is already bytes. Fractions are allowed when the result is a whole number
 * of bytes ("1.5G", not "0.3K").
 */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new UnitError(`expected a whole number of bytes (zero or more), got ${value}`);
    }
    return value;
  }
  const text = value.trim();
  const m = SIZE_RE.exec(text);
  if (!m) {
    throw new UnitError(`expected a size like 4096, 64K, 256M or 1G (binary units), got '${value}'`);
  }
  const shift = SIZE_SHIFT[(m[2] ?? '').toUpperCase()]!;
  const bytes = Number(m[1]) * 2 ** shift;
  if (!Number.isInteger(bytes)) throw new UnitError(`size '${value}' is not a whole number of bytes`);
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`size '${value}' is too large`);
  return bytes;
}

/** Prints milliseconds back the way an author would write them ("1500ms", "2s", "1m"). */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms !== 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
