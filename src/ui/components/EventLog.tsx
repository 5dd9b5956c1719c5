import { Text } from 'ink';
import { memo } from 'react';
import type { LabEvent } from '../../types.js';
import { fit, fmtT } from '../format.js';
import { moreAbove, moreBelow, type ScrollWindow } from '../scroll.js';
import { EVENT_COLOUR } from '../theme.js';
import { Panel } from './Panel.js';

const SIDE: Record<string, string> = { source: 'src', destination: 'dst' };

/**
 * Which events the log shows in `rows` rows: the newest (`top` null), or from the event `top`
 * on, held there while new ones arrive, so a line can be read however busy the run is. An
 * event that fell out of the bounded list leaves the window at the oldest kept.
 */
export function logWindow(events: readonly LabEvent[], top: LabEvent | null, rows: number): ScrollWindow {
  const n = events.length;
  const r = Math.max(0, rows);
  // Markers live in the title row: every row shows an event.
  const maxStart = Math.max(0, n - r);
  const start = top === null ? maxStart : Math.min(maxStart, Math.max(0, events.indexOf(top)));
  const end = Math.min(n, start + r);
  return { start, end, above: start, below: n - end, maxStart, page: Math.max(1, r - 1) };
}

/**
 * The event log, oldest at the top, one line each (truncated, never wrapped) so the log has a
 * fixed height; its title row says how many events lie above and below the window.
 */
/** The kind column: the longest kind ('warning') and a space before the side. */
const KIND_WIDTH = 8;

function EventLogView(props: { events: LabEvent[]; top?: LabEvent | null; width: number; height: number; focused?: boolean }) {
  const { events, width, height, focused } = props;
  // The log is 3 rows at 80x24: its "more" markers go in the title row, not over events.
  const rows = Math.max(0, height - 1);
  const w = logWindow(events, props.top ?? null, rows);
  const visible = events.slice(w.start, w.end);
  const marks = [
    w.above > 0 ? `${moreAbove(w.above)}${focused ? ' · PgUp' : ''}` : '',
    w.below > 0 ? `${moreBelow(w.below)}${focused ? ' · End: newest' : ''}` : '',
    !focused && (w.above > 0 || w.below > 0) ? 'Tab scrolls' : focused ? '‹ ↑↓ PgUp PgDn scroll here' : '',
  ].filter(Boolean);
  return (
    <Panel
      title="Events"
      extra={marks.length ? <Text color="cyan" wrap="truncate">{marks.join(' · ')}</Text> : undefined}
      width={width}
      height={height}
    >
      {visible.map((e, i) => (
        <Text key={w.start + i} wrap="truncate">
          <Text dimColor>{fmtT(e.t).padStart(7)} </Text>
          <Text color={EVENT_COLOUR[e.kind]}>{fit(e.kind, KIND_WIDTH)}</Text>
          <Text dimColor>{fit(e.side ? SIDE[e.side] : '', 4)}</Text>
          <Text color={e.kind === 'error' ? 'red' : e.kind === 'warning' ? 'yellow' : undefined}>{e.text.replace(/\s*\n\s*/g, ' ')}</Text>
        </Text>
      ))}
    </Panel>
  );
}

/** Its props are slices the session replaces only when they change: a shallow compare is exact. */
export const EventLog = memo(EventLogView);
