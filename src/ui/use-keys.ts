/**
 * useInput whose handler always sees the latest render's state. Ink (re)subscribes its input
 * listener in a passive effect, which React may run well after the render that needed it: with
 * a plain useInput, ":" opens the console but the next letters still reach the previous
 * render's handler. So this hook subscribes once and calls, through a ref assigned at render
 * time, the handler and the `isActive` flag of the latest render.
 *
 * A component mounted while the app runs (the lab screen, after the picker) has the same
 * problem at mount: its frame is already on the terminal while its passive effect, the
 * subscription, is still queued behind stdin in the event loop, so the first key a quick
 * person (or a test) types after seeing the screen was lost. Inside a <KeyProvider>, handlers
 * therefore register in a layout effect, which React runs in the same synchronous commit that
 * draws the frame: by the time any key can be read, the screen that shows it listens. The
 * provider itself holds the one Ink subscription and is mounted with the app, before Ink reads
 * stdin at all (keys typed earlier wait in the terminal's buffer). Outside a provider (a
 * component rendered alone in a test), useKeys falls back to its own useInput.
 */
import { useInput, type Key } from 'ink';
import { createContext, createElement, useCallback, useContext, useLayoutEffect, useRef, useState, type ReactNode } from 'react';

type KeyHandler = (input: string, key: Key) => void;

const KeyRegistry = createContext<Set<KeyHandler> | null>(null);

/** Owns the app's single input subscription and hands each key to every registered useKeys. */
export function KeyProvider(props: { children?: ReactNode }) {
  const [registry] = useState(() => new Set<KeyHandler>());
  useInput((input, key) => {
    // A handler may unmount another screen (and unregister it) while we iterate.
    for (const h of [...registry]) if (registry.has(h)) h(input, key);
  });
  return createElement(KeyRegistry.Provider, { value: registry }, props.children);
}

export function useKeys(handler: KeyHandler, options: { isActive?: boolean } = {}): void {
  const latest = useRef({ handler, isActive: options.isActive ?? true });
  latest.current = { handler, isActive: options.isActive ?? true };
  const stable = useCallback((input: string, key: Key) => {
    if (latest.current.isActive) latest.current.handler(input, key);
  }, []);
  const registry = useContext(KeyRegistry);
  useLayoutEffect(() => {
    if (!registry) return;
    registry.add(stable);
    return () => {
      registry.delete(stable);
    };
  }, [registry, stable]);
  useInput(stable, { isActive: registry === null });
}
