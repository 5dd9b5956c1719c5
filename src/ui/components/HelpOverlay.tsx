import { Box, Text } from 'ink';
import { Panel } from './Panel.js';

export const HELP_KEYS: [string, string][] = [
  ['c', 'cut the link both ways (connections reset: both sides notice at once)'],
  ['b', 'blackhole the link both ways (packets vanish: the sides notice only on timeout)'],
  ['l', 'link menu: any fault (↑↓), both ways or one (d), Enter applies'],
  ['u', 'restore the link: both directions up, no latency, no cap'],
  ['p', 'migrate-pause on the source, then the destination (postcopy only)'],
  ['h', 'show the next hint for this step'],
  ['s', 'show me: run this step’s commands for you'],
  [':', 'QMP console: type a command to the source or destination'],
  ['?', 'this help (in the console: on an empty line)'],
  ['q', 'quit (asks first when a migration is postcopy-paused)'],
  ['Ctrl-C', 'quit now: stops both VMs'],
];

export const CONSOLE_HELP: [string, string][] = [
  ['Tab', 'complete a command name; on an empty line or after the name: switch target'],
  ['↑ ↓', 'history'],
  ['Enter', 'send, e.g. migrate-recover {"uri": "tcp:127.0.0.1:4445"}'],
  ['Ctrl-U', 'clear the line'],
  ['Esc', 'close the console'],
];

/** Every key, what it does, and how steps advance. */
export function HelpOverlay(props: { width: number; height: number }) {
  const keyW = 8;
  return (
    <Panel title="Help" width={props.width} height={props.height}>
      {HELP_KEYS.map(([k, d]) => (
        <KeyRow key={k} keyText={k} text={d} width={keyW} />
      ))}
      <Text bold>Console</Text>
      {CONSOLE_HELP.map(([k, d]) => (
        <KeyRow key={k} keyText={k} text={d} width={keyW} />
      ))}
      <Box marginTop={1}>
        <Text dimColor wrap="wrap">
          A step completes by itself when its condition becomes true; there is no key to skip one. Esc or ? closes this help.
        </Text>
      </Box>
    </Panel>
  );
}

/** One line of the help: the key, padded, then what it does. */
function KeyRow(props: { keyText: string; text: string; width: number }) {
  return (
    <Text wrap="truncate">
      <Text bold color="cyan">
        {props.keyText.padEnd(props.width)}
      </Text>
      {props.text}
    </Text>
  );
}
