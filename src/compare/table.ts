/**
 * The comparison as a table a person reads: one row per strategy, a dash where a number could
 * not be measured, and the notes under it (why a column is empty, what the sim does not model).
 */
import type { StrategyResult } from './run.js';
import { wrapWords } from '../ui/format.js';

const MiB = 1024 * 1024;

export const COMPARE_COLUMNS = ['strategy', 'result', 'total s', 'downtime ms', 'sent MiB', 'work lost', 'worst stall ms', 'to 90% s'] as const;

const DASH = '—';

/** Completed, or not and why, with the bound or throttle that explains it. */
export function resultCell(r: StrategyResult): string {
  if (r.completed) return r.throttlePct > 0 ? `completed (throttle ${r.throttlePct}%)` : 'completed';
  const why = r.reason ?? 'did not complete';
  if (why === 'max throttle reached') return `max throttle reached (${r.throttlePct}%${r.bound ? `, in ${r.bound}` : ''})`;
  if (why === 'did not converge') return `did not converge in ${r.bound ?? 'the bound'}${r.throttlePct ? ` (throttle ${r.throttlePct}%)` : ''}`;
  // A refusal or failure carries QEMU's own sentence: keep the cell short, the note has it all.
  return why.length > 40 ? `${why.slice(0, 39)}…` : why;
}

function workCell(r: StrategyResult): string {
  if (r.guestWorkLostPct === null || r.guestWorkLostS === null) return DASH;
  return `${r.guestWorkLostPct.toFixed(1)}% (${r.guestWorkLostS.toFixed(1)} s)`;
}

const num = (n: number | null, f: (n: number) => string) => (n === null ? DASH : f(n));

/** One row's cells, in COMPARE_COLUMNS order. */
export function rowCells(r: StrategyResult): string[] {
  const refused = r.reason?.startsWith('refused') ?? false;
  return [
    r.strategy,
    resultCell(r),
    refused ? DASH : (r.totalMs / 1000).toFixed(1),
    num(r.downtimeMs, (n) => String(Math.round(n))),
    refused ? DASH : (r.bytesSent / MiB).toFixed(0),
    workCell(r),
    num(r.worstStallMs, (n) => String(Math.round(n))),
    num(r.recoverTo90Ms, (n) => (n / 1000).toFixed(1)),
  ];
}

/** Columns given up first when the table must fit a narrow screen, in that order. */
const DROP_ORDER = ['sent MiB', 'downtime ms', 'to 90% s', 'worst stall ms'] as const;

/**
 * The table, and below it a line per note (numbered as the rows they belong to). With `width`
 * (a terminal's columns), columns are left out, least telling first, until it fits, and a note
 * says which: a cell cut in half would be a wrong number.
 */
export function formatCompareTable(results: readonly StrategyResult[], opts: { width?: number } = {}): string {
  const all = results.map(rowCells);
  const widthOf = (keep: number[]) =>
    keep.reduce((sum, i) => sum + Math.max(COMPARE_COLUMNS[i]!.length, ...all.map((r) => r[i]!.length)), 0) + 2 * (keep.length - 1);
  let keep = COMPARE_COLUMNS.map((_, i) => i);
  const hidden: string[] = [];
  for (const name of DROP_ORDER) {
    if (opts.width === undefined || widthOf(keep) <= opts.width) break;
    keep = keep.filter((i) => COMPARE_COLUMNS[i] !== name);
    hidden.push(name);
  }
  const header = keep.map((i) => COMPARE_COLUMNS[i]!);
  const rows = all.map((r) => keep.map((i) => r[i]!));
  const cells = [header, ...rows];
  const w = header.map((_, j) => Math.max(...cells.map((r) => r[j]!.length)));
  // Numbers right-aligned, words left-aligned.
  const line = (r: string[]) => r.map((c, j) => (j < 2 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join('  ');
  const out = [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)];
  const notes: string[] = [];
  for (const r of results) {
    const refusedLong = r.reason && !r.completed && r.reason !== 'did not converge' && r.reason !== 'max throttle reached' && r.reason.length > 40;
    if (refusedLong) notes.push(`${r.strategy}: ${r.reason}`);
    if (r.note) notes.push(`${r.strategy}: ${r.note}`);
    if (r.guestNote && !r.reason?.startsWith('refused')) notes.push(`${r.strategy}: guest columns: ${r.guestNote}`);
    if (r.recoverTo90Ms === null && r.guestWorkLostPct !== null) notes.push(`${r.strategy}: still below 90% of its speed when the run ended`);
  }
  if (hidden.length) notes.push(`not shown at this width: ${hidden.join(', ')} (a wider terminal, or postcopy-lab compare, shows them)`);
  // Notes that say the same for every row are said once.
  const unique = [...new Set(notes)];
  // With a width, a note wraps under itself: cut at the edge, the summary screen lost the end
  // of "not shown at this width: … (a wider terminal, or postcopy-lab compare, shows them)".
  const noteLines = (n: string) =>
    opts.width === undefined ? [`  ${n}`] : wrapWords(n, Math.max(20, opts.width - 4)).map((l, i) => (i === 0 ? `  ${l}` : `    ${l}`));
  if (unique.length) out.push('', ...unique.flatMap(noteLines));
  return out.join('\n');
}
