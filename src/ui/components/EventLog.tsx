import { Text } from 'ink';
import { memo } from 'react';
import type { LabEvent } from '../../types.js';
import { fit, fmtT } from '../format.js';
import { moreAbove, moreBelow, type ScrollWindow } from '../scroll.js';
import { EVENT_COLOUR } from '../theme.js';
import { Panel } from './Panel.js';

const SIDE: Record<string, string> = { source: 'src', destination: 'dst' };

/** The columns before an event's text: time (7 and a space), kind, side. */
const KIND_WIDTH = 8;
const SIDE_WIDTH = 4;
const PREFIX_WIDTH = 8 + KIND_WIDTH + SIDE_WIDTH;

const textColour = (e: LabEvent): string | undefined => (e.kind === 'error' ? 'red' : e.kind === 'warning' ? 'yellow' : undefined);

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ');

/** One event on one row, cut to it: time, kind, side, then `text`. */
function EventRow({ e, text }: { e: LabEvent; text: string }) {
  return (
    <Text wrap="truncate">
      <Text dimColor>{fmtT(e.t).padStart(7)} </Text>
      <Text color={EVENT_COLOUR[e.kind]}>{fit(e.kind, KIND_WIDTH)}</Text>
      <Text dimColor>{fit(e.side ? SIDE[e.side] : '', SIDE_WIDTH)}</Text>
      <Text color={textColour(e)}>{text}</Text>
    </Text>
  );
}

/**
 * An event's text as the focused log shows it: whole, wrapped under the text column (a hanging
 * indent past time, kind and side), so a long QMP command or error can be read to its end. A row
 * may break after a space or a comma: QMP arguments are JSON without spaces.
 */
export function eventLines(e: LabEvent, width: number): string[] {
  const w = Math.max(10, width - PREFIX_WIDTH);
  const lines: string[] = [];
  let line = '';
  for (let piece of oneLine(e.text).split(/(?<=[ ,])/)) {
    if (line && (line + piece).trimEnd().length > w) {
      lines.push(line.trimEnd());
      line = '';
      piece = piece.trimStart();
    }
    for (; piece.trimEnd().length > w; piece = piece.slice(w)) lines.push(piece.slice(0, w));
    line += piece;
  }
  if (line.trimEnd() || lines.length === 0) lines.push(line.trimEnd());
  return lines;
}

/**
 * Which events the log shows in `rows` rows: the newest (`top` null), or from the event `top`
 * on, held there while new ones arrive, so a line can be read however busy the run is. An
 * event that fell out of the bounded list leaves the window at the oldest kept.
 *
 * `height` is the rows an event takes: 1 unfocused (cut to one line), its wrapped lines when the
 * log is focused. Only whole events are shown, except one taller than the panel, shown cut.
 */
export function logWindow(events: readonly LabEvent[], top: LabEvent | null, rows: number, height: (e: LabEvent) => number = () => 1): ScrollWindow {
  const n = events.length;
  // Markers live in the title row: every row shows an event.
  const r = Math.max(0, rows);
  // One past the last whole event that fits from `start` (the first one even when taller).
  const endFrom = (start: number): number => {
    if (r === 0) return start;
    let end = start;
    for (let used = 0; end < n && (end === start || used + height(events[end]) <= r); end++) used += height(events[end]);
    return end;
  };
  // Following the newest: from the oldest of the newest events that fit whole.
  let maxStart = n;
  for (let used = 0; maxStart > 0 && used + height(events[maxStart - 1]) <= r; maxStart--) used += height(events[maxStart - 1]);
  if (maxStart === n && n > 0 && r > 0) maxStart = n - 1; // the newest alone is taller than the panel
  const start = top === null ? maxStart : Math.min(maxStart, Math.max(0, events.indexOf(top)));
  const end = endFrom(start);
  return { start, end, above: start, below: n - end, maxStart, page: Math.max(1, end - start - 1) };
}

/**
 * The event log, oldest at the top, one line each (cut, never wrapped) so the log has a fixed
 * height; its title row says how many events lie above and below the window. Focused (Tab), it
 * shows each event whole, wrapped: what was cut to fit is read there.
 */
function EventLogView(props: { events: LabEvent[]; top?: LabEvent | null; width: number; height: number; focused?: boolean }) {
  const { events, width, height, focused } = props;
  // The log is 3 rows at 80x24: its "more" markers go in the title row, not over events.
  const rows = Math.max(0, height - 1);
  const w = logWindow(events, props.top ?? null, rows, focused ? (e) => eventLines(e, width).length : undefined);
  const visible = events.slice(w.start, w.end);
  const cut = !focused && visible.some((e) => PREFIX_WIDTH + oneLine(e.text).length > width);
  const marks = [
    w.above > 0 ? `${moreAbove(w.above)}${focused ? ' · PgUp' : ''}` : '',
    w.below > 0 ? `${moreBelow(w.below)}${focused ? ' · End: newest' : ''}` : '',
    !focused && (w.above > 0 || w.below > 0 || cut) ? `Tab ${cut ? 'reads whole lines' : 'scrolls'}` : focused ? '‹ ↑↓ PgUp PgDn scroll here' : '',
  ].filter(Boolean);
  const row = (e: LabEvent, key: string, text: string) => <EventRow key={key} e={e} text={text} />;
  let body = focused
    ? visible.flatMap((e, i) => {
        const [first, ...rest] = eventLines(e, width);
        return [
          row(e, `${w.start + i}`, first),
          ...rest.map((line, j) => (
            <Text key={`${w.start + i}.${j}`} wrap="truncate" color={textColour(e)}>
              {' '.repeat(PREFIX_WIDTH)}
              {line}
            </Text>
          )),
        ];
      })
    : visible.map((e, i) => row(e, `${w.start + i}`, oneLine(e.text)));
  if (body.length > rows && rows < 2) body = body.slice(0, rows);
  else if (body.length > rows) {
    // One event taller than the panel: its last row shown says it goes on.
    const last = eventLines(visible[0], width)[rows - 1] ?? '';
    body = [
      ...body.slice(0, Math.max(0, rows - 1)),
      <Text key="cut" wrap="truncate" color={textColour(visible[0])}>
        {' '.repeat(PREFIX_WIDTH)}
        {fit(`${last} …`, width - PREFIX_WIDTH)}
      </Text>,
    ];
  }
  return (
    <Panel
      title="Events"
      extra={marks.length ? <Text color="cyan" wrap="truncate">{marks.join(' · ')}</Text> : undefined}
      width={width}
      height={height}
    >
      {body}
    </Panel>
  );
}

/** Its props are slices the session replaces only when they change: a shallow compare is exact. */
export const EventLog = memo(EventLogView);

/**
 * One row left under the advice (three advice lines at 80×24): the newest event, cut to the row,
 * with no panel title. That row was left blank, and what just happened is what the advice is about.
 */
function NewestEventView({ events }: { events: readonly LabEvent[] }) {
  const e = events[events.length - 1];
  return e ? <EventRow e={e} text={oneLine(e.text)} /> : <Text> </Text>;
}

export const NewestEvent = memo(NewestEventView);
