/**
 * Sizes in one place, both ways: reading what a person or a lab author writes ("256M", "1GiB")
 * and printing bytes for a person (the panels, the drill, the fault descriptions). Binary units
 * throughout, as QEMU's own size parameters are.
 */

/** Thrown for a duration or size that cannot be read; the message says what was expected. */
export class UnitError extends Error {
  override readonly name = 'UnitError';
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

/** Bytes with a binary unit: 512 B, 1.5 KiB, 12.3 MiB, 1.02 GiB. */
/**
 * Panels keep two decimals below 10 so columns do not jump as values change; words in a
 * sentence (a fault's description) pass `{ trim: true }` for 64 KiB, 1.5 MiB, 10 MiB.
 */
export function fmtBytes(n: number | undefined | null, opts: { trim?: boolean } = {}): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const digits = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${opts.trim ? +digits : digits} ${units[i]}`;
}

/** A link rate in bytes per second; 0 means no cap. */
export function fmtRate(bytesPerSec: number, opts: { trim?: boolean } = {}): string {
  if (!bytesPerSec) return 'unlimited';
  return `${fmtBytes(bytesPerSec, opts)}/s`;
}

/** A duration for people (the drill's lines, the end screen): 850 ms, 4.2 s, 3m 05s, 1h 02m. */
export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
