/**
 * useInput whose handler always sees the latest render's state. Ink (re)subscribes its input
 * listener in a passive effect, which React may run well after the render that needed it: with
 * a plain useInput, ":" opens the console but the next letters still reach the previous
 * render's handler, and a screen that just became active misses its first key. So this hook
 * subscribes once and calls, through a ref assigned at render time, the handler and the
 * `isActive` flag of the latest render.
 */
import { useInput, type Key } from 'ink';
import { useCallback, useRef } from 'react';

export function useKeys(handler: (input: string, key: Key) => void, options: { isActive?: boolean } = {}): void {
  const latest = useRef({ handler, isActive: options.isActive ?? true });
  latest.current = { handler, isActive: options.isActive ?? true };
  const stable = useCallback((input: string, key: Key) => {
    if (latest.current.isActive) latest.current.handler(input, key);
  }, []);
  useInput(stable);
}
