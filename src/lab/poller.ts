/**
 * The run's snapshot clock: asks the driver for a snapshot every period and hands each one on,
 * never two polls at once, nothing after stop.
 */
import type { Snapshot } from '../types.js';

export class Poller {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly take: () => Promise<Snapshot>,
    private readonly publish: (s: Snapshot) => void,
    private readonly periodMs: number,
  ) {}

  /**
   * Polls start every period (100 ms) from the start of the previous one, never overlapping.
   * Timed from its end, the period was 100 ms plus the queries plus everything publishing runs
   * synchronously (the TUI builds its frame inside publishSnapshot: 20-150 ms under load), so a
   * lab published only 3-4 snapshots a second.
   */
  schedule(startedAt = performance.now()): void {
    if (this.stopped) return;
    const wait = Math.max(0, startedAt + this.periodMs - performance.now());
    this.timer = setTimeout(() => {
      const started = performance.now();
      void this.poll().finally(() => this.schedule(started));
    }, wait);
  }

  /** One poll now (after a step changed something); a snapshot the driver cannot give is skipped. */
  async poll(): Promise<void> {
    if (this.stopped) return;
    let snap: Snapshot;
    try {
      snap = await this.take();
    } catch {
      return;
    }
    this.publish(snap);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
