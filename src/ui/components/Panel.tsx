import { Box, Text } from 'ink';
import type { ReactNode } from 'react';

/**
 * A fixed-size region with a one-line title and a rule: panels never grow and push others.
 * Clipped vertically only: every row is already cut to the width (wrap="truncate", fit()), and
 * Ink's horizontal clip re-slices every line written inside the box on every frame. The rule is
 * a box's top border, not a text of '─': Ink measures every text's width on every frame, and a
 * non-ASCII one grapheme by grapheme (a border it only writes).
 */
export function Panel(props: { title: string; extra?: ReactNode; width: number; height: number; children?: ReactNode }) {
  const { title, extra, width, height, children } = props;
  return (
    <Box flexDirection="column" width={width} height={height} overflowY="hidden">
      <Box width={width} height={1} flexShrink={0} overflowY="hidden">
        <Box flexShrink={0}>
          <Text bold>{title}</Text>
        </Box>
        {extra ? (
          <Box flexShrink={1} marginLeft={1} overflowY="hidden">
            {extra}
          </Box>
        ) : null}
        <Box
          flexGrow={1}
          flexShrink={1}
          flexBasis={0}
          height={1}
          marginLeft={1}
          borderStyle="single"
          borderTop
          borderBottom={false}
          borderLeft={false}
          borderRight={false}
          borderDimColor
        />
      </Box>
      {children}
    </Box>
  );
}
