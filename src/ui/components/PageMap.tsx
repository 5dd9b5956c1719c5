import chalk from 'chalk';
import { Text, Transform } from 'ink';
import { memo } from 'react';
import type { PagesInfo, RamStats } from '../../types.js';
import { fmtBytes, wrapWords } from '../format.js';
import { CELL_STYLE, type Colour } from '../theme.js';
import { Panel } from './Panel.js';

type CellKind = keyof typeof CELL_STYLE;
/** Legend order: most filled first. 'F' is listed only when the map (or the counters) has any. */
const KINDS: CellKind[] = ['R', 'F', 'r', 'q', '.'];

/**
 * Fit a map of `map.length` cells into at most `cells` cells. Each output cell summarises a
 * run of input cells: anything requested or in flight shows as 'q' (holes a vCPU is waiting on
 * matter most); all present stays 'R', or 'F' when some of the run came from a recovery file;
 * some present is 'r', otherwise '.'.
 */
export function resampleMap(map: string, cells: number): string {
  if (cells <= 0 || map.length === 0) return '';
  if (map.length <= cells) return map;
  const out: string[] = new Array<string>(cells);
  for (let i = 0; i < cells; i++) {
    const from = Math.floor((i * map.length) / cells);
    const to = Math.max(from + 1, Math.floor(((i + 1) * map.length) / cells));
    let q = false;
    let full = 0; // 'R' or 'F'
    let file = false;
    let some = false; // any present at all ('R', 'F' or 'r')
    for (let j = from; j < to; j++) {
      const c = map[j];
      if (c === 'q') {
        q = true;
        break;
      }
      if (c === 'R' || c === 'F') {
        full++;
        some = true;
        if (c === 'F') file = true;
      } else if (c === 'r') some = true;
    }
    out[i] = q ? 'q' : full === to - from ? (file ? 'F' : 'R') : some ? 'r' : '.';
  }
  return out.join('');
}

/** Colouring one glyph run costs one chalk call; chalk's level (NO_COLOR) applies here too. */
const paint = (color: Colour, s: string): string => chalk[color](s);

/** One row of cell letters ('R', 'q', ...) as coloured glyphs; anything else is a missing page. */
export function paintRow(row: string): string {
  let line = '';
  let runKind: CellKind | null = null;
  let runLen = 0;
  const flush = () => {
    if (runKind !== null && runLen > 0) line += paint(CELL_STYLE[runKind].color, CELL_STYLE[runKind].glyph.repeat(runLen));
  };
  for (const ch of row) {
    const kind = (ch in CELL_STYLE ? ch : '.') as CellKind;
    if (kind === runKind) runLen++;
    else {
      flush();
      runKind = kind;
      runLen = 1;
    }
  }
  flush();
  return line;
}

/**
 * The grid reaches Ink as its cell letters, one ASCII character per cell, and is painted into
 * glyphs only as Ink writes each row (a Transform). Ink measures every text's width on every
 * frame without a cache (render-node-to-output, measure-text): for ASCII that is one regex test,
 * for a row of glyphs and colour codes it is a grapheme-by-grapheme walk, ~14 % of a frame's CPU
 * when the map was written as glyphs. Every glyph is one column wide, so the layout is the same.
 */
const paintedRows = new Map<string, string>();
let paintedLevel = chalk.level;
const paintRowCached = (row: string): string => {
  // NO_COLOR (or a test) may change chalk's level: painted rows of another level are stale.
  if (chalk.level !== paintedLevel) {
    paintedRows.clear();
    paintedLevel = chalk.level;
  }
  let painted = paintedRows.get(row);
  if (painted === undefined) {
    // Rows change as pages arrive; a full cache is started afresh rather than grown forever.
    if (paintedRows.size > 2_000) paintedRows.clear();
    painted = paintRow(row);
    paintedRows.set(row, painted);
  }
  return painted;
};

/** Cell letters row by row, each row cut to `width`, to be painted by paintRowCached. */
function letterRows(cells: string, width: number): string {
  const rows: string[] = [];
  for (let i = 0; i < cells.length; i += width) rows.push(cells.slice(i, i + width).replace(/[^RFrq.]/g, '.'));
  return rows.join('\n');
}

/** Cells for the legend beside the heading "Pages": the panel's width less the title and two gaps. */
const legendRoom = (width: number): number => width - 'Pages'.length - 2;

/**
 * The legend in the panel's heading, in `room` cells: short words where the whole ones do not
 * fit (at 80 columns, with a recovery file's cells, "▚requeste…" was cut and "missing" gone).
 */
function Legend(props: { withFile: boolean; room: number }) {
  const kinds = props.withFile ? KINDS : KINDS.filter((k) => k !== 'F');
  const words = (key: 'label' | 'short') => kinds.map((k) => ({ k, word: CELL_STYLE[k][key] }));
  const long = words('label');
  const width = long.reduce((n, x) => n + 1 + x.word.length, 0) + long.length - 1;
  const chosen = width <= props.room ? long : words('short');
  const text = chosen.map(({ k, word }) => `${paint(CELL_STYLE[k].color, CELL_STYLE[k].glyph)}${chalk.dim(word)}`).join(' ');
  return <Text wrap="truncate">{text}</Text>;
}

export interface PageMapProps {
  pages?: PagesInfo;
  ram?: Partial<RamStats>;
  width: number;
  height: number;
}

/**
 * The destination's memory as a grid: the background push fills it, vCPU faults punch
 * requested cells into it, the walker sweeps it, a recovery file's pages show in their own
 * colour. Without a map (the QEMU backend has no per-page view) it says so and shows what it
 * can.
 */
function PageMapView(props: PageMapProps) {
  const { pages, ram, width, height } = props;
  const gridRows = Math.max(0, height - 1);
  if (!pages?.map) {
    const remaining = pages?.['counts-unknown']
      ? ram?.remaining !== undefined && ram.total !== undefined
        ? `source: ${fmtBytes(ram.remaining)} of ${fmtBytes(ram.total)} remaining`
        : 'the destination reports no page counts'
      : pages && pages.total === 0
        ? 'no migration data yet'
      : pages
      ? `${pages.total - pages.received} of ${pages.total} pages remaining`
      : ram?.remaining !== undefined && ram.total !== undefined
        ? `${fmtBytes(ram.remaining)} of ${fmtBytes(ram.total)} remaining`
        : 'no migration data yet';
    return (
      <Panel title="Pages" width={width} height={height}>
        <Text wrap="truncate">{remaining}</Text>
        {/* Wrapped here: Ink's own wrap began the second line with the blank it broke at. */}
        {wrapWords(
          pages?.['counts-unknown']
            ? 'No page map: libvirt reports no page counts for the destination.'
            : pages
            ? 'No page map: this backend reports counts only.'
            : 'No page map: the QEMU backend has no per-page view (x-query-pages is the sim’s).',
          width,
        ).map((line, i) => (
          <Text key={i} dimColor wrap="truncate">
            {line}
          </Text>
        ))}
      </Panel>
    );
  }
  const cells = resampleMap(pages.map, width * gridRows);
  const withFile = cells.includes('F') || (pages['from-file'] ?? 0) > 0;
  return (
    <Panel title="Pages" extra={<Legend withFile={withFile} room={legendRoom(width)} />} width={width} height={height}>
      <Transform transform={paintRowCached}>{letterRows(cells, width)}</Transform>
    </Panel>
  );
}

/**
 * The slice of the snapshot the panel shows: a new snapshot with the same map, counts and size
 * does not re-render it. Everything PageMapView reads must be compared here.
 */
export function samePageMapProps(a: PageMapProps, b: PageMapProps): boolean {
  if (a.width !== b.width || a.height !== b.height) return false;
  const p = a.pages;
  const q = b.pages;
  if (p !== q) {
    if (!p || !q) return false;
    if (p.map !== q.map || p.total !== q.total || p.received !== q.received || p['from-file'] !== q['from-file']) return false;
  }
  // ram is read only when there is no map.
  if (!p?.map && (a.ram?.remaining !== b.ram?.remaining || a.ram?.total !== b.ram?.total)) return false;
  return true;
}

export const PageMap = memo(PageMapView, samePageMapProps);
