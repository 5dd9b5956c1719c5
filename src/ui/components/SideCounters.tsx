import { Box, Text } from 'ink';
import { memo } from 'react';
import type { PagesInfo, SideSnapshot } from '../../types.js';
import { fit, fmtBytes, fmtCount, fmtMBps, fmtUsAsMs } from '../format.js';
import { isPostcopy } from '../../sim/states.js';
import { KIND_STYLE, runStateColour, stateKind, type Colour } from '../theme.js';
import { GlyphRow } from './GlyphRow.js';

/** One cell of the counters table. */
export interface Cell {
  text: string;
  /** What to show instead when `text` does not fit the column (compact layout). */
  short?: string;
  /** What to show when `short` does not fit either (80 columns: 15 cells a value). */
  tiny?: string;
  color?: Colour;
  bold?: boolean;
}

/**
 * The rows, one per counter of PagesInfo's definitions table (src/types.ts). A cell that
 * holds more than one number names each ("2 now · 1.5 vCPU·s"), so no number is unlabelled.
 */
export const COUNTER_LABELS = [
  'state',
  'pages',
  'req/in flight',
  're-sent/dup',
  'remaining',
  'MB/s',
  'vCPUs slowed',
  'guest',
  'fault p50/p99',
  'walker',
] as const;

/** The label column: the longest label and a blank. */
const LABEL_WIDTH = Math.max(...COUNTER_LABELS.map((l) => l.length)) + 1;

/** The wire quiet this long while pages should move is flagged on the MB/s row. */
export const STALL_SHOWN_MS = 2000;

/** A guest rate measured over less than this is not trusted to say "stalled". */
export const GUEST_RATE_MIN_WINDOW_MS = 1000;

const dash: Cell = { text: '–', color: 'gray' };

function bar(fraction: number, width: number): string {
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return '█'.repeat(n) + '░'.repeat(width - n);
}

/** A counter the backend does not have (PagesInfo.unreported, counts-unknown): never shown as 0. */
const NOT_REPORTED: Cell = { text: 'not reported', short: 'n/a', color: 'gray' };

/** Seconds for blocktime: one decimal, none from 100 s on (a long recovery's "0 · 140 vCPU·s" fits 80 columns). */
const secs = (ms: number) => (ms / 1000).toFixed(ms >= 100_000 ? 0 : 1);

/** The MB/s row: the rate (source only: QEMU's destination reports none), flagged when the wire is quiet. */
function rateCell(s: SideSnapshot): Cell {
  // Paused or recovering, nothing moves: QEMU keeps reporting the last rate it measured
  // (7.2 showed 3.9 MB/s for as long as a postcopy stayed paused), so it is not shown.
  const kind = stateKind(s.status);
  const moving = kind !== 'paused' && kind !== 'recovering';
  const rate = s.ram?.mbps !== undefined && moving ? fmtMBps(s.ram.mbps) : '–';
  // stalledMs counts only while pages should move (see SideSnapshot.stalledMs).
  if (s.stalledMs >= STALL_SHOWN_MS && stateKind(s.status) === 'running') {
    const quiet = `${(s.stalledMs / 1000).toFixed(0)}s`;
    return { text: `${rate === '–' ? '' : `${rate} · `}no bytes ${quiet}`, short: `stalled ${quiet}`, color: 'yellow', bold: true };
  }
  return rate === '–' ? dash : { text: rate };
}

/** The guest row: its rate while it runs here, else its run state (paused, postmigrate, …). */
function guestCell(s: SideSnapshot, g: PagesInfo['guest'] | undefined): Cell {
  if (!s.alive) return { text: 'not running', color: 'red' };
  if (s.runState !== 'running' || !g) return { text: s.runState, color: runStateColour(s.runState) };
  const ops = g['ops-per-second'];
  // Before the rate covers a second it is unknown, not zero: no STALLED at start-up.
  if ((g['window-ms'] ?? 0) < GUEST_RATE_MIN_WINDOW_MS) return ops > 0 ? { text: `${fmtCount(ops)} ops/s`, color: 'green' } : { text: '– ops/s', color: 'gray' };
  if (ops === 0) return { text: '0 ops/s STALLED', color: 'red', bold: true };
  // Where the backend knows the guest's normal speed, say how much of it is left: beside the
  // throttle (the row above), this is what auto-converge costs the guest.
  if (s.guest && s.guest.nominal > 0) {
    const pct = s.guest.percent;
    return { text: `${fmtCount(ops)}/s · ${pct}% speed`, short: `${fmtCount(ops)}/s · ${pct}%`, color: pct < 90 ? 'yellow' : 'green' };
  }
  return { text: `${fmtCount(ops)} ops/s`, color: 'green' };
}

/**
 * The destination's pages row: pages placed and, once a recovery source has connected, how
 * many of them came from its recovery file rather than from the live source.
 */
function receivedCell(p: PagesInfo): Cell {
  const fromFile = p['from-file'];
  // QEMU's destination counts nothing: its number is the source's total less remaining, which
  // fell from 9004 to 1894 at a switchover on screen, under the word "received" (found playing
  // qemu-recovery-file). Pages sent and not written since are current, not received.
  if (p['received-current']) return { text: `${p.received} current`, short: `${p.received} cur` };
  if (fromFile === undefined) return { text: `${p.received} received`, short: `${p.received} recv` };
  // At 80 columns "17319 (6969 file)" was cut to "17319 (6969 fi…": the legend's "from file"
  // colour (cyan) and an f keep both numbers whole (found playing recovery-file).
  return { text: `${p.received} received · from file ${fromFile}`, short: `${p.received} (${fromFile} file)`, tiny: `${p.received} (${fromFile}f)`, color: 'cyan' };
}

/**
 * The source's vCPU throttle (auto-converge: query-migrate's cpu-throttle-percentage); the
 * destination's cell of the same row is its vCPUs blocked on missing pages.
 */
function throttleCell(s: SideSnapshot): Cell {
  if (s.throttle === undefined) return dash;
  if (s.throttle === 0) return { text: 'not throttled', short: 'no throttle', color: 'gray' };
  return { text: `throttled ${s.throttle}%`, short: `thr ${s.throttle}%`, color: 'yellow', bold: true };
}

/**
 * The destination's vCPUs blocked now and blocktime (vCPU·s), or why a backend cannot say:
 * not measured (QEMU without postcopy-blocktime), measured but reported only at the end (QEMU
 * with it), or the total alone (QEMU never says how many vCPUs wait right now).
 */
function blocktimeCell(p: PagesInfo): Cell {
  if (p['blocktime-unknown']) return { text: 'not measured', short: 'n/a', color: 'gray' };
  if (p['blocktime-at-end']) return { text: 'QEMU: at the end', short: 'at end', color: 'gray' };
  const total = `${secs(p['blocktime-ms'])} vCPU·s`;
  if (p.unreported?.includes('blocked-vcpus')) return { text: total };
  const blocked = p['blocked-vcpus'];
  return { text: `${blocked} now · ${total}`, short: `${blocked} · ${total}`, color: blocked > 0 ? 'yellow' : undefined };
}

/**
 * One side's column, one cell per COUNTER_LABELS entry. Pure, so the table's content can be
 * tested without rendering.
 */
export function sideCells(s: SideSnapshot | undefined): Cell[] {
  if (!s) return COUNTER_LABELS.map(() => dash);
  const kind = KIND_STYLE[stateKind(s.status)];
  const p = s.pages;
  // A VM whose process is gone (qemu-recovery-file's "Lose the source host") keeps its last
  // status in the snapshot; shown bare, a killed source read as a live paused one.
  // (A source that completed and then went, as libvirt shuts its domain off, just completed.)
  // One that never took part (libvirt's destination domain before virsh migrate creates it) is
  // not yet there: "gone (was none)" read, at a lab's first step, as something already lost.
  const state: Cell =
    s.alive || s.status === 'completed'
      ? { text: s.status, color: kind.color, bold: kind.bold }
      : s.status === 'none'
        ? { text: 'no VM yet', short: 'none', color: 'gray' }
        : { text: `gone (was ${s.status})`, short: 'gone', color: 'red', bold: true };
  if (!p) {
    const ram = s.ram;
    return [
      state,
      ram?.transferred !== undefined ? { text: `${fmtBytes(ram.transferred)} sent` } : dash,
      dash,
      dash,
      ram?.remaining !== undefined ? { text: fmtBytes(ram.remaining) } : dash,
      rateCell(s),
      s.side === 'source' ? throttleCell(s) : dash,
      guestCell(s, undefined),
      dash,
      dash,
    ];
  }
  const isSource = s.side === 'source';
  // A backend without page counts for this side (libvirt's destination): say so, never zeros.
  if (p['counts-unknown']) {
    const unknown = NOT_REPORTED;
    return [state, unknown, unknown, unknown, unknown, rateCell(s), unknown, guestCell(s, undefined), unknown, dash];
  }
  const lat = p['fault-latency-us'];
  const walker = p.walker;
  // The destination's remaining means something only once the guest runs there (postcopy);
  // in precopy every page may still be replaced, so a 0 there would contradict the source.
  const dstRemaining = p.total - p.received;
  const remaining: Cell = isSource
    ? { text: fmtCount(p.missing), color: p.missing === 0 ? 'green' : undefined }
    : isPostcopy(s.status) || s.status === 'completed'
      ? { text: fmtCount(dstRemaining), color: dstRemaining === 0 ? 'green' : undefined }
      : { text: '– until postcopy', short: '– (precopy)', color: 'gray' };
  return [
    state,
    isSource ? { text: `${p.sent ?? p.received} sent` } : receivedCell(p),
    isSource ? dash : p.unreported?.includes('requested') ? NOT_REPORTED : { text: `${p.requested} / ${p['in-flight']}`, color: p.requested > 0 ? 'yellow' : undefined },
    isSource
      ? p.unreported?.includes('resent') ? NOT_REPORTED : { text: `${p.resent} re-sent` }
      : p.unreported?.includes('duplicates-discarded')
        ? NOT_REPORTED
        : { text: `${p['duplicates-discarded']} dup discarded`, short: `${p['duplicates-discarded']} dup` },
    remaining,
    rateCell(s),
    isSource
      ? throttleCell(s)
      : blocktimeCell(p),
    guestCell(s, p.guest),
    isSource ? dash : { text: lat.count ? `${fmtUsAsMs(lat.p50)}/${fmtUsAsMs(lat.p99)} ms` : '–' },
    // No walker at all (QEMU, libvirt: x-recovery-walk is the sim's): nothing to say, not "idle".
    walker.total === 0
      ? dash
      : walker.done
      ? { text: 'done', color: 'green' }
      : walker.total > 0 && (walker.active || walker.position > 0)
        ? { text: `${bar(walker.position / walker.total, 6)} ${Math.floor((100 * walker.position) / walker.total)}%${walker.active ? '' : ' idle'}` }
        : { text: 'idle', color: 'gray' },
  ];
}

/** sideCells per snapshot side: the memo's comparison and the render share one computation. */
const cellsCache = new WeakMap<SideSnapshot, Cell[]>();
function cachedCells(s: SideSnapshot | undefined): Cell[] {
  if (!s) return sideCells(s);
  let cells = cellsCache.get(s);
  if (!cells) cellsCache.set(s, (cells = sideCells(s)));
  return cells;
}

const sameCell = (a: Cell, b: Cell) => a.text === b.text && a.short === b.short && a.tiny === b.tiny && a.color === b.color && a.bold === b.bold;
const sameCells = (a: Cell[], b: Cell[]) => a.length === b.length && a.every((c, i) => sameCell(c, b[i]));

export interface SideCountersProps {
  source?: SideSnapshot;
  destination?: SideSnapshot;
  width: number;
  height?: number;
}

/** The panel's slice of the snapshot is its cells: a new snapshot showing the same text does not re-render it. */
export function sameSideCountersProps(a: SideCountersProps, b: SideCountersProps): boolean {
  return (
    a.width === b.width &&
    a.height === b.height &&
    (a.source === b.source || sameCells(cachedCells(a.source), cachedCells(b.source))) &&
    (a.destination === b.destination || sameCells(cachedCells(a.destination), cachedCells(b.destination)))
  );
}

/**
 * Live counters for both sides as one table (label, source, destination), so the two sides
 * line up row by row.
 */
export const SideCounters = memo(SideCountersView, sameSideCountersProps);

/** The longest of a cell's forms that fits `room` cells (the shortest it has, else). */
export function cellText(c: Cell, room: number): string {
  if (c.text.length <= room || c.short === undefined) return c.text;
  if (c.short.length <= room || c.tiny === undefined) return c.short;
  return c.tiny;
}

function SideCountersView(props: SideCountersProps) {
  const { source, destination, width } = props;
  // The longest label and a blank. At 80 columns that leaves 16 cells a side: the source's
  // value and the blank that keeps it off the destination's, the destination's value up to the
  // edge, so "postcopy-recover" fits both (15 cut it to "postcopy-recov…").
  const labelW = LABEL_WIDTH;
  const srcW = Math.ceil((width - labelW) / 2);
  const dstW = width - labelW - srcW;
  const cell = (c: Cell, w: number) => (
    <Text color={c.color} bold={c.bold}>
      {fit(cellText(c, w), w)}
    </Text>
  );
  const src = cachedCells(source);
  const dst = cachedCells(destination);
  return (
    <Box flexDirection="column" width={width} height={props.height ?? COUNTER_LABELS.length + 1} overflowY="hidden">
      <Text wrap="truncate">
        <Text bold>{fit('Counters', labelW)}</Text>
        <Text bold>{fit('source', srcW)}</Text>
        <Text bold>{fit('destination', dstW)}</Text>
      </Text>
      {COUNTER_LABELS.map((label, i) => (
        <GlyphRow key={label} width={width}>
          <Text dimColor>{fit(label, labelW)}</Text>
          {cell(src[i], srcW - 1)}
          <Text> </Text>
          {cell(dst[i], dstW)}
        </GlyphRow>
      ))}
    </Box>
  );
}
