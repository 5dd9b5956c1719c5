import { Text } from 'ink';
import type { Direction, LinkDirectionSnapshot, LinkSnapshot } from '../../types.js';
import { fit, fmtBytes, fmtRate } from '../format.js';
import type { Colour } from '../theme.js';
import { Panel } from './Panel.js';

const STATE_COLOUR: Record<LinkDirectionSnapshot['state'], Colour> = {
  up: 'green',
  cut: 'red',
  blackhole: 'magenta',
  down: 'red',
};

const SHORT: Record<Direction, string> = {
  'source-to-destination': 'src→dst',
  'destination-to-source': 'dst→src',
};
const SHORTER: Record<Direction, string> = {
  'source-to-destination': 's→d',
  'destination-to-source': 'd→s',
};

/** Bytes in at most four or five cells: 0, 512, 3.0K, 12M, 1.2G. */
export function shortBytes(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? String(Math.round(v)) : `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

/** One direction as text: latency (± jitter), rate cap, loss, then traffic forwarded/dropped. */
export function describeDirection(d: LinkDirectionSnapshot, compact = false): string {
  const bytes = (n: number) => (compact ? shortBytes(n) : fmtBytes(n));
  const parts = [
    `${d.latencyMs}ms${d.jitterMs ? `±${d.jitterMs}` : ''}`,
    compact && !d.rateBytesPerSec ? 'no cap' : compact ? `${bytes(d.rateBytesPerSec)}/s` : fmtRate(d.rateBytesPerSec),
  ];
  if (d.lossPercent > 0) parts.push(`loss ${d.lossPercent}%`);
  parts.push(`fwd ${bytes(d.bytesForwarded)}`, `drop ${bytes(d.bytesDropped)}`);
  return parts.join(compact ? ' ' : '  ');
}

/** The link, per direction: state, latency, rate, bytes forwarded and dropped. */
export function LinkPanel(props: { link?: LinkSnapshot; width: number; height?: number }) {
  const { link, width } = props;
  const height = props.height ?? 3;
  if (!link) {
    return (
      <Panel title="Link" width={width} height={height}>
        <Text dimColor>not started</Text>
      </Panel>
    );
  }
  const title = `Link ${link.kind}${link.flapping ? ' · flapping' : ''} · ${link.connections} conn`;
  return (
    <Panel title={title} width={width} height={height}>
      {(['source-to-destination', 'destination-to-source'] as const).map((dir) => {
        const d = link[dir];
        const compact = width < 60;
        return (
          <Text key={dir} wrap="truncate">
            <Text dimColor>{(compact ? SHORTER : SHORT)[dir]} </Text>
            <Text color={STATE_COLOUR[d.state]} bold={d.state !== 'up'}>
              {fit(d.state, 10)}
            </Text>
            {describeDirection(d, compact)}
          </Text>
        );
      })}
    </Panel>
  );
}
