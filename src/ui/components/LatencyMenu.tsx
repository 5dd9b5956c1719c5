import { Text } from 'ink';
import type { LinkSnapshot } from '../../types.js';
import { LATENCY_PRESETS, MENU_DIRECTIONS } from '../lab-state.js';
import { describeDirection } from './LinkPanel.js';
import { Panel } from './Panel.js';

/** Presets for latency, jitter, rate and loss, applied to the chosen direction with Enter. */
export function LatencyMenu(props: { preset: number; direction: number; link?: LinkSnapshot; width: number; height: number }) {
  const { preset, direction, link, width, height } = props;
  return (
    <Panel title="Link: latency / rate" width={width} height={height}>
      <Text wrap="truncate">
        <Text dimColor>direction </Text>
        {MENU_DIRECTIONS.map((d, i) => (
          <Text key={d} inverse={i === direction} bold={i === direction}>
            {' '}
            {d}{' '}
          </Text>
        ))}
      </Text>
      {LATENCY_PRESETS.map((p, i) => (
        <Text key={p.label} wrap="truncate" color={i === preset ? 'cyan' : undefined} bold={i === preset}>
          {i === preset ? '› ' : '  '}
          {p.label}
        </Text>
      ))}
      {link ? (
        <Text dimColor wrap="truncate">
          now: src→dst {link['source-to-destination'].state} {describeDirection(link['source-to-destination'])}
        </Text>
      ) : null}
    </Panel>
  );
}
