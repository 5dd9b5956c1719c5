import { Box, Text } from 'ink';
import type { ConsoleState } from '../lab-state.js';
import { Panel } from './Panel.js';

interface Line {
  text: string;
  color?: string;
  dim?: boolean;
}

/** The lines the console's scrollback shows: each command, then its reply as QEMU phrased it. */
export function consoleLines(c: ConsoleState): Line[] {
  const lines: Line[] = [];
  for (const e of c.output) {
    lines.push({ text: `${e.side}> ${e.line}`, dim: true });
    if (e.ok === undefined) lines.push({ text: '…', dim: true });
    else for (const l of (e.text ?? '').split('\n')) lines.push({ text: l, color: e.ok ? undefined : 'red' });
  }
  return lines;
}

/**
 * The QMP console: a command line aimed at one side, with the replies above it. It takes the
 * event log's place while open, so opening it moves nothing else.
 */
export function QmpConsole(props: { console: ConsoleState; width: number; height: number }) {
  const { console: c, width, height } = props;
  const body = Math.max(0, height - 2);
  const completionLine: Line[] = c.completions.length ? [{ text: c.completions.join('  '), color: 'cyan' }] : [];
  const lines = [...consoleLines(c), ...completionLine].slice(-body);
  return (
    <Panel
      title="QMP console"
      extra={
        <Text wrap="truncate">
          <Text dimColor>to </Text>
          <Text color="cyan" bold>
            {c.side}
          </Text>
          <Text dimColor> (Tab switches)</Text>
        </Text>
      }
      width={width}
      height={height}
    >
      <Box flexDirection="column" height={body} overflow="hidden">
        {lines.map((l, i) => (
          <Text key={i} wrap="truncate" color={l.color} dimColor={l.dim}>
            {l.text}
          </Text>
        ))}
      </Box>
      <Text wrap="truncate-start">
        <Text color="cyan" bold>
          {c.side}&gt;{' '}
        </Text>
        {c.input}
        <Text inverse> </Text>
      </Text>
    </Panel>
  );
}
