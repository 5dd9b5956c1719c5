import { Box, Text } from 'ink';
import type { PagesInfo, RamStats } from '../../types.js';
import { fmtBytes } from '../format.js';
import { CELL_STYLE } from '../theme.js';
import { Panel } from './Panel.js';

type CellKind = keyof typeof CELL_STYLE;
const KINDS: CellKind[] = ['R', 'r', 'q', '.'];

/**
 * Fit a map of `map.length` cells into at most `cells` cells. Each output cell summarises a
 * run of input cells: all present stays 'R', anything requested or in flight shows as 'q'
 * (holes a vCPU is waiting on matter most), some present is 'r', otherwise '.'.
 */
export function resampleMap(map: string, cells: number): string {
  if (cells <= 0 || map.length === 0) return '';
  if (map.length <= cells) return map;
  let out = '';
  for (let i = 0; i < cells; i++) {
    const from = Math.floor((i * map.length) / cells);
    const to = Math.max(from + 1, Math.floor(((i + 1) * map.length) / cells));
    const run = map.slice(from, to);
    if (run.includes('q')) out += 'q';
    else if (/^R+$/.test(run)) out += 'R';
    else if (/[Rr]/.test(run)) out += 'r';
    else out += '.';
  }
  return out;
}

/** Split `cells` into runs of equal kind so a row is a handful of <Text> nodes, not one per cell. */
function runs(row: string): { kind: CellKind; n: number }[] {
  const out: { kind: CellKind; n: number }[] = [];
  for (const ch of row) {
    const kind = (KINDS.includes(ch as CellKind) ? ch : '.') as CellKind;
    const last = out[out.length - 1];
    if (last && last.kind === kind) last.n++;
    else out.push({ kind, n: 1 });
  }
  return out;
}

function Legend() {
  return (
    <Text wrap="truncate">
      {KINDS.map((k) => (
        <Text key={k}>
          <Text color={CELL_STYLE[k].color}>{CELL_STYLE[k].glyph}</Text>
          <Text dimColor>
            {CELL_STYLE[k].label}
            {k === '.' ? '' : ' '}
          </Text>
        </Text>
      ))}
    </Text>
  );
}

/**
 * The destination's memory as a grid: the background push fills it, vCPU faults punch
 * requested cells into it, the walker sweeps it. Without a map (the QEMU backend has no
 * per-page view) it says so and shows what it can.
 */
export function PageMap(props: { pages?: PagesInfo; ram?: Partial<RamStats>; width: number; height: number }) {
  const { pages, ram, width, height } = props;
  const gridRows = Math.max(0, height - 1);
  if (!pages?.map) {
    const remaining = pages
      ? `${pages.total - pages.received} of ${pages.total} pages remaining`
      : ram?.remaining !== undefined && ram.total !== undefined
        ? `${fmtBytes(ram.remaining)} of ${fmtBytes(ram.total)} remaining`
        : 'no migration data yet';
    return (
      <Panel title="Pages" width={width} height={height}>
        <Text wrap="truncate">{remaining}</Text>
        <Text dimColor wrap="wrap">
          {pages
            ? 'No page map: this backend reports counts only.'
            : 'No page map: the QEMU backend has no per-page view (x-query-pages is the sim’s).'}
        </Text>
      </Panel>
    );
  }
  const cells = resampleMap(pages.map, width * gridRows);
  const rows: string[] = [];
  for (let i = 0; i < cells.length; i += width) rows.push(cells.slice(i, i + width));
  return (
    <Panel title="Pages" extra={<Legend />} width={width} height={height}>
      {rows.map((row, i) => (
        <Box key={i} height={1}>
          <Text wrap="truncate">
            {runs(row).map((r, j) => (
              <Text key={j} color={CELL_STYLE[r.kind].color}>
                {CELL_STYLE[r.kind].glyph.repeat(r.n)}
              </Text>
            ))}
          </Text>
        </Box>
      ))}
    </Panel>
  );
}
