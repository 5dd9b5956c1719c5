import { Box, Text } from 'ink';
import type { ReactNode } from 'react';

/** A fixed-size region with a one-line title and a rule: panels never grow and push others. */
export function Panel(props: { title: string; extra?: ReactNode; width: number; height: number; children?: ReactNode }) {
  const { title, extra, width, height, children } = props;
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Box width={width} height={1} overflow="hidden">
        <Text bold wrap="truncate">
          {title}
        </Text>
        {extra ? <Text wrap="truncate"> </Text> : null}
        {extra}
        <Box flexGrow={1} overflow="hidden" marginLeft={1}>
          <Text dimColor wrap="truncate">
            {'─'.repeat(width)}
          </Text>
        </Box>
      </Box>
      {children}
    </Box>
  );
}
