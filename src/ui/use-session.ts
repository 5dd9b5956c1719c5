/**
 * Subscribing to a LabSessionApi at a bounded frame rate. The session may notify thousands of
 * times a second while pages stream; the screen only needs about 12 frames a second. A
 * SampledStore sits between the two: the first change after a quiet period goes through at
 * once (so a key press shows without waiting for a tick), later changes are picked up by a
 * timer at most once per interval, always taking the latest state. No timer runs while
 * nothing changes.
 */
import { useEffect, useMemo, useSyncExternalStore } from 'react';
import type { LabSessionApi, SessionState } from '../types.js';

/**
 * About 12 frames per second: counters read as moving, and a frame costs little now that the
 * panels re-render only when what they show changes (README: The TUI's cost).
 */
export const DEFAULT_SAMPLE_INTERVAL_MS = 80;

/** Renders of components that read the session through useSampledSession (for measurement). */
export const renderCounter = { count: 0 };

/**
 * For bench/ui.ts (off unless enabled): for each sample of the session, the time from handing
 * it to React until Ink has built the frame (React's render and commit, Yoga's layout, Ink's
 * output), in ms. `since` is set here and read by the app's onRender (src/ui/app.tsx).
 */
export const frameBuild = {
  enabled: false,
  since: null as number | null,
  times: [] as number[],
  /**
   * Key to frame inside the app: from the key reaching the key handlers (use-keys.ts) until
   * Ink has built the frame after it, ms. What the process adds to a key; the bench's
   * key-to-screen adds the terminal and the scheduler.
   */
  keySince: null as number | null,
  keys: [] as number[],
};

export function resetRenderCounter(): void {
  renderCounter.count = 0;
}

interface Source<T> {
  subscribe(listener: () => void): () => void;
  getState(): T;
}

/** A rate-limited view of another store. `dispose()` drops the upstream subscription and timer. */
export class SampledStore<T> {
  private current: T;
  private readonly listeners = new Set<() => void>();
  private unsubscribeUpstream: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastEmit = -Infinity;

  constructor(
    private readonly source: Source<T>,
    private readonly intervalMs: number = DEFAULT_SAMPLE_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.current = source.getState();
  }

  readonly getSnapshot = (): T => this.current;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    if (!this.unsubscribeUpstream) {
      this.unsubscribeUpstream = this.source.subscribe(this.onUpstream);
      // The state may have moved between construction and subscription.
      this.onUpstream();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.dispose();
    };
  };

  dispose(): void {
    this.unsubscribeUpstream?.();
    this.unsubscribeUpstream = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Take the latest state now, ignoring the interval: for a change the person just caused with
   * a key (a hint), which must not wait for the next tick.
   */
  readonly flush = (): void => {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.unsubscribeUpstream) this.sample();
  };

  private readonly onUpstream = (): void => {
    if (this.timer) return; // a tick is already due; it will take the latest state
    const wait = this.lastEmit + this.intervalMs - this.now();
    if (wait <= 0) this.sample();
    else this.timer = setTimeout(this.tick, wait);
  };

  private readonly tick = (): void => {
    this.timer = null;
    this.sample();
  };

  private sample(): void {
    const next = this.source.getState();
    if (Object.is(next, this.current)) return;
    this.current = next;
    this.lastEmit = this.now();
    if (frameBuild.enabled) frameBuild.since ??= performance.now();
    for (const l of [...this.listeners]) l();
  }
}

/**
 * The session's state, sampled at most once per `intervalMs`. Every render of the calling
 * component is counted in `renderCounter`.
 */
export function useSampledSession(session: LabSessionApi, intervalMs: number = DEFAULT_SAMPLE_INTERVAL_MS): SessionState {
  return useSampledStore(session, intervalMs).state;
}

/** useSampledSession, with `flush` to show a change at once (see SampledStore.flush). */
export function useSampledStore(session: LabSessionApi, intervalMs: number = DEFAULT_SAMPLE_INTERVAL_MS): { state: SessionState; flush: () => void } {
  const store = useMemo(() => new SampledStore<SessionState>(session, intervalMs), [session, intervalMs]);
  useEffect(() => () => store.dispose(), [store]);
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  renderCounter.count++;
  return { state, flush: store.flush };
}
