import { Box, Text } from 'ink';
import { memo } from 'react';
import type { SessionState } from '../../types.js';
import { fit, fmtBytes, fmtMBps } from '../format.js';
import { GlyphRow } from './GlyphRow.js';

const BARS = '▁▂▃▄▅▆▇█';

/**
 * `values` as a string of `width` bar characters, newest on the right. When there are more
 * values than cells each cell shows the mean of its bucket; fewer values leave blanks on the
 * left so the line fills in from the right as time passes.
 */
export function sparkline(values: readonly number[], width: number, max?: number): string {
  if (width <= 0) return '';
  let v = values.slice();
  if (v.length > width) {
    const buckets: number[] = [];
    for (let i = 0; i < width; i++) {
      const from = Math.floor((i * v.length) / width);
      const to = Math.max(from + 1, Math.floor(((i + 1) * v.length) / width));
      const run = v.slice(from, to);
      buckets.push(run.reduce((a, b) => a + b, 0) / run.length);
    }
    v = buckets;
  }
  const top = max ?? Math.max(0, ...v);
  const line = v
    .map((x) => {
      if (!(top > 0) || !(x > 0)) return ' ';
      const i = Math.min(BARS.length - 1, Math.floor((x / top) * (BARS.length - 1) + 0.5));
      return BARS[Math.max(0, i)];
    })
    .join('');
  return ' '.repeat(width - line.length) + line;
}

/**
 * Throughput and remaining over the last minute. `history.mbps` is QEMU's megabits per second
 * (shown as MB/s); `history.remaining` is QEMU's ram.remaining, in bytes (– before the migration starts).
 */
function SparklineView(props: { history: SessionState['history']; width: number }) {
  const { history, width } = props;
  const labelW = 10;
  const valueW = 10;
  const sparkW = Math.max(0, width - labelW - valueW - 1);
  const last = history[history.length - 1];
  return (
    <Box flexDirection="column" width={width} height={2} overflowY="hidden">
      <GlyphRow width={width}>
        <Text dimColor>{fit('MB/s 1min', labelW)}</Text>
        <Text color="green">{sparkline(history.map((h) => h.mbps), sparkW)}</Text> {fit(last ? fmtMBps(last.mbps) : '–', valueW)}
      </GlyphRow>
      <GlyphRow width={width}>
        <Text dimColor>{fit('remaining', labelW)}</Text>
        <Text color="yellow">{sparkline(history.map((h) => h.remaining ?? 0), sparkW)}</Text> {fit(last && last.remaining !== null ? fmtBytes(last.remaining) : '–', valueW)}
      </GlyphRow>
    </Box>
  );
}

/** Its props are slices the session replaces only when they change: a shallow compare is exact. */
export const Sparkline = memo(SparklineView);
