import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stateDir } from '../../../src/util/state-dir.js';
import { defaultProgressPath } from '../../../src/ui/progress.js';

describe('stateDir', () => {
  it('uses an absolute XDG_STATE_HOME, and ignores a relative one as the XDG spec says', () => {
    expect(stateDir({ XDG_STATE_HOME: '/var/x' })).toBe('/var/x/postcopy-lab');
    expect(stateDir({ XDG_STATE_HOME: 'rel/x' })).toBe(join(homedir(), '.local', 'state', 'postcopy-lab'));
    expect(stateDir({})).toBe(join(homedir(), '.local', 'state', 'postcopy-lab'));
  });

  it('is where progress lives (run records go beside it, under runs/)', () => {
    expect(defaultProgressPath({ XDG_STATE_HOME: 'rel' })).toBe(join(stateDir({}), 'progress.json'));
  });
});
