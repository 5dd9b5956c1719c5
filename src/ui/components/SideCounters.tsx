import { Box, Text } from 'ink';
import type { SideSnapshot } from '../../types.js';
import { fit, fmtBytes, fmtCount, fmtMBps, fmtUsAsMs } from '../format.js';
import { KIND_STYLE, runStateColour, stateKind, type Colour } from '../theme.js';

/** One cell of the counters table. */
export interface Cell {
  text: string;
  color?: Colour;
  bold?: boolean;
}

export const COUNTER_LABELS = [
  'state',
  'vm',
  'received',
  'req/in flight',
  're-sent/dup',
  'remaining',
  'MB/s',
  'faults p50/p99',
  'walker',
  'guest',
] as const;

/** Counters frozen this long while the migration is active are flagged on the MB/s row. */
export const STALL_SHOWN_MS = 2000;

const dash: Cell = { text: '–', color: 'gray' };

function bar(fraction: number, width: number): string {
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return '█'.repeat(n) + '░'.repeat(width - n);
}

/**
 * One side's column, one cell per COUNTER_LABELS entry. Pure, so the table's content can be
 * tested without rendering.
 */
export function sideCells(s: SideSnapshot | undefined): Cell[] {
  if (!s) return COUNTER_LABELS.map(() => dash);
  const kind = KIND_STYLE[stateKind(s.status)];
  const p = s.pages;
  const cells: Cell[] = [
    { text: s.status, color: kind.color, bold: kind.bold },
    s.alive ? { text: s.runState, color: runStateColour(s.runState) } : { text: 'not running', color: 'red' },
  ];
  if (!p) {
    const ram = s.ram;
    cells.push(
      ram?.transferred !== undefined ? { text: `${fmtBytes(ram.transferred)} sent` } : dash,
      dash,
      dash,
      ram?.remaining !== undefined ? { text: fmtBytes(ram.remaining) } : dash,
      { text: fmtMBps(ram?.mbps) },
      dash,
      dash,
      dash,
    );
    return cells;
  }
  const isSource = s.side === 'source';
  // Counters frozen while the state still says active: what a silent blackhole looks like.
  const stalledMs = s.stalledMs ?? 0;
  const rate: Cell =
    stalledMs >= STALL_SHOWN_MS && stateKind(s.status) === 'running'
      ? { text: `${fmtMBps(s.ram?.mbps)} stalled ${(stalledMs / 1000).toFixed(0)}s`, color: 'yellow', bold: true }
      : { text: fmtMBps(s.ram?.mbps) };
  const remaining = isSource ? p.missing : p.total - p.received;
  const lat = p['fault-latency-us'];
  const walker = p.walker;
  const ops = p.guest['ops-per-second'];
  const stalled = s.alive && s.runState === 'running' && ops === 0;
  cells.push(
    { text: `${p.received}/${p.total}${isSource ? ' sent' : ''}` },
    isSource ? dash : { text: `${p.requested} / ${p['in-flight']}`, color: p.requested > 0 ? 'yellow' : undefined },
    { text: isSource ? `${p.resent}` : `${p.resent} / ${p['duplicates-discarded']}` },
    { text: fmtCount(remaining), color: remaining === 0 ? 'green' : undefined },
    rate,
    isSource
      ? dash
      : {
          text: `${p['blocked-vcpus']} · ${lat.count ? `${fmtUsAsMs(lat.p50)}/${fmtUsAsMs(lat.p99)}ms` : '–'}`,
          color: p['blocked-vcpus'] > 0 ? 'yellow' : undefined,
        },
    walker.done
      ? { text: 'done', color: 'green' }
      : walker.total > 0 && (walker.active || walker.position > 0)
        ? { text: `${bar(walker.position / walker.total, 6)} ${Math.floor((100 * walker.position) / walker.total)}%${walker.active ? '' : ' idle'}` }
        : { text: 'idle', color: 'gray' },
    stalled
      ? { text: `${fmtCount(ops)} ops/s STALLED`, color: 'red', bold: true }
      : { text: `${fmtCount(ops)} ops/s`, color: s.runState === 'running' ? 'green' : 'gray' },
  );
  return cells;
}

/**
 * Live counters for both sides as one table (label, source, destination), so the two sides
 * line up row by row.
 */
export function SideCounters(props: { source?: SideSnapshot; destination?: SideSnapshot; width: number; height?: number }) {
  const { source, destination, width } = props;
  const labelW = 15;
  const colW = Math.floor((width - labelW) / 2);
  // Each column keeps one blank cell on its right so neighbouring values never touch.
  const cell = (c: Cell) => (
    <Text color={c.color} bold={c.bold}>
      {fit(c.text, colW - 1)}{' '}
    </Text>
  );
  const src = sideCells(source);
  const dst = sideCells(destination);
  return (
    <Box flexDirection="column" width={width} height={props.height ?? COUNTER_LABELS.length + 1} overflow="hidden">
      <Text wrap="truncate">
        <Text bold>{fit('Counters', labelW)}</Text>
        <Text bold>{fit('source', colW)}</Text>
        <Text bold>{fit('destination', colW)}</Text>
      </Text>
      {COUNTER_LABELS.map((label, i) => (
        <Text key={label} wrap="truncate">
          <Text dimColor>{fit(label, labelW)}</Text>
          {cell(src[i])}
          {cell(dst[i])}
        </Text>
      ))}
    </Box>
  );
}
