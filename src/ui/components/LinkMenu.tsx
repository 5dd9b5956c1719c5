import { Text } from 'ink';
import type { Direction, LinkSnapshot } from '../../types.js';
import { describeDirection as directionWords } from '../../link/fault-model.js';
import { LINK_MENU_ITEMS, MENU_DIRECTIONS } from '../lab-state.js';
import { describeDirection } from './LinkPanel.js';
import { Panel } from './Panel.js';

/** Lines the menu needs besides its title and items: the direction line, and one per direction now. */
const FIXED_LINES = 3;

/**
 * The items to show when not all fit: a window that keeps the cursor in view, scrolled as
 * little as possible. Pure, so it is tested with numbers.
 */
export function menuWindow(count: number, cursor: number, rows: number): { start: number; end: number } {
  const n = Math.max(1, Math.min(count, rows));
  const start = Math.min(Math.max(0, cursor - Math.floor(n / 2)), count - n);
  return { start, end: start + n };
}

/**
 * The link menu: every fault by hand (cut, blackhole, down, up, latency, rate and loss
 * presets) on the direction chosen with d or ←/→. The chosen item and direction carry a `›`
 * marker, so they show without colour too (NO_COLOR).
 */
export function LinkMenu(props: { item: number; direction: number; link?: LinkSnapshot; width: number; height: number }) {
  const { item, direction, link, width, height } = props;
  const { start, end } = menuWindow(LINK_MENU_ITEMS.length, item, height - 1 - FIXED_LINES);
  const now = (d: Direction) => {
    const s = link?.[d];
    return s ? `${directionWords(d)}: ${s.state}  ${describeDirection(s, true)}` : `${directionWords(d)}: -`;
  };
  return (
    <Panel title="Link: fault and direction" width={width} height={height}>
      <Text wrap="truncate">
        <Text dimColor>direction (d) </Text>
        {MENU_DIRECTIONS.map((d, i) => (
          <Text key={d} inverse={i === direction} bold={i === direction}>
            {i === direction ? '›' : ' '}
            {directionWords(d)}{' '}
          </Text>
        ))}
      </Text>
      {LINK_MENU_ITEMS.slice(start, end).map((p, k) => {
        const i = start + k;
        return (
          <Text key={p.label} wrap="truncate" color={i === item ? 'cyan' : undefined} bold={i === item}>
            {i === item ? '› ' : '  '}
            {p.label}
            {k === 0 && start > 0 ? ' ↑' : ''}
            {k === end - start - 1 && end < LINK_MENU_ITEMS.length ? ' ↓' : ''}
          </Text>
        );
      })}
      <Text dimColor wrap="truncate">
        now: {now('source-to-destination')}
      </Text>
      <Text dimColor wrap="truncate">
        {'     '}
        {now('destination-to-source')}
      </Text>
    </Panel>
  );
}
