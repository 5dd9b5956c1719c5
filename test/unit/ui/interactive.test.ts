import { describe, expect, it } from 'vitest';
import { isCi, isInteractive } from '../../../src/ui/interactive.js';

describe('isInteractive', () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  it.each([
    [tty, tty, {}, true],
    [tty, tty, { CI: 'false' }, true],
    [tty, tty, { CI: '0' }, true],
    [tty, tty, { CI: '' }, true],
    [tty, tty, { CI: 'true' }, false],
    [tty, tty, { CI: '1' }, false],
    [tty, tty, { CI: 'woodpecker' }, false],
    [pipe, tty, {}, false],
    [tty, pipe, {}, false],
    [{}, {}, {}, false],
  ])('stdin %o stdout %o env %o -> %s', (stdin, stdout, env, expected) => {
    expect(isInteractive(stdin, stdout, env)).toBe(expected);
  });
  it('reads CI case-insensitively', () => {
    expect(isCi({ CI: 'FALSE' })).toBe(false);
    expect(isCi({ CI: 'True' })).toBe(true);
  });
});
