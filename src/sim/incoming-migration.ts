/**
 * Everything one incoming migration knows: which pages are placed and at what version, who
 * waits for which missing page, the x-recovery-walk walker, the counters x-query-pages
 * reports, and the final verification. A fresh migrate-incoming replaces the whole object.
 * Every page is placed exactly once from the source after switchover; a page that arrives when
 * already present is discarded and counted (as UFFDIO_COPY answers EEXIST), never written over
 * what the guest has done since.
 */
import type { PagesInfo } from '../types.js';
import { Bitmap } from './bitmap.js';
import { checkPage } from './content.js';
import { LatencyRing, pageMap } from './stats.js';
import { hop } from './loop-stats.js';
import type { VcpuStalls } from './workload.js';
import { TokenBucket } from '../util/token-bucket.js';
import { realClock } from '../util/clock.js';

export interface Waiting {
  /** When the request went out on the current connection; null while not (yet) sent. */
  sentAt: number | null;
  /** When the page was first needed. */
  neededAt: number;
  /** The vCPUs with a thread blocked on it, each once. */
  vcpus: number[];
  walker: boolean;
}

/** What the incoming migration needs from its VM. */
export interface IncomingHost {
  /** The guest's page versions (content = f(index, version)). */
  readonly versions: Uint32Array;
  /** Ask the source for a page now, if the link is up (sets `w.sentAt` when it does). */
  request(page: number, w: Waiting): void;
  /** `page` is placed: the vCPU's threads blocked on it may go on. */
  unblock(vcpu: number, page: number): void;
  /**
   * The vCPUs' stalls (every thread blocked): blocktime. The guest keeps them, as only it knows
   * when a thread's wait stalls its vCPU (QEMU counts blocktime per vCPU).
   */
  vcpuStalls(): VcpuStalls;
  /** Pages the walker may have requested at once (x-walk-window). */
  walkWindow(): number;
  /** Missing pages per second the walker may request (x-walk-rate; 0: no limit). */
  walkRate(): number;
  log(msg: string): void;
}

export interface Verdict {
  verified: boolean;
  mismatches: number[];
  pages: number;
  duplicates: number;
}

export class IncomingMigration {
  readonly present: Bitmap;
  /** The version placed from the source (what verification compares against the source). */
  private readonly placed: Uint32Array;
  /** The source's frozen versions, from x-verify at the end of the stream. */
  private sourceVersions: Uint32Array | null = null;
  private verifyReceived = 0;
  readonly waiting = new Map<number, Waiting>();
  /** The source sent its discard set: it has switched to postcopy, its guest is stopped. */
  switchoverStarted = false;
  /** postcopy-run arrived: the guest runs here. */
  postcopy = false;
  gotEof = false;
  allReceivedSent = false;
  walkMode = false;
  private walkerPos = 0;
  private walkerOutstanding = 0;
  private walkerDone = false;
  /** x-walk-rate's pacing: the bucket at the rate it was made for, and the wake-up it waits on. */
  private walkBucket: TokenBucket | null = null;
  private walkTimer: NodeJS.Timeout | null = null;
  private duplicates = 0;
  /** Bytes received on the migration connection(s): the wire moving, for "stalled". */
  wireBytes = 0;
  recoveries = 0;
  recoveryAttempts = 0;
  private readonly latency = new LatencyRing();
  private mismatches: number[] = [];
  verified: boolean | null = null;

  constructor(
    readonly pageCount: number,
    readonly pageSize: number,
    private readonly host: IncomingHost,
  ) {
    this.present = new Bitmap(pageCount);
    this.placed = new Uint32Array(pageCount);
  }

  get complete(): boolean {
    return this.present.count === this.pageCount;
  }

  /** A vCPU or the walker needs a missing page: remember who waits, and ask if the link is up. */
  need(page: number, who: { vcpu?: number; walker?: boolean }): void {
    let w = this.waiting.get(page);
    if (!w) {
      w = { sentAt: null, neededAt: performance.now(), vcpus: [], walker: false };
      this.waiting.set(page, w);
      this.host.request(page, w);
    }
    if (who.vcpu !== undefined && !w.vcpus.includes(who.vcpu)) w.vcpus.push(who.vcpu);
    if (who.walker) w.walker = true;
  }

  /** The link failed: requests already sent are lost with it and go out again after the resume. */
  requestsLost(): void {
    for (const w of this.waiting.values()) w.sentAt = null;
  }

  /** After the resume ack: ask again for every page a vCPU (or the walker) still waits on. */
  requestAgain(): void {
    for (const [page, w] of this.waiting) this.host.request(page, w);
  }

  discard(ranges: ReadonlyArray<[number, number]>): void {
    this.switchoverStarted = true;
    for (const [s, c] of ranges) for (let i = s; i < s + c; i++) this.present.clear(i);
  }

  /** A page from the source; throws (a stream error) if its bytes are not what its version says. */
  place(index: number, version: number, buf: Buffer, offset: number): void {
    if (!checkPage(buf, offset, index, version, this.pageSize)) {
      // Never place a page whose bytes are not what the source says they are.
      throw new Error(`page ${index}: content does not match version ${version} (corrupt stream)`);
    }
    if (!this.postcopy) {
      // Precopy: the guest is not running here yet; a newer copy simply replaces the older.
      this.setPage(index, version);
      return;
    }
    if (this.present.get(index)) {
      // Already placed (pushed and requested, or re-sent after a recovery): UFFDIO_COPY would
      // answer EEXIST. Dropping it keeps whatever the guest has written since.
      this.duplicates++;
      return;
    }
    this.setPage(index, version);
    const w = this.waiting.get(index);
    if (!w) return;
    this.waiting.delete(index);
    hop('placed', index);
    if (w.sentAt !== null) this.latency.add((performance.now() - w.sentAt) * 1000);
    for (const v of w.vcpus) this.host.unblock(v, index);
    if (w.walker) {
      this.walkerOutstanding--;
      this.advanceWalker();
    }
  }

  /** Pages placed from a recovery file (a recovery source served them); null until one connects. */
  private fromFile: Bitmap | null = null;

  /** Page `index`, just placed, came from a recovery source. */
  noteFromFile(index: number): void {
    (this.fromFile ??= new Bitmap(this.pageCount)).set(index);
  }

  private setPage(index: number, version: number): void {
    this.present.set(index);
    this.placed[index] = version;
    this.host.versions[index] = version;
  }

  noteVerify(start: number, versions: Uint32Array): void {
    if (!this.sourceVersions) this.sourceVersions = new Uint32Array(this.pageCount);
    this.sourceVersions.set(versions, start);
    this.verifyReceived += versions.length;
  }

  /** Compare every placed page with the source's frozen versions. */
  verify(): Verdict {
    const src = this.sourceVersions;
    const mismatches: number[] = [];
    if (!src || this.verifyReceived < this.pageCount) {
      this.verified = false;
    } else {
      for (let i = 0; i < this.pageCount; i++) {
        if (this.placed[i] !== src[i]) {
          mismatches.push(i);
          if (mismatches.length >= 64) break;
        }
      }
      this.verified = mismatches.length === 0;
    }
    this.mismatches = mismatches;
    return { verified: this.verified, mismatches: mismatches.slice(0, 16), pages: this.pageCount, duplicates: this.duplicates };
  }

  // ---- the walker (x-recovery-walk: the thread's steps f and h) ---------------------------

  startWalker(): void {
    this.walkerPos = 0;
    this.walkerDone = false;
    this.walkerOutstanding = 0;
    for (const w of this.waiting.values()) w.walker = false;
    this.advanceWalker();
  }

  /** The walker stops for good (this migration is replaced): no paced wake-up is left behind. */
  stopWalker(): void {
    this.walkerDone = true;
    if (this.walkTimer) clearTimeout(this.walkTimer);
    this.walkTimer = null;
  }

  /**
   * Touch pages in order; a missing one is requested and the walker waits (window permitting),
   * at most x-walk-rate requests a second: past that it sleeps until the next one is due.
   */
  advanceWalker(): void {
    if (!this.walkMode || this.walkerDone) return;
    if (this.walkTimer) {
      clearTimeout(this.walkTimer);
      this.walkTimer = null;
    }
    const window = this.host.walkWindow();
    const rate = this.host.walkRate();
    if (rate <= 0) this.walkBucket = null;
    else if (this.walkBucket?.bytesPerSec !== rate) this.walkBucket = new TokenBucket(realClock, rate);
    while (this.walkerOutstanding < window) {
      const next = this.present.nextClear(this.walkerPos);
      if (next < 0) {
        this.walkerPos = this.pageCount;
        break;
      }
      if (this.walkBucket && !this.waiting.get(next)?.walker) {
        const wait = this.walkBucket.waitMs();
        if (wait > 0) {
          this.walkTimer = setTimeout(() => {
            this.walkTimer = null;
            this.advanceWalker();
          }, Math.ceil(wait));
          return;
        }
        this.walkBucket.take(1);
      }
      this.walkerPos = next + 1;
      if (this.waiting.get(next)?.walker) continue;
      this.need(next, { walker: true });
      this.walkerOutstanding++;
    }
    if (this.walkerPos >= this.pageCount && this.walkerOutstanding === 0) {
      this.walkerDone = true;
      this.host.log('walker: every page is present');
    }
  }

  // ---- what x-query-pages and query-migrate report -------------------------------------------

  queryPages(guest: PagesInfo['guest'], cells?: number): PagesInfo {
    let inFlight = 0;
    for (const w of this.waiting.values()) if (w.sentAt !== null) inFlight++;
    const stalls = this.host.vcpuStalls();
    const info: PagesInfo = {
      'page-size': this.pageSize,
      total: this.pageCount,
      sent: 0,
      received: this.present.count,
      requested: this.waiting.size,
      'in-flight': inFlight,
      missing: this.pageCount - this.present.count - this.waiting.size,
      'duplicates-discarded': this.duplicates,
      resent: 0,
      'blocked-vcpus': stalls.blocked,
      'fault-latency-us': this.latency.percentiles(),
      'blocktime-ms': Math.round(stalls.totalMs),
      'blocktime-worst-vcpu-ms': Math.round(stalls.worstMs),
      'wire-bytes': this.wireBytes,
      walker: { active: this.walkMode && !this.walkerDone, position: this.walkerPos, total: this.pageCount, done: this.walkerDone },
      guest,
      recoveries: this.recoveries,
      'recovery-attempts': this.recoveryAttempts,
      verified: this.verified,
    };
    if (this.mismatches.length) info.mismatches = this.mismatches.slice(0, 16);
    if (this.fromFile) info['from-file'] = this.fromFile.count;
    if (cells && cells > 0) info.map = pageMap(cells, this.pageCount, this.present, this.waiting.keys(), this.fromFile ?? undefined);
    return info;
  }
}
