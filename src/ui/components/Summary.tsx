import { Box, Text } from 'ink';
import type { RunSummary } from '../../types.js';
import { stepsBefore } from '../../lab/reach.js';
import { fmtDuration, wrapWords } from '../format.js';
import { summaryRows } from '../../lab/summary.js';

/** A run of text on one row, and how it is drawn. */
interface Seg {
  text: string;
  color?: string;
  bold?: boolean;
  dim?: boolean;
}
type Row = Seg[];

export interface SummaryProps {
  summary: RunSummary;
  title: string;
  lesson?: string;
  hasNext: boolean;
  /** A failed run: `r` retries this step (0-based) on fresh VMs, the earlier steps replayed. */
  retryStep?: number | null;
  notice?: string;
  /** A lab with `compare:`: its comparison's progress, then its table (src/compare/table.ts). */
  comparison?: string;
  width: number;
  /** The terminal's rows: a taller summary scrolls (`scroll`, its first row shown) above the keys, which stay. */
  height?: number;
  scroll?: number;
}

/**
 * The end screen's rows above its keys, each one terminal row wide at most: what the run did,
 * whether every page arrived intact, why it failed, and the lab's closing lesson (its
 * `summary-text`), completed or failed: the lesson is what the lab was for.
 */
export function summaryBody(props: SummaryProps): Row[] {
  const { summary: s, title, lesson, notice, width } = props;
  const inner = Math.max(10, width - 2);
  const rows: Row[] = [];
  const blank = () => rows.length > 0 && rows[rows.length - 1].length > 0 && rows.push([]);
  const para = (text: string, seg: Omit<Seg, 'text'> = {}) => {
    for (const l of wrapWords(text, inner)) rows.push([{ text: l, ...seg }]);
  };
  const head = s.ok ? '✓ Lab complete' : s.knownBug ? '⚠ Bug reproduced' : '✗ Lab failed';
  para(`${head}: ${title}`, { bold: true, color: s.ok ? 'green' : s.knownBug ? 'yellow' : 'red' });
  if (s.expectedFailure) para(`ended as the lab expects (${s.expectedFailure.reason}): ${s.expectedFailure.message}`, { color: 'green' });
  blank();
  // The same rows, labels and units as the drill's summary line (src/lab/summary.ts).
  const table: [string, string, string?][] = [
    ['time', fmtDuration(s.durationMs)],
    ...summaryRows(s).map((r): [string, string] => [r.label, r.value]),
    ['all pages verified', s.verified ? 'yes' : s.expectedFailure ? 'no, as the lab expects' : 'NO', s.verified ? 'green' : s.expectedFailure ? 'yellow' : 'red'],
  ];
  // The values in one column, two spaces after the longest label ("of them from a recovery file").
  const labelWidth = Math.max(...table.map(([label]) => label.length)) + 2;
  for (const [label, value, color] of table) rows.push([{ text: label.padEnd(labelWidth), dim: true }, { text: value, color, bold: !!color }]);
  if (s.failure) {
    blank();
    // A bug the lab declares for this QEMU: its message ends saying so (verdict.ts).
    const where = s.failure.step !== undefined ? `Step ${s.failure.step}${s.failure.stepTitle ? ` (${s.failure.stepTitle})` : ''}: ` : '';
    para(`${where}${s.failure.message}`, { color: s.knownBug ? 'yellow' : 'red' });
    if (s.failure.condition) para(`condition: ${s.failure.condition}`, { dim: true });
    if (s.failure.seen) para(`seen: ${JSON.stringify(s.failure.seen)}`, { dim: true });
  }
  if (lesson?.trim()) {
    blank();
    // The lesson tells of the run the lab intends: after another ending it must not read as this
    // run's account (found: recovery-file-window, cut before the switchover reached the destination).
    if (!s.ok && !s.knownBug) para('What the lab shows when it runs to its end:', { dim: true });
    para(lesson);
  }
  if (props.comparison) {
    blank();
    for (const l of props.comparison.split('\n')) rows.push([{ text: l.slice(0, inner) }]);
  }
  if (notice) {
    blank();
    para(notice, { color: 'yellow' });
  }
  return rows;
}

/**
 * The keys line: always on screen, below the rows, on one row. Where the long words do not fit
 * (a retry's replay, a scroll's count, at 80 columns) the short ones do, so `q quit` is never cut.
 */
export function keysRow(props: SummaryProps, more: { above: number; below: number } | null): Row {
  const key = (k: string): Seg => ({ text: k, bold: true, color: 'cyan' });
  const retry = props.retryStep ?? null;
  const build = (long: boolean): Row => {
    const row: Row = [];
    if (more) row.push(key('↑↓'), { text: ` scroll${more.below > 0 ? (long ? ` (${more.below} more below)` : ` (${more.below} more)`) : ''}  ` });
    if (retry !== null) {
      const what = retry === 0 ? 'start the lab again' : long ? `retry step ${retry + 1} (fresh VMs, ${stepsBefore(retry + 1)} replayed)` : `retry step ${retry + 1}`;
      row.push(key('r'), { text: ` ${what}  ` });
    }
    row.push(key('Enter'), { text: ' labs  ' });
    if (props.hasNext) row.push(key('n'), { text: ' next lab  ' });
    row.push(key('q'), { text: ' quit' });
    return row;
  };
  const long = build(true);
  return long.reduce((n, seg) => n + seg.text.length, 0) <= props.width - 2 ? long : build(false);
}

/** The first row `scroll` may show: the rows above the keys fill the screen and no more. */
export function summaryMaxScroll(props: SummaryProps): number {
  const body = summaryBody(props);
  const room = props.height === undefined ? Infinity : Math.max(1, props.height - 2);
  return body.length > room ? body.length - room : 0;
}

/**
 * The end screen. Taller than the terminal (a long failure, a lesson, a comparison table at 80×24),
 * its rows scroll with ↑↓/PgUp/PgDn and the keys stay on the last row: Ink drew past the bottom
 * and the terminal scrolled the title away (found playing recovery-file-window). It stays until
 * the person presses a key.
 */
export function Summary(props: SummaryProps) {
  const body = summaryBody(props);
  const room = props.height === undefined ? body.length : Math.max(1, props.height - 2);
  const top = Math.max(0, Math.min(props.scroll ?? 0, body.length - room));
  const shown = body.slice(top, top + room);
  const overflow = body.length > room ? { above: top, below: body.length - top - shown.length } : null;
  const draw = (row: Row, key: number) => (
    <Text key={key} wrap="truncate">
      {row.length === 0
        ? ' '
        : row.map((seg, i) => (
            <Text key={i} color={seg.color} bold={seg.bold} dimColor={seg.dim}>
              {seg.text}
            </Text>
          ))}
    </Text>
  );
  return (
    <Box flexDirection="column" width={props.width} paddingX={1}>
      {shown.map(draw)}
      <Box marginTop={1}>{draw(keysRow(props, overflow), -1)}</Box>
    </Box>
  );
}
