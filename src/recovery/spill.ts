/**
 * The source's side of the recovery file (capability x-recovery-file), in one of two modes:
 *
 * - on-failure (the thread's sketch): when postcopy pauses, write every page the source knows
 *   it has not sent, plus the pages among the last `x-recovery-file-window` bytes it did send
 *   (they may have died in socket and relay buffers). Small, but only possible while the source
 *   host still lives after the failure.
 * - continuous (x-recovery-file-continuous, VMware's shared-storage style): every page sent is
 *   appended as it goes, and at switchover the pages not yet sent follow in the background; the
 *   file is complete (renamed into place) once they are written, and from then on survives a
 *   source host that dies with the link. It costs write bandwidth all along and holds stale
 *   copies of pages dirtied after they were sent.
 *
 * The file's location is not a QMP argument: a path from the monitor would let any QMP client
 * write anywhere the VM process may. The directory is fixed when the VM is started (vm-main's
 * `--recovery-dir`, by default the run's runtime directory, where its QMP socket lives) and the
 * name is the VM's: `<dir>/<name>.recovery`.
 */
import path from 'node:path';
import { Bitmap } from '../sim/bitmap.js';
import { writePage } from '../sim/content.js';
import { pageFrameBytes } from '../sim/wire.js';
import { recordBytes, RecoveryFileWriter, versionsDigest, type RecoveryMode, type WriteStats } from './format.js';

/** The thread's "~20MByte (enough for a few packet buffers)". */
export const DEFAULT_RECOVERY_WINDOW = 20 * 1024 * 1024;
/** Yield to the event loop (QMP, the return path) after this many bytes written. */
const YIELD_BYTES = 4 * 1024 * 1024;

/** What the spill needs from the source VM. */
export interface SpillHost {
  readonly pageSize: number;
  readonly pageCount: number;
  readonly versions: Uint32Array;
  log(msg: string): void;
}

/** Where a VM named `name` writes its recovery file. */
export function recoveryFilePath(dir: string, name: string): string {
  return path.join(dir, `${name}.recovery`);
}

type SpillState = 'spilling' | 'writing' | 'written' | 'failed';

/** The page indices of the last `capacity` pages sent, oldest first when read. */
class SentRing {
  private readonly ring: Int32Array;
  private head = 0;
  private n = 0;
  constructor(readonly capacity: number) {
    this.ring = new Int32Array(Math.max(1, capacity));
  }
  push(page: number): void {
    if (this.capacity === 0) return;
    this.ring[this.head] = page;
    this.head = (this.head + 1) % this.capacity;
    this.n = Math.min(this.n + 1, this.capacity);
  }
  forEach(f: (page: number) => void): void {
    for (let k = 0; k < this.n; k++) f(this.ring[(this.head - this.n + k + this.capacity) % this.capacity]);
  }
}

export class RecoverySpill {
  readonly file: string;
  private readonly ring: SentRing;
  private writer: RecoveryFileWriter | null = null;
  private state: SpillState;
  private stats: WriteStats | null = null;
  private error: string | undefined;
  private startedAt = 0;
  private writeMs = 0;
  private digest = '';
  /** Bumped on every new write, so an older background write stops when superseded. */
  private generation = 0;

  constructor(
    private readonly host: SpillHost,
    readonly mode: RecoveryMode,
    readonly windowBytes: number,
    dir: string,
    name: string,
  ) {
    this.file = recoveryFilePath(dir, name);
    this.ring = new SentRing(mode === 'on-failure' ? Math.ceil(windowBytes / pageFrameBytes(host.pageSize)) : 0);
    this.state = 'spilling';
    if (mode === 'continuous') this.writer = this.newWriter();
  }

  private newWriter(): RecoveryFileWriter {
    const { pageSize, pageCount } = this.host;
    return new RecoveryFileWriter(this.file, { mode: this.mode, pageSize, pageCount, windowBytes: this.mode === 'on-failure' ? this.windowBytes : 0 });
  }

  /** Pages just sent, as the encoded frames in `frames` (one per page, in order). */
  noteSent(pages: readonly number[], frames: Buffer): void {
    for (const p of pages) this.ring.push(p);
    const w = this.writer;
    if (this.mode !== 'continuous' || !w || this.state !== 'spilling') return;
    const fb = pageFrameBytes(this.host.pageSize);
    try {
      // A frame is [type][len][index][version][page]: the page's bytes start 13 bytes in.
      for (let k = 0; k < pages.length; k++) w.append(pages[k], frames.readUInt32BE(k * fb + 9), frames, k * fb + 13);
    } catch (e) {
      this.failed(e);
    }
  }

  /** Switchover (the guest is frozen here now): continuous mode writes what was never sent. */
  switchover(unsent: Bitmap): void {
    if (this.mode !== 'continuous' || !this.writer || this.state !== 'spilling') return;
    void this.writeRest(this.writer, unsent.count, new Bitmap(unsent.size, unsent.bytes), 0);
  }

  /** Postcopy paused: on-failure mode writes its file now (continuous has written it already). */
  paused(unsent: Bitmap): void {
    if (this.mode !== 'on-failure') return;
    this.writer?.abort();
    const pages = new Bitmap(unsent.size, unsent.bytes);
    const unsentCount = pages.count;
    this.ring.forEach((p) => pages.set(p));
    this.writer = this.newWriter();
    void this.writeRest(this.writer, unsentCount, pages, pages.count - unsentCount);
  }

  private async writeRest(w: RecoveryFileWriter, unsentPages: number, pages: Bitmap, windowPages: number): Promise<void> {
    const gen = ++this.generation;
    this.state = 'writing';
    this.startedAt = performance.now();
    const { pageSize, versions } = this.host;
    const page = Buffer.allocUnsafe(pageSize);
    try {
      let since = 0;
      for (let i = pages.nextSet(0); i >= 0; i = pages.nextSet(i + 1)) {
        writePage(page, 0, i, versions[i], pageSize);
        w.append(i, versions[i], page);
        if ((since += pageSize) >= YIELD_BYTES) {
          since = 0;
          await new Promise<void>((r) => setImmediate(r));
          if (gen !== this.generation) return;
        }
      }
      this.stats = w.finish(versions, { unsentPages, windowPages });
      this.digest = versionsDigest(versions);
      this.writeMs = performance.now() - this.startedAt;
      this.state = 'written';
      this.host.log(`recovery file written: ${this.file}, ${this.stats.fileBytes} bytes, ${this.stats.heldPages} pages (${unsentPages} unsent + ${windowPages} from the window)`);
    } catch (e) {
      w.abort();
      this.failed(e);
    }
  }

  private failed(e: unknown): void {
    this.state = 'failed';
    this.error = (e as Error).message ?? String(e);
    this.host.log(`recovery file failed: ${this.error}`);
    this.writer?.abort();
  }

  /** The process is going away: a file not yet complete is not left half-written. */
  abort(): void {
    this.generation++;
    if (this.state !== 'written') this.writer?.abort();
  }

  /** query-migrate's x-recovery-file. */
  report(): Record<string, unknown> {
    const rec = recordBytes(this.host.pageSize);
    const out: Record<string, unknown> = {
      mode: this.mode,
      file: this.file,
      state: this.state,
      'window-bytes': this.mode === 'on-failure' ? this.windowBytes : 0,
      'bytes-written': this.stats?.fileBytes ?? this.writer?.bytes ?? 0,
    };
    if (this.stats) {
      Object.assign(out, {
        // The guest's identity, for `recovery-source --expect-digest`.
        digest: this.digest,
        'file-bytes': this.stats.fileBytes,
        'held-pages': this.stats.heldPages,
        records: this.stats.records,
        'unsent-pages': this.stats.unsentPages,
        'window-pages': this.stats.windowPages,
        // What any file must hold at least: the pages never sent (the pages really lost in
        // flight are known only when the destination says what it lacks: the recovery source).
        'minimum-bytes-known': this.stats.unsentPages * rec,
        'write-ms': Math.round(this.stats.writeMs),
        'elapsed-ms': Math.round(this.writeMs),
      });
    }
    if (this.error) out.error = this.error;
    return out;
  }
}
