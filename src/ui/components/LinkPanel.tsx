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

/** One direction as text: latency (± jitter), rate cap, loss, then traffic forwarded/dropped. */
export function describeDirection(d: LinkDirectionSnapshot, compact = false): string {
  const bytes = (n: number) => (compact ? fmtBytes(n).replace(/ ([KMGT])iB$/, '$1').replace(/ B$/, '') : fmtBytes(n));
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
        return (
          <Text key={dir} wrap="truncate">
            <Text dimColor>{SHORT[dir]} </Text>
            <Text color={STATE_COLOUR[d.state]} bold={d.state !== 'up'}>
              {fit(d.state, 10)}
            </Text>
            {describeDirection(d, width < 60)}
          </Text>
        );
      })}
    </Panel>
  );
}
