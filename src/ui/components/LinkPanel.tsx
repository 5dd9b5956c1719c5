import { Text } from 'ink';
import { memo } from 'react';
import type { Direction, LinkDirectionSnapshot, LinkSnapshot } from '../../types.js';
import { fit, fmtBytes, fmtRate } from '../format.js';
import type { Colour } from '../theme.js';
import { Panel } from './Panel.js';
import { GlyphRow } from './GlyphRow.js';

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

export interface LinkPanelProps {
  link?: LinkSnapshot;
  width: number;
  height?: number;
}

/** What the panel shows, as text: its comparison and its render read the same thing. */
function linkView(link: LinkSnapshot, width: number): { title: string; rows: { dir: Direction; state: LinkDirectionSnapshot['state']; text: string }[] } {
  const compact = width < 60;
  return {
    title: `Link ${link.kind}${link.flapping ? ' · flapping' : ''} · ${link.connections} conn`,
    rows: (['source-to-destination', 'destination-to-source'] as const).map((dir) => ({
      dir,
      state: link[dir].state,
      text: describeDirection(link[dir], compact),
    })),
  };
}

/** The link, per direction: state, latency, rate, bytes forwarded and dropped. */
function LinkPanelView(props: LinkPanelProps) {
  const { link, width } = props;
  const height = props.height ?? 3;
  if (!link) {
    return (
      <Panel title="Link" width={width} height={height}>
        <Text dimColor>not started</Text>
      </Panel>
    );
  }
  const v = linkView(link, width);
  const compact = width < 60;
  return (
    <Panel title={v.title} width={width} height={height}>
      {v.rows.map((r) => (
        <GlyphRow key={r.dir} width={width}>
          <Text dimColor>{(compact ? SHORTER : SHORT)[r.dir]} </Text>
          <Text color={STATE_COLOUR[r.state]} bold={r.state !== 'up'}>
            {fit(r.state, 10)}
          </Text>
          {r.text}
        </GlyphRow>
      ))}
    </Panel>
  );
}

/** A new snapshot whose link reads the same (same state, same rounded byte counts) does not re-render the panel. */
export function sameLinkPanelProps(a: LinkPanelProps, b: LinkPanelProps): boolean {
  if (a.width !== b.width || a.height !== b.height) return false;
  if (a.link === b.link) return true;
  if (!a.link || !b.link) return false;
  const x = linkView(a.link, a.width);
  const y = linkView(b.link, b.width);
  return x.title === y.title && x.rows.every((r, i) => r.state === y.rows[i].state && r.text === y.rows[i].text);
}

export const LinkPanel = memo(LinkPanelView, sameLinkPanelProps);
