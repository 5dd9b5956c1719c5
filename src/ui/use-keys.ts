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
 *
 * Ink splits what it reads from stdin at escape sequences only: plain keys read in one chunk
 * (typed faster than the app reads, which happens on a loaded machine) reach the handler as one
 * string, so `hh` showed no hint and `\r\t` in the console was typed as blanks instead of
 * Enter then Tab. useKeys hands them to the handler one key at a time (see splitKeys).
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
    for (const [i, k] of splitKeys(input, key)) if (latest.current.isActive) latest.current.handler(i, k);
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

/**
 * One input event as the keys a person typed: a run of plain characters becomes one event per
 * character, with the Key Ink would have given that character alone (Enter, Tab, Backspace,
 * Ctrl-letter). Escape sequences and single keys pass through unchanged.
 */
export function splitKeys(input: string, key: Key): Array<[string, Key]> {
  if (input.length <= 1 || input.includes('\u001b') || key.ctrl || key.meta) return [[input, key]];
  const plain: Key = { ...key, return: false, tab: false, backspace: false, delete: false, ctrl: false, shift: false };
  const out: Array<[string, Key]> = [];
  for (const ch of input) {
    const code = ch.codePointAt(0)!;
    if (ch === '\r') out.push(['', { ...plain, return: true }]);
    else if (ch === '\t') out.push(['', { ...plain, tab: true }]);
    else if (ch === '\u007f') out.push(['', { ...plain, delete: true }]);
    else if (ch === '\b') out.push(['', { ...plain, backspace: true }]);
    else if (code < 0x20 && ch !== '\n') out.push([String.fromCharCode(code + 96), { ...plain, ctrl: true }]);
    else out.push([ch, { ...plain, shift: /^[A-Z]$/.test(ch) }]);
  }
  return out;
}
