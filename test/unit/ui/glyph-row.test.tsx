import chalk from 'chalk';
import { Box, Text } from 'ink';
import { render } from 'ink-testing-library';
import type { ReactElement } from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GlyphRow } from '../../../src/ui/components/GlyphRow.js';

/** The frame, colour codes kept: a GlyphRow must write exactly what the plain Text writes. */
function frame(el: ReactElement): string {
  const r = render(el);
  const out = r.lastFrame() ?? '';
  r.unmount();
  return out;
}

const row = (width: number, tail: string) => [
  <Text key="a" dimColor>
    {'vCPUs slowed   '}
  </Text>,
  <Text key="b" color="yellow" bold>
    {`1 now · 0.3 vCPU·s `}
  </Text>,
  <Text key="c">{tail}</Text>,
  width,
];

describe('GlyphRow', () => {
  const level = chalk.level;
  beforeAll(() => {
    chalk.level = 1; // colours on (the test runner has none): the restore must skip escape codes
  });
  afterAll(() => {
    chalk.level = level;
  });
  for (const [name, width, tail] of [
    ['fits', 60, '– src→dst ██░░ 25%'],
    ['cut with an ellipsis, as Ink truncates', 30, '– src→dst ██░░ 25%'],
    ['cut right after a glyph', 35, '–·→'],
    ['a character it does not replace (falls back to Text)', 60, 'wide 漢字 –'],
    ['ASCII only', 20, 'plain text that is too long'],
  ] as const) {
    it(`writes what <Text wrap="truncate"> writes: ${name}`, () => {
      const children = row(width, tail).slice(0, 3);
      const want = frame(
        <Box width={width}>
          <Text wrap="truncate">{children}</Text>
        </Box>,
      );
      const got = frame(
        <Box width={width}>
          <GlyphRow width={width}>{children}</GlyphRow>
        </Box>,
      );
      expect(JSON.stringify(got)).toBe(JSON.stringify(want));
      expect(got).not.toContain("*");
      expect(got).toContain("\u001b["); // colours on: the restore skips escape codes
    });
  }
});
