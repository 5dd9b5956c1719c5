/**
 * Rows measured N times each, interleaved, read against a baseline row of the same reps.
 *
 * Why: two idle runs of nearly the same code put the relay's vanilla fault p50 at +1.0 and
 * +5.8 ms over socat's; one median of 3 hid how far a single figure moves. Here every row shows
 * its median and its spread (min–max over the reps), and each comparison with the baseline is
 * made rep by rep (the two rows ran seconds apart, under the same load): the median of those
 * paired differences or ratios, their spread, and in how many reps a target held.
 */

export function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  if (!a.length) return NaN;
  const mid = (a.length - 1) / 2;
  return (a[Math.floor(mid)]! + a[Math.ceil(mid)]!) / 2;
}

const fixed = (n: number, d: number): string => (Number.isFinite(n) ? n.toFixed(d) : '-');
const signed = (n: number, d: number): string => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(d)}` : '-');

/** "median (min–max)"; just the median with one rep. */
export function spread(xs: readonly number[], d: number, sign = false): string {
  const f = sign ? signed : fixed;
  if (xs.length <= 1) return f(median(xs), d);
  return `${f(median(xs), d)} (${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)})`;
}

/** Per rep, `f(row) - f(base)` (rows and base are in rep order, one entry per rep). */
export function pairedDiff<T>(row: readonly T[], base: readonly T[], f: (r: T) => number): number[] {
  return row.map((r, i) => (base[i] === undefined ? NaN : f(r) - f(base[i]!)));
}

/** Per rep, `f(row) / f(base)`. */
export function pairedRatio<T>(row: readonly T[], base: readonly T[], f: (r: T) => number): number[] {
  return row.map((r, i) => (base[i] === undefined ? NaN : f(r) / f(base[i]!)));
}

/** "k of N reps" for how many of `xs` pass `ok`. */
export function held(xs: readonly number[], ok: (x: number) => boolean): string {
  return `${xs.filter(ok).length} of ${xs.length}`;
}

/**
 * The order of `items` for rep `i`: rotated by one each rep, so no row always runs first (a
 * fresh machine state) or right after another particular row.
 */
export function rotation<T>(items: readonly T[], i: number): T[] {
  const k = items.length ? i % items.length : 0;
  return [...items.slice(k), ...items.slice(0, k)];
}
