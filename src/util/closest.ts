/**
 * The names closest to a word someone mistyped: virsh subcommands (src/libvirt/virsh-typo.ts)
 * and QMP commands (src/qmp/console.ts) answer "did you mean …?" with them.
 */

/** Edit distance (insertions, deletions, substitutions, and a swap of two neighbours counts one). */
export function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The `candidates` closest to `word`, nearest first (at most `max`): within a third of the longer
 * name's length in edits, so `migrate-postcop` finds migrate-postcopy and `migrate-cancel` finds
 * migrate_cancel, while a word like none of them finds nothing.
 */
export function closest(word: string, candidates: readonly string[], max = 2): string[] {
  const w = word.toLowerCase();
  return candidates
    .map((c) => ({ c, d: distance(w, c) }))
    .filter(({ c, d }) => d > 0 && d <= Math.max(1, Math.floor(Math.max(c.length, w.length) / 3)))
    .sort((x, y) => x.d - y.d)
    .slice(0, max)
    .map(({ c }) => c);
}
