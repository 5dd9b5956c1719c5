import { Text } from 'ink';
import type { LabEvent } from '../../types.js';
import { fit, fmtT } from '../format.js';
import { EVENT_COLOUR } from '../theme.js';
import { Panel } from './Panel.js';

const SIDE: Record<string, string> = { source: 'src', destination: 'dst' };

/**
 * The last events that fit, oldest at the top, one line each (truncated, never wrapped) so the
 * log has a fixed height and scrolls without jumping.
 */
export function EventLog(props: { events: LabEvent[]; width: number; height: number }) {
  const { events, width, height } = props;
  const visible = events.slice(-Math.max(0, height - 1));
  return (
    <Panel title="Events" width={width} height={height}>
      {visible.map((e, i) => (
        <Text key={events.length - visible.length + i} wrap="truncate">
          <Text dimColor>{fmtT(e.t).padStart(7)} </Text>
          <Text color={EVENT_COLOUR[e.kind]}>{fit(e.kind, 7)}</Text>
          <Text dimColor>{fit(e.side ? SIDE[e.side] : '', 4)}</Text>
          <Text color={e.kind === 'error' ? 'red' : e.kind === 'warning' ? 'yellow' : undefined}>{e.text.replace(/\s*\n\s*/g, ' ')}</Text>
        </Text>
      ))}
    </Panel>
  );
}
