/**
 * useInput whose handler always sees the latest render's state. Ink re-subscribes its input
 * listener in a passive effect, which React may run after the next key has already arrived:
 * with a plain useInput a fast typist's second key is handled by the previous render's
 * closure (":" opens the console, the next letters still go to the lab screen). Calling
 * through a ref assigned at render time removes that window.
 */
import { useInput, type Key } from 'ink';
import { useCallback, useRef } from 'react';

export function useKeys(handler: (input: string, key: Key) => void, options: { isActive?: boolean } = {}): void {
  const ref = useRef(handler);
  ref.current = handler;
  const stable = useCallback((input: string, key: Key) => ref.current(input, key), []);
  useInput(stable, options);
}
