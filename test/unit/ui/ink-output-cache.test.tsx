import { describe, expect, it } from 'vitest';
import React from 'react';
import chalk from 'chalk';
import { Box, Text, Transform, renderToString } from 'ink';
import { shareInkOutputCaches } from '../../../src/ui/ink-output-cache.js';
import { LinkPanel } from '../../../src/ui/components/LinkPanel.js';
import { PageMap } from '../../../src/ui/components/PageMap.js';
import { SideCounters } from '../../../src/ui/components/SideCounters.js';
import { Sparkline } from '../../../src/ui/components/Sparkline.js';
import { fakeDirection, fakePages, fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';

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

/**
 * No horizontal clip, so every row goes through the row cache: the lab's own panels, a
 * Transform, wide characters over other text, text clipped above and below, rows past the
 * frame's bottom, and rows that repeat from frame to frame.
 */
function Rows({ n }: { n: number }) {
  const map = 'R'.repeat(n * 9) + 'q' + 'r'.repeat(n) + '.'.repeat(200);
  const link = fakeSnapshot().link;
  return (
    <Box flexDirection="column" width={60} height={30} overflowY="hidden">
      <SideCounters source={fakeSide('source', { pages: fakePages({ sent: 100 * n }) })} destination={fakeSide('destination')} width={60} />
      <LinkPanel link={{ ...link, 'source-to-destination': fakeDirection({ bytesForwarded: n * 3_000_000 }) }} width={60} height={3} />
      <PageMap pages={fakePages({ map })} width={40} height={4} />
      <Sparkline history={Array.from({ length: 30 }, (_, k) => ({ t: k, mbps: (k * n) % 17, remaining: 0 }))} width={40} />
      <Transform transform={(line, i) => (i % 2 ? chalk.red(line) : line.toUpperCase())}>{`odd ${n}\neven\nodd`}</Transform>
      <Box height={2} overflowY="hidden">
        <Box marginTop={-1} flexDirection="column">
          <Text>{`above ${n}\nshown 世界 ${n}\nshown too\nbelow`}</Text>
        </Box>
      </Box>
      <Box>
        <Text>{'ab'.repeat(n)}</Text>
        <Box marginLeft={-3}>
          <Text color="cyan">世界x</Text>
        </Box>
      </Box>
      <Text>{Array.from({ length: 12 }, (_, k) => `past the bottom ${k} ${n}`).join('\n')}</Text>
    </Box>
  );
}

/**
 * Writes side by side on a row, which the row cache builds from separately built writes:
 * styled ones that meet, plain ones that meet styled ones, trailing spaces and other trailing
 * whitespace before the next write, wide characters, an empty write.
 */
function Beside({ n }: { n: number }) {
  return (
    <Box flexDirection="column" width={70}>
      <Box>
        <Text color="red">{`left${n}`}</Text>
        <Text color="green">right</Text>
        <Text>{` plain${n}  `}</Text>
        <Text inverse>{' '.repeat(n % 3)}</Text>
        <Text bold>{`世${n}`}</Text>
        <Text>{'   '}</Text>
        <Text dimColor>{'end '}</Text>
      </Box>
      <Box>
        <Text>{`${'█▒·→…–'.repeat(n)}  `}</Text>
        <Text color="red">x</Text>
        <Text>{`${'· '.repeat(n)} ▁▂▃ ${n}   `}</Text>
        <Text>{'é́ plain?'}</Text>
      </Box>
      <Box>
        <Text>{`nbsp${n}\u00a0`}</Text>
        <Text color="blue">{`${n}`}</Text>
      </Box>
      <Box>
        <Box width={8}>
          <Text color="blue">{`w${n} `}</Text>
        </Box>
        <Text>{`${n}\t`}</Text>
        <Text color="yellow">x</Text>
        <Text>{'  '}</Text>
        <Text color="cyan">世界</Text>
        <Text color="cyan">{`${n} `}</Text>
        <Text inverse>{`${n}`}</Text>
      </Box>
      <Box>
        <Text>{`${'v'.repeat(n)}   `}</Text>
        <Box marginLeft={2}>
          <Text>{`   ${n}`}</Text>
        </Box>
        <Box width={70}>
          <Text color="magenta">{'past the right edge '.repeat(4)}</Text>
        </Box>
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
      const beforeRows = frames.map((n) => renderToString(<Rows n={n} />, { columns: 70 }));
      const beforeBeside = frames.map((n) => renderToString(<Beside n={n} />, { columns: 70 }));
      expect(beforeBeside[0].split('\n')).toHaveLength(6);
      expect(before[0]).toContain('\u001b['); // styled, so the styled-cell cache is exercised
      expect(beforeRows[0]).toContain('▚'); // the page map is painted
      expect(beforeRows[0].split('\n')).toHaveLength(30);
      expect(await shareInkOutputCaches()).toBe(true);
      // Twice: the second time every line comes from the shared caches.
      for (let round = 0; round < 2; round++) {
        expect(frames.map((n) => renderToString(<Frame n={n} />, { columns: 40 }))).toEqual(before);
        expect(frames.map((n) => renderToString(<Rows n={n} />, { columns: 70 }))).toEqual(beforeRows);
        expect(frames.map((n) => renderToString(<Beside n={n} />, { columns: 70 }))).toEqual(beforeBeside);
      }
    } finally {
      chalk.level = level;
    }
  });
});
