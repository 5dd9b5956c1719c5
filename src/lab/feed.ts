/**
 * The step engine's clock: the snapshots as they are published, timed waits, and the abort
 * that cuts every wait short with the run's failure (a VM died, the guest is lost, the lab was
 * stopped). Kept apart from the store so the engine can be driven by a scripted stream in tests.
 */
import type { Snapshot } from '../types.js';
import { RunFailure } from './failure.js';

export class SnapshotFeed {
  private latest: Snapshot | null = null;
  private waiters: Array<{ resolve: (s: Snapshot) => void; reject: (e: RunFailure) => void }> = [];
  /** Timed waits to cut short on abort; each removes itself when it ends normally. */
  private readonly sleepers = new Set<(e: RunFailure) => void>();
  private abortedWith: RunFailure | null = null;

  /**
   * @param watch looks at every snapshot for a state that ends the run at once (GuestWatch);
   *   a failure it returns aborts the feed.
   */
  constructor(private readonly watch: (s: Snapshot) => RunFailure | null = () => null) {}

  get current(): Snapshot | null {
    return this.latest;
  }

  get aborted(): RunFailure | null {
    return this.abortedWith;
  }

  publish(s: Snapshot): void {
    this.latest = s;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(s);
    const failure = this.abortedWith ? null : this.watch(s);
    if (failure) this.abort(failure);
  }

  /** The next snapshot published; rejects with the failure if the run is (or gets) aborted. */
  next(): Promise<Snapshot> {
    return new Promise((resolve, reject) => {
      if (this.abortedWith) return reject(this.abortedWith);
      this.waiters.push({ resolve, reject });
    });
  }

  /** Resolves after `ms`, or rejects at once when the run is aborted. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.abortedWith) return reject(this.abortedWith);
      const onAbort = (e: RunFailure) => {
        clearTimeout(t);
        reject(e);
      };
      const t = setTimeout(() => {
        this.sleepers.delete(onAbort);
        resolve();
      }, ms);
      this.sleepers.add(onAbort);
    });
  }

  /** End the run: every wait, now and later, rejects with `f`. The first failure wins. */
  abort(f: RunFailure): void {
    if (this.abortedWith) return;
    this.abortedWith = f;
    const rejects = [...this.sleepers, ...this.waiters.map((w) => w.reject)];
    this.sleepers.clear();
    this.waiters = [];
    for (const r of rejects) r(f);
  }

  /** Start over (a rewind): no failure, no snapshot yet. */
  reset(): void {
    this.abort(new RunFailure('the run was restarted', 'stopped'));
    this.abortedWith = null;
    this.latest = null;
  }
}
