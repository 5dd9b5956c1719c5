import { Box, Text } from 'ink';
import type { Side } from '../../types.js';
import { Panel } from './Panel.js';

/** Asked before quitting while postcopy is paused: say plainly what quitting does to the guest. */
export function QuitConfirm(props: { pausedSides: Side[]; width: number; height: number }) {
  return (
    <Panel title="Quit?" width={props.width} height={props.height}>
      <Text color="yellow" bold wrap="wrap">
        The migration is postcopy-paused ({props.pausedSides.join(' and ')}).
      </Text>
      <Text wrap="wrap">
        The guest&apos;s memory is split between the two hosts: quitting stops both VMs and the guest is lost.
        Recovering first (migrate-recover) keeps it.
      </Text>
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
