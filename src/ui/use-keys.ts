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
 *
 * Esc then a key in one read (`\x1bh`) is, to Ink, Alt-h (`h` with meta), and Esc then `:`
 * is a bare `:`: the Esc is lost, so closing the console and asking a hint in one quick motion
 * did neither. Terminals send Alt-h as the same bytes, but no key here uses Alt, so the
 * provider reads such a chunk as what a person most likely typed: Esc, then the key.
 */
import { useInput, useStdin, type Key } from 'ink';
import { frameBuild } from './use-session.js';
import { createContext, createElement, useCallback, useContext, useEffect, useLayoutEffect, useRef, useState, type ReactNode } from 'react';

type KeyHandler = (input: string, key: Key) => void;

const KeyRegistry = createContext<Set<KeyHandler> | null>(null);

/** Owns the app's single input subscription and hands each key to every registered useKeys. */
export function KeyProvider(props: { children?: ReactNode }) {
  const [registry] = useState(() => new Set<KeyHandler>());
  useInputKeys((input, key) => {
    if (frameBuild.enabled) frameBuild.keySince ??= performance.now();
    // A handler may unmount another screen (and unregister it) while we iterate.
    for (const h of [...registry]) if (registry.has(h)) h(input, key);
  });
  return createElement(KeyRegistry.Provider, { value: registry }, props.children);
}

/** useInput, with Esc-then-a-key read in one chunk handed over as those two keys. */
function useInputKeys(handler: KeyHandler, options: { isActive?: boolean } = {}): void {
  // Ink emits each raw chunk to its listeners in order; this one subscribes before useInput's
  // (effects run in declaration order, and it never re-subscribes), so it sees the bytes of the
  // event useInput is about to hand over.
  const { internal_eventEmitter: emitter } = useStdin();
  const escThen = useRef<string | null>(null);
  useEffect(() => {
    const onRaw = (data: string) => {
      escThen.current = escapeThenKey(data);
    };
    emitter.on('input', onRaw);
    return () => {
      emitter.removeListener('input', onRaw);
    };
  }, [emitter]);
  useInput((input, key) => {
    const after = escThen.current;
    escThen.current = null;
    if (after === null) return handler(input, key);
    handler('', ESC_KEY);
    handler(...keyOf(after, PLAIN_KEY));
  }, options);
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
  useInputKeys(stable, { isActive: registry === null });
}

const PLAIN_KEY: Key = {
  upArrow: false,
  downArrow: false,
  leftArrow: false,
  rightArrow: false,
  pageDown: false,
  pageUp: false,
  home: false,
  end: false,
  return: false,
  escape: false,
  ctrl: false,
  shift: false,
  tab: false,
  backspace: false,
  delete: false,
  meta: false,
  super: false,
  hyper: false,
  capsLock: false,
  numLock: false,
};
/** Esc as Ink reports it alone. */
const ESC_KEY: Key = { ...PLAIN_KEY, escape: true, meta: true };

/**
 * The key after the Esc when a raw chunk is Esc and one more key (not the start of an escape
 * sequence such as an arrow's `\x1b[A`, nor Esc Esc); null otherwise.
 */
export function escapeThenKey(raw: string): string | null {
  if (!raw.startsWith('\u001b')) return null;
  const rest = [...raw.slice(1)];
  return rest.length === 1 && !['\u001b', '[', 'O'].includes(rest[0]!) ? rest[0]! : null;
}

/**
 * One input event as the keys a person typed: a run of plain characters becomes one event per
 * character, with the Key Ink would have given that character alone (Enter, Tab, Backspace,
 * Ctrl-letter). Escape sequences and single keys pass through unchanged.
 */
export function splitKeys(input: string, key: Key): Array<[string, Key]> {
  if (input.length <= 1 || input.includes('\u001b') || key.ctrl || key.meta) return [[input, key]];
  const plain: Key = { ...key, return: false, tab: false, backspace: false, delete: false, ctrl: false, shift: false };
  return [...input].map((ch) => keyOf(ch, plain));
}

/** One character as Ink would report it typed alone (Enter, Tab, Backspace, Ctrl-letter, a letter). */
function keyOf(ch: string, plain: Key): [string, Key] {
  const code = ch.codePointAt(0)!;
  if (ch === '\r') return ['', { ...plain, return: true }];
  if (ch === '\t') return ['', { ...plain, tab: true }];
  if (ch === '\u007f') return ['', { ...plain, delete: true }];
  if (ch === '\b') return ['', { ...plain, backspace: true }];
  if (code < 0x20 && ch !== '\n') return [String.fromCharCode(code + 96), { ...plain, ctrl: true }];
  return [ch, { ...plain, shift: /^[A-Z]$/.test(ch) }];
}
