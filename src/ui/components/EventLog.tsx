import { Text } from 'ink';
import type { LabEvent } from '../../types.js';
import { fit, fmtT } from '../format.js';
import { moreAbove, moreBelow, scrollWindow, tailWindow, type ScrollWindow } from '../scroll.js';
import { EVENT_COLOUR } from '../theme.js';
import { Panel } from './Panel.js';

const SIDE: Record<string, string> = { source: 'src', destination: 'dst' };

/**
 * Which events the log shows in `rows` rows: the newest (`top` null), or from the event `top`
 * on, held there while new ones arrive, so a line can be read however busy the run is. An
 * event that fell out of the bounded list leaves the window at the oldest kept.
 */
export function logWindow(events: readonly LabEvent[], top: LabEvent | null, rows: number): ScrollWindow {
  if (top === null) return tailWindow(events.length, rows, 0);
  return scrollWindow(events.length, rows, Math.max(0, events.indexOf(top)));
}

/**
 * The event log, oldest at the top, one line each (truncated, never wrapped) so the log has a
 * fixed height; scrolled back, it says how many events lie below.
 */
export function EventLog(props: { events: LabEvent[]; top?: LabEvent | null; width: number; height: number; focused?: boolean }) {
  const { events, width, height } = props;
  const w = logWindow(events, props.top ?? null, Math.max(0, height - 1));
  const visible = events.slice(w.start, w.end);
  return (
    <Panel
      title="Events"
      extra={props.focused ? <Text color="cyan" wrap="truncate">‹ ↑↓ PgUp PgDn scroll here</Text> : undefined}
      width={width}
      height={height}
    >
      {w.above > 0 ? (
        <Text color="cyan" wrap="truncate">
          {moreAbove(w.above)} · {props.focused ? 'PgUp' : 'Tab, then PgUp'}
        </Text>
      ) : null}
      {visible.map((e, i) => (
        <Text key={w.start + i} wrap="truncate">
          <Text dimColor>{fmtT(e.t).padStart(7)} </Text>
          <Text color={EVENT_COLOUR[e.kind]}>{fit(e.kind, 7)}</Text>
          <Text dimColor>{fit(e.side ? SIDE[e.side] : '', 4)}</Text>
          <Text color={e.kind === 'error' ? 'red' : e.kind === 'warning' ? 'yellow' : undefined}>{e.text.replace(/\s*\n\s*/g, ' ')}</Text>
        </Text>
      ))}
      {w.below > 0 ? (
        <Text color="cyan" wrap="truncate">
          {moreBelow(w.below)} · {props.focused ? 'PgDn, End: newest' : 'Tab, then End: newest'}
        </Text>
      ) : null}
    </Panel>
  );
}
