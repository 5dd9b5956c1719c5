import { describe, expect, it } from 'vitest';
import React from 'react';
import chalk from 'chalk';
import { Box, Text, renderToString } from 'ink';
import { shareInkOutputCaches } from '../../../src/ui/ink-output-cache.js';

/** Styled runs, a wide character, a border and clipped text: what the lab screen writes. */
function Frame({ n }: { n: number }) {
  return (
    <Box flexDirection="column" width={30}>
      <Box borderStyle="single" borderTop borderBottom={false} borderLeft={false} borderRight={false}>
        <Text bold>Counters {n}</Text>
      </Box>
      <Text>
        <Text color="green">✓</Text> step <Text dimColor>{'█'.repeat(n % 7)}</Text> 世界 {n}
      </Text>
      <Box width={10} overflow="hidden">
        <Text wrap="truncate">{`clipped line ${n} that is too long`}</Text>
      </Box>
    </Box>
  );
}

describe('shareInkOutputCaches', () => {
  it('applies to this Ink and leaves every frame as Ink draws it without sharing', async () => {
    const level = chalk.level;
    chalk.level = 3;
    try {
      const frames = [1, 2, 3, 2, 1, 9];
      const before = frames.map((n) => renderToString(<Frame n={n} />, { columns: 40 }));
      expect(before[0]).toContain('\u001b['); // styled, so the styled-cell cache is exercised
      expect(await shareInkOutputCaches()).toBe(true);
      // Twice: the second time every line comes from the shared caches.
      for (let round = 0; round < 2; round++) {
        expect(frames.map((n) => renderToString(<Frame n={n} />, { columns: 40 }))).toEqual(before);
      }
    } finally {
      chalk.level = level;
    }
  });
});
