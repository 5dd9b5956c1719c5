/**
 * The run's JSONL record, written by a subscriber of the store: a header line, every event,
 * a snapshot twice a second (without the page map), and the summary when the run finishes.
 * `postcopy-lab replay` reads it back (src/commands/replay.ts).
 */
import { appendFileSync } from 'node:fs';
import type { RunSummary, Snapshot } from '../types.js';
import type { SessionStore } from './store.js';

const SNAPSHOT_EVERY_MS = 500;

export class Recorder {
  private lastSnapshot = -Infinity;
  private lastWritten: Snapshot | null = null;
  private summaryWritten = false;

  constructor(
    private readonly path: string,
    header: Record<string, unknown>,
  ) {
    this.write({ type: 'run', ...header });
  }

  /** Record what `store` publishes from now on; returns the unsubscribe. */
  attach(store: SessionStore): () => void {
    const offEvent = store.onEvent((e) => this.write({ type: 'event', ...e }));
    const offSnapshot = store.onSnapshot((s) => this.snapshot(s));
    const offState = store.subscribe(() => {
      const finished = store.getState().finished;
      if (finished && !this.summaryWritten) this.summary(finished, store.getState().snapshot);
    });
    return () => {
      offEvent();
      offSnapshot();
      offState();
    };
  }

  private snapshot(s: Snapshot): void {
    if (s.t - this.lastSnapshot < SNAPSHOT_EVERY_MS) return;
    this.writeSnapshot(s);
  }

  private writeSnapshot(s: Snapshot): void {
    this.lastSnapshot = s.t;
    this.lastWritten = s;
    this.write({ type: 'snapshot', t: s.t, source: stripMap(s.source), destination: stripMap(s.destination), link: s.link });
  }

  /** The summary, after the snapshot its counters were read from (so a reader can check them). */
  private summary(sum: RunSummary, last: Snapshot | null): void {
    if (last && last !== this.lastWritten) this.writeSnapshot(last);
    this.summaryWritten = true;
    this.write({ type: 'summary', ...sum });
  }

  private write(obj: Record<string, unknown>): void {
    try {
      appendFileSync(this.path, JSON.stringify(obj) + '\n');
    } catch {
      // A full disk must not break the lab; the record is a convenience.
    }
  }
}

/** The page map is for the screen; the record keeps the counters. */
function stripMap<T extends { pages?: { map?: string } }>(s: T): T {
  if (!s.pages?.map) return s;
  const { map: _map, ...pages } = s.pages;
  return { ...s, pages: pages as T['pages'] };
}
