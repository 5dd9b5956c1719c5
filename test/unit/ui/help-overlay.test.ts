import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HELP_KEYS } from '../../../src/ui/components/HelpOverlay.js';
import { sidesAtRisk } from '../../../src/ui/use-lab-keys.js';
import type { Snapshot } from '../../../src/types.js';

const snap = (status: string) => ({ source: { status }, destination: { status: 'none' } }) as unknown as Snapshot;

describe('the help says when q asks', () => {
  const q = HELP_KEYS.find(([k]) => k === 'q')![1];

  it('in the README’s words', () => {
    const row = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('| `?` / `q` |'))!;
    const readmeQuit = /quit (\(.*\))/.exec(row)![1];
    expect(q).toBe(`quit ${readmeQuit}`);
  });

  it('and the code asks in each state the text names: postcopy (active), paused, recovering', () => {
    expect(q).toMatch(/during postcopy, paused or recovering/);
    for (const s of ['postcopy-active', 'postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover']) expect(sidesAtRisk(snap(s))).toHaveLength(1);
    for (const s of ['active', 'completed', 'none']) expect(sidesAtRisk(snap(s))).toHaveLength(0);
  });
});
