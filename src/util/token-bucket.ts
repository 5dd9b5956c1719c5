/**
 * A token bucket in bytes per second, with an injectable clock. One implementation for every
 * place that paces bytes: the relay's bandwidth fault and the sim source's own
 * max-bandwidth / max-postcopy-bandwidth.
 */
import type { Clock } from './clock.js';

/**
 * Classic token bucket, allowed to go into debt: `take(n)` always succeeds and says how long
 * to wait before sending. Debt keeps concurrent takers in FIFO order and the long-run rate exact.
 */
export class TokenBucket {
  private tokens = 0;
  private last: number;
  private rate = 0;
  private burst = 0;

  constructor(private readonly clock: Clock, bytesPerSec = 0) {
    this.last = clock.now();
    this.setRate(bytesPerSec);
  }

  get bytesPerSec(): number {
    return this.rate;
  }

  /** A new rate starts from an empty bucket with no debt; 0 means unlimited. */
  setRate(bytesPerSec: number): void {
    this.rate = Math.max(0, bytesPerSec);
    this.burst = this.rate > 0 ? Math.max(sliceBytes(this.rate), this.rate / 20) : 0;
    this.tokens = 0;
    this.last = this.clock.now();
  }

  /** Debit `bytes`; returns the milliseconds to wait before sending them (0: send now). */
  take(bytes: number): number {
    if (this.rate <= 0) return 0;
    this.refill();
    this.tokens -= bytes;
    return this.waitMs();
  }

  /** Milliseconds until the bucket is out of debt. */
  waitMs(): number {
    if (this.rate <= 0) return 0;
    this.refill();
    // Tolerate float dust: a debt of 1e-13 bytes would otherwise ask for a wait too short
    // for the clock to register, forever.
    return this.tokens >= -1e-3 ? 0 : (-this.tokens / this.rate) * 1000;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }
}

/** How much to send at once: about 20 ms worth, between 512 B and 64 KiB, so pacing is smooth. */
export function sliceBytes(bytesPerSec: number): number {
  return Math.min(64 * 1024, Math.max(512, Math.floor(bytesPerSec / 50)));
}

