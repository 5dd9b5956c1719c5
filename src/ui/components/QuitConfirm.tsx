import { Box, Text } from 'ink';
import { isPaused } from '../../sim/states.js';
import type { SideAtRisk } from '../use-lab-keys.js';
import { wrapWords } from '../format.js';
import { Panel } from './Panel.js';

/** `postcopy-paused (source and destination)`, or each side's state when they differ. */
function describeStates(atRisk: SideAtRisk[]): string {
  const states = [...new Set(atRisk.map((r) => r.status))];
  if (states.length === 1) return `${states[0]} (${atRisk.map((r) => r.side).join(' and ')})`;
  return atRisk.map((r) => `${r.status} (${r.side})`).join(', ');
}

/** Asked before quitting during postcopy: say plainly what quitting does to the guest. */
export function QuitConfirm(props: { atRisk: SideAtRisk[]; width: number; height: number }) {
  const paused = props.atRisk.some((r) => isPaused(r.status));
  return (
    <Panel title="Quit?" width={props.width} height={props.height}>
      {/* Wrapped here: Ink's own wrap began each next line with the blank it broke at. */}
      {wrapWords(`The migration is ${describeStates(props.atRisk)}.`, props.width).map((l, i) => (
        <Text key={`s${i}`} color="yellow" bold wrap="truncate">
          {l}
        </Text>
      ))}
      {wrapWords(
        `The guest's memory is split between the two hosts: quitting stops both VMs and the guest is lost.${paused ? ' Recovering first (migrate-recover) keeps it.' : ' Letting the migration complete first keeps it.'}`,
        props.width,
      ).map((l, i) => (
        <Text key={`w${i}`} wrap="truncate">
          {l}
        </Text>
      ))}
      <Box marginTop={1}>
        <Text>
          <Text bold color="cyan">
            y
          </Text>{' '}
          quit anyway{'   '}
          <Text bold color="cyan">
            n
          </Text>
          /
          <Text bold color="cyan">
            Esc
          </Text>{' '}
          stay
        </Text>
      </Box>
    </Panel>
  );
}
