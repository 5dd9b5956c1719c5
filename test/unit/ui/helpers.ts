/** Small helpers for Ink component tests: poll for content instead of sleeping. */

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]/g;

export function plain(s: string | undefined): string {
  return (s ?? '').replace(ANSI, '');
}

export async function waitFor(check: () => boolean, what = 'condition', timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Wait until the last frame contains `text`; returns the frame without colour codes. */
export async function waitForText(lastFrame: () => string | undefined, text: string | RegExp, timeoutMs = 3000): Promise<string> {
  const has = () => (typeof text === 'string' ? plain(lastFrame()).includes(text) : text.test(plain(lastFrame())));
  try {
    await waitFor(has, String(text), timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last frame:\n${plain(lastFrame())}`);
  }
  return plain(lastFrame());
}

/** Let Ink subscribe to stdin (passive effects) before typing. */
export const settle = (ms = 20) => new Promise((r) => setTimeout(r, ms));

export const KEYS = {
  enter: '\r',
  tab: '\t',
  shiftTab: '\u001b[Z',
  escape: '\u001b',
  up: '\u001b[A',
  down: '\u001b[B',
  left: '\u001b[D',
  right: '\u001b[C',
  pageUp: '\u001b[5~',
  pageDown: '\u001b[6~',
  home: '\u001b[H',
  end: '\u001b[F',
  backspace: '\u007f',
  ctrlU: '\u0015',
  ctrlC: '\u0003',
};
