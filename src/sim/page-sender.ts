/**
 * The source's migration thread for one connection: page requests first, then the background
 * push, one batch per write, paced by max-bandwidth / max-postcopy-bandwidth with the shared
 * token bucket, waiting for the socket to drain between writes. It ends when its channel
 * closes; a new connection gets a new sender.
 */
import { realClock } from '../util/clock.js';
import { TokenBucket } from '../util/token-bucket.js';
import type { MigrationStatus } from '../types.js';
import type { Channel } from './channel.js';
import type { SourceMigration } from './source-migration.js';
import { isPostcopy } from './states.js';
import type { MigrationParameters } from './vm.js';
import { pageBuffer } from './content.js';
import { encodePagesInto, pageFrameBytes } from './wire.js';
import { hop, task, taskStart } from './loop-stats.js';

/** Pages per write: big enough for throughput, small enough that a request is not stuck behind much. */
export const PRECOPY_BATCH = 64;
export const POSTCOPY_BATCH = 16;
/**
 * Keep writing until this much waits in user space, then wait for the kernel to take it. A
 * requested page sent on the main channel (no postcopy-preempt) queues behind all of it, and
 * the kernel's own buffers already hold megabytes: more here buys no throughput.
 */
const WRITE_HIGH_WATER = 128 * 1024;
/**
 * The longest the pump writes without giving the event loop a turn, in ms. A page request on
 * the return path is read only in such a turn, so this bounds what the pump adds to a fault's
 * latency (QEMU's preempt channel: ~0.2-0.6 ms per fault); a turn costs a few microseconds.
 */
const YIELD_MS = 0.25;
/**
 * Encode buffers kept for reuse: each batch would otherwise be a fresh 64-256 KiB allocation,
 * and at a gigabyte a second the collections those cause are pauses in the pump. Each is a
 * pageBuffer (pages made into it allocate nothing), sized for the largest batch so one serves
 * every phase; at most this many are made, and each is kept.
 */
const SPARE_BUFFERS = 8;

/** What the sender needs from the source VM: its state, and the transitions the pump drives. */
export interface SenderHost {
  readonly status: MigrationStatus;
  readonly params: MigrationParameters;
  readonly versions: Uint32Array;
  readonly pageSize: number;
  /** The current migration (replaced on a new `migrate`). */
  readonly m: SourceMigration;
  /** migrate-start-postcopy takes effect. */
  switchToPostcopy(): void;
  /** A precopy pass is over: sync the dirty log and decide. */
  endOfPass(): void;
  /** Send the frozen versions and the end of the stream. */
  sendEof(): void;
  /** The frames for `pages`; by default made from `versions` (the recovery source reads its file). */
  encodePages?(pages: readonly number[]): Buffer;
  /**
   * Pages just went out as `frames` (the recovery file's window and continuous spill). The
   * sender reuses `frames` once the kernel has taken them: copy what must be kept.
   */
  pagesSent?(pages: readonly number[], frames: Buffer): void;
}

/** A reused encode buffer: nothing about it is allocated per batch. */
interface EncodeSlot {
  readonly whole: Buffer;
  /** whole[0, the last batch's bytes). */
  view: Buffer;
  readonly release: () => void;
}

export class PageSender {
  private wakeUp: (() => void) | null = null;
  private readonly bucket = new TokenBucket(realClock);
  /** Encode buffers the kernel has taken all of (see SPARE_BUFFERS). */
  private readonly spare: EncodeSlot[] = [];
  /** Slots made, at most SPARE_BUFFERS: each is kept for good. */
  private slots = 0;
  /** The background batch, one array refilled each time. */
  private readonly batch: number[] = [];

  constructor(
    private readonly host: SenderHost,
    private readonly ch: Channel,
  ) {}

  /** Wakes the pump if it is waiting for work or sleeping for pacing. */
  kick(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** Encode, account and write pages on `ch` (the main channel, or the preempt channel). */
  sendPages(pages: readonly number[], ch: Channel = this.ch): number {
    const { m, pageSize } = this.host;
    const frameBytes = pageFrameBytes(pageSize);
    const bytes = frameBytes * pages.length;
    // A slot for a whole batch. A few requested pages (or the push's last) take a fresh buffer,
    // and so does a batch when every slot is in flight (the pump writes several batches per
    // turn and their callbacks come after it): a slot made then, a megabyte (pageBuffer), would
    // be dropped later, and enough of those start the old generation's collections.
    let slot: EncodeSlot | null = null;
    if (!this.host.encodePages && pages.length >= POSTCOPY_BATCH) {
      slot = this.spare.pop() ?? (this.slots < SPARE_BUFFERS ? this.newSlot(frameBytes * Math.max(pages.length, PRECOPY_BATCH), pageSize) : null);
    }
    let buf: Buffer;
    if (this.host.encodePages) buf = this.host.encodePages(pages);
    else if (!slot) buf = encodePagesInto(Buffer.allocUnsafe(bytes), pages, this.host.versions, pageSize);
    else {
      // The view of the batch's length, kept while batches keep that length (nearly all do).
      if (slot.view.length !== bytes) slot.view = slot.whole.subarray(0, bytes);
      buf = encodePagesInto(slot.view, pages, this.host.versions, pageSize);
    }
    m.noteSent(pages, frameBytes, isPostcopy(this.host.status));
    this.host.pagesSent?.(pages, buf);
    m.transferred += buf.length;
    if (!slot) ch.write(buf);
    else ch.write(buf, slot.release);
    return buf.length;
  }

  /** An encode buffer, and the one function that returns it to the spares once the kernel took it. */
  private newSlot(bytes: number, pageSize: number): EncodeSlot {
    const whole = pageBuffer(bytes, pageSize);
    this.slots++;
    const slot: EncodeSlot = { whole, view: whole, release: () => this.spare.push(slot) };
    return slot;
  }

  /** Requested pages, up to one batch; 0 if none wait. */
  private sendRequested(ch: Channel = this.ch): number {
    const { m } = this.host;
    if (m.reqQueue.length === 0) return 0;
    const pages = m.reqQueue.splice(0, POSTCOPY_BATCH);
    m.requestsServed += pages.length;
    const n = this.sendPages(pages, ch);
    for (const p of pages) hop('written', p);
    return n;
  }

  /** Every queued request at once, on the preempt channel. */
  servePreempt(preempt: Channel): void {
    while (this.host.m.reqQueue.length && preempt.open) this.sendRequested(preempt);
  }

  async run(): Promise<void> {
    const h = this.host;
    let lastYield = performance.now();
    let slice = taskStart();
    while (this.ch.open) {
      const { m } = h;
      if (h.status === 'active' && m.postcopyRequested && !m.completingPrecopy) {
        h.switchToPostcopy();
        continue;
      }
      const postcopy = h.status === 'postcopy-active';
      // Precopy, or its last pass with the guest stopped (`device` since QEMU 10.0).
      const precopy = h.status === 'active' || h.status === 'device';
      let sent = this.sendRequested();
      let background = false;
      if (!sent && (precopy || (postcopy && !m.walkMode))) {
        // A page request wakes the pacing sleep early; the background push must still wait out
        // what it owes the cap, or every request would let one more batch through.
        const owed = this.bucket.bytesPerSec > 0 ? this.bucket.waitMs() : 0;
        if (owed > 0) {
          task('pump', slice);
          await this.sleep(owed);
          slice = taskStart();
          continue;
        }
        const pages = m.nextBackgroundPages(postcopy ? POSTCOPY_BATCH : PRECOPY_BATCH, postcopy, this.batch);
        if (pages.length) sent = this.sendPages(pages);
        background = sent > 0;
      }
      if (!sent) {
        if (precopy && !m.eofSent) {
          h.endOfPass();
          continue;
        }
        if (postcopy && !m.walkMode && m.toSend.count === 0 && !m.eofSent) h.sendEof();
        task('pump', slice);
        await this.sleep(Infinity);
        slice = taskStart();
        continue;
      }
      if (this.ch.writableLength >= WRITE_HIGH_WATER) {
        task('pump', slice);
        await this.ch.waitDrain();
        slice = taskStart();
        lastYield = performance.now();
      } else if (performance.now() - lastYield >= YIELD_MS) {
        task('pump', slice);
        // The kernel takes writes at once while its buffer has room (megabytes on loopback):
        // without a yield this loop would not look at the return path, and the page requests
        // waiting there, until that buffer is full. setImmediate, not a timer: the turn polls
        // the sockets and comes straight back.
        await new Promise<void>((r) => setImmediate(r));
        slice = taskStart();
        lastYield = performance.now();
      }
      if (background) {
        const limit = postcopy ? h.params['max-postcopy-bandwidth'] : m.completingPrecopy ? 0 : h.params['max-bandwidth'];
        if (this.bucket.bytesPerSec !== limit) this.bucket.setRate(limit);
        const wait = this.bucket.take(sent);
        if (wait > 0) {
          task('pump', slice);
          await this.sleep(wait);
          slice = taskStart();
        }
      }
    }
  }

  /** Sleep for pacing (or until there is work), but wake at once for a page request. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (!this.ch.open) return resolve();
      const t = Number.isFinite(ms)
        ? setTimeout(() => {
            if (this.wakeUp === done) this.wakeUp = null;
            resolve();
          }, ms)
        : null;
      const done = () => {
        if (t) clearTimeout(t);
        resolve();
      };
      this.wakeUp = done;
    });
  }
}
