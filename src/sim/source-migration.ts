/**
 * Everything one outgoing migration knows: which pages are still to send, which were sent,
 * the page requests waiting, and the counters query-migrate and x-query-pages report. A new
 * `migrate` replaces the whole object, so nothing is reset by hand and nothing is forgotten.
 */
import type { MigrationStatus, PagesInfo, RamStats } from '../types.js';
import { Bitmap } from './bitmap.js';
import { isFinished } from './states.js';
import { pageMap, RateMeter } from './stats.js';
import { ThrottleState } from './throttle.js';

/** QEMU's BUFFER_DELAY: the shortest window its bandwidth (and so its switchover threshold) is measured over. */
export const BANDWIDTH_WINDOW_MS = 100;

export class SourceMigration {
  /** Pages still to send in this pass (precopy) or at all (postcopy). */
  readonly toSend: Bitmap;
  /** Pages sent at least once. */
  readonly sentOnce: Bitmap;
  /**
   * Pages whose current content has been sent: cleared when the guest writes a page after it
   * was sent, so sending it again then is a new copy, not a re-send.
   */
  private readonly sentCurrent: Bitmap;
  /** Where the background push continues. */
  cursor = 0;
  /** Pages the destination asked for (MIG_RP_MSG_REQ_PAGES), not yet sent. */
  reqQueue: number[] = [];
  postcopyRequested = false;
  /** Precopy converged: the guest is stopped and the last dirty pages go out. */
  completingPrecopy = false;
  eofSent = false;
  /** The strategy of the recovery under way, decided when its channel connects. */
  resumeMode: 'bitmap' | 'walk' = 'bitmap';
  /** After an x-recovery-walk resume: push nothing unrequested. */
  walkMode = false;
  /** A recovery completed: pages sent from now on count as re-sent if their content was sent before. */
  recovered = false;
  recoveries = 0;
  recoveryAttempts = 0;
  resent = 0;
  /** auto-converge / dirty-limit: the trigger state and the throttle set (src/sim/throttle.ts). */
  readonly throttle = new ThrottleState(performance.now());
  /** The destination's verdict (MIG_RP_MSG_SHUT). */
  verdict: Record<string, unknown> | null = null;

  // query-migrate counters
  readonly startedAt = performance.now();
  setupTime = 0;
  totalTime = 0;
  downtimeStart = 0;
  downtime = 0;
  transferred = 0;
  precopyBytes = 0;
  postcopyBytes = 0;
  normalPages = 0;
  postcopyRequests = 0;
  requestsServed = 0;
  dirtySyncCount = 0;
  passStart = 0;
  /**
   * Bytes per ms over the last window of at least BANDWIDTH_WINDOW_MS, as QEMU's
   * migration_update_counters measures it (BUFFER_DELAY): precopy's switchover threshold is this
   * times downtime-limit. 0 until the first window closes, so no switchover before it. A window
   * per pass instead made a pass that fitted in the socket buffers look like a fast link (a few
   * pages in a millisecond) and switched over with seconds of data still queued.
   */
  bandwidthEstimate = 0;
  private windowStart = performance.now();
  private windowBytes = 0;
  dirtyPagesRate = 0;
  private readonly ppsMeter = new RateMeter();
  private readonly bpsMeter = new RateMeter();
  private lastPps = 0;
  private lastMbps = 0;

  constructor(readonly pageCount: number, readonly pageSize: number) {
    this.toSend = new Bitmap(pageCount);
    this.toSend.setAll();
    this.sentOnce = new Bitmap(pageCount);
    this.sentCurrent = new Bitmap(pageCount);
  }

  /**
   * The guest's dirty log joins the to-send set (`replace`: it becomes the next pass). A
   * dirtied page has new content: sending it is a new copy, never a re-send.
   */
  takeDirty(dirty: Bitmap, mode: 'replace' | 'add'): void {
    if (mode === 'replace') this.toSend.copyFrom(dirty);
    else this.toSend.or(dirty);
    for (let i = dirty.nextSet(0); i >= 0; i = dirty.nextSet(i + 1)) this.sentCurrent.clear(i);
    dirty.clearAll();
  }

  /** Sending a page settles it: it leaves the to-send set whether it was pushed or requested. */
  noteSent(pages: readonly number[], frameBytes: number, postcopy: boolean): void {
    for (const p of pages) {
      this.toSend.clear(p);
      this.sentOnce.set(p);
      // Bitmap.set answers false when the bit was already set: this content went out before.
      if (!this.sentCurrent.set(p) && this.recovered) this.resent++;
    }
    const bytes = frameBytes * pages.length;
    this.normalPages += pages.length;
    if (postcopy) this.postcopyBytes += bytes;
    else this.precopyBytes += bytes;
    this.windowBytes += bytes;
    this.updateBandwidth(performance.now());
  }

  /** Close the bandwidth window when it is BANDWIDTH_WINDOW_MS old (QEMU: every BUFFER_DELAY). */
  updateBandwidth(now: number): void {
    const spent = now - this.windowStart;
    if (spent < BANDWIDTH_WINDOW_MS) return;
    this.bandwidthEstimate = this.windowBytes / spent;
    this.windowStart = now;
    this.windowBytes = 0;
  }

  /**
   * The next background batch, in address order from the cursor (wrapping in postcopy, once per
   * batch: the pages taken are still in the to-send set until they are sent, and a second lap
   * would put them in the batch again).
   */
  nextBackgroundPages(max: number, wrap: boolean, into: number[] = []): number[] {
    // `into` (a sender's reused array) is refilled by index and cut to length at the end:
    // emptying it first would drop its storage and grow it again, an allocation per batch.
    const pages = into;
    let n = 0;
    // After the wrap: where this batch began, which it must not reach again.
    let lap = Infinity;
    while (n < max) {
      let i = this.toSend.nextSet(this.cursor);
      if (i < 0 && wrap && lap === Infinity) {
        // The push covers what is left anywhere.
        lap = n ? pages[0] : this.pageCount;
        i = this.toSend.nextSet(0);
      }
      if (i < 0 || i >= lap) break;
      pages[n++] = i;
      this.cursor = i + 1;
    }
    pages.length = n;
    return pages;
  }

  /** The to-send set as ranges: the discard set at switchover. */
  toSendRanges(): Array<[number, number]> {
    const ranges: Array<[number, number]> = [];
    for (let i = this.toSend.nextSet(0); i >= 0; ) {
      const end = this.toSend.nextClear(i);
      const e = end < 0 ? this.pageCount : end;
      ranges.push([i, e - i]);
      i = e < this.pageCount ? this.toSend.nextSet(e) : -1;
    }
    return ranges;
  }

  /** Sample the throughput meters (on a clock, so a rate means the same however often it is read). */
  sampleRates(now = performance.now()): void {
    this.lastPps = this.ppsMeter.sample(this.normalPages, now);
    this.lastMbps = (this.bpsMeter.sample(this.transferred, now) * 8) / 1e6;
  }

  /** Pages not yet at the destination; `dirty` is the guest's dirty log since the last sync. */
  remainingPages(status: MigrationStatus, dirty: Bitmap): number {
    if (status === 'active' || status === 'setup' || status === 'device') {
      // Precopy: what this pass still has plus what has been dirtied since the last sync (an
      // upper bound: a page may be in both; QEMU's figure is an estimate too).
      return Math.min(this.toSend.count + dirty.count, this.pageCount);
    }
    if (status === 'completed') return 0;
    return this.toSend.count;
  }

  queryMigrate(status: MigrationStatus, dirty: Bitmap, errorDesc: string | undefined): Record<string, unknown> {
    const total = isFinished(status) ? this.totalTime : performance.now() - this.startedAt;
    const remaining = this.remainingPages(status, dirty);
    const ram: RamStats = {
      total: this.pageCount * this.pageSize,
      transferred: this.transferred,
      remaining: remaining * this.pageSize,
      duplicate: 0,
      normal: this.normalPages,
      'normal-bytes': this.normalPages * this.pageSize,
      'page-size': this.pageSize,
      'pages-per-second': Math.round(this.lastPps),
      mbps: Math.round(this.lastMbps * 100) / 100,
      'dirty-pages-rate': Math.round(this.dirtyPagesRate),
      'dirty-sync-count': this.dirtySyncCount,
      'precopy-bytes': this.precopyBytes,
      'postcopy-bytes': this.postcopyBytes,
      'postcopy-requests': this.postcopyRequests,
    };
    const out: Record<string, unknown> = {
      status,
      'total-time': Math.round(total),
      'setup-time': Math.round(this.setupTime),
      ram,
    };
    // QEMU reports the throttle only while it is active (populate_ram_info: cpu_throttle_active()).
    if (this.throttle.pct > 0) out['cpu-throttle-percentage'] = this.throttle.pct;
    if (this.downtime) out.downtime = Math.round(this.downtime);
    else if (status === 'active') out['expected-downtime'] = Math.round(this.bandwidthEstimate ? (remaining * this.pageSize) / this.bandwidthEstimate : 0);
    if (errorDesc && (status === 'failed' || status === 'postcopy-paused')) out['error-desc'] = errorDesc;
    if (this.verdict) out['x-verified'] = this.verdict.verified === true;
    return out;
  }

  queryPages(status: MigrationStatus, dirty: Bitmap, guest: PagesInfo['guest'], cells?: number): PagesInfo {
    const info: PagesInfo = {
      'page-size': this.pageSize,
      total: this.pageCount,
      sent: this.sentOnce.count,
      received: 0,
      requested: this.reqQueue.length,
      'in-flight': 0,
      missing: this.remainingPages(status, dirty),
      'duplicates-discarded': 0,
      resent: this.resent,
      'blocked-vcpus': 0,
      'fault-latency-us': { p50: 0, p99: 0, count: this.requestsServed },
      'blocktime-ms': 0,
      'blocktime-worst-vcpu-ms': 0,
      'wire-bytes': this.transferred,
      walker: { active: false, position: 0, total: this.pageCount, done: false },
      guest,
      recoveries: this.recoveries,
      'recovery-attempts': this.recoveryAttempts,
      verified: this.verdict ? this.verdict.verified === true : null,
    };
    // The source's view of the map: which pages have been sent at least once.
    if (cells && cells > 0) info.map = pageMap(cells, this.pageCount, this.sentOnce, this.reqQueue);
    return info;
  }
}

