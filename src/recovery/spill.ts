/**
 * The source's side of the recovery file (capability x-recovery-file), in one of two modes:
 *
 * - on-failure (the thread's sketch): when postcopy pauses, write every page the source knows
 *   it has not sent, plus the pages whose frame started within the last `x-recovery-file-window`
 *   bytes of the stream (they may have died in socket and relay buffers). Small, but only possible while the source
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
import { minimumFileBytes, RecoveryFileWriter, versionsDigest, type RecoveryMode, type WriteStats } from './format.js';

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

export class RecoverySpill {
  readonly file: string;
  /**
   * Per page, where its frame last started in the migration stream + 1 (0: never sent): the
   * window is read from it, and it goes into the file so that the recovery source can measure
   * what was in flight (assess.ts). 8 bytes a page, 32 MiB for a 16 GiB guest.
   */
  readonly positions: Float64Array;
  private writer: RecoveryFileWriter | null = null;
  private state: SpillState;
  private stats: WriteStats | null = null;
  private error: string | undefined;
  /** When the file's first byte was written (continuous: the migration's start). */
  private startedAt = 0;
  private elapsedMs = 0;
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
    this.positions = new Float64Array(host.pageCount);
    this.state = 'spilling';
    if (mode === 'continuous') {
      this.writer = this.newWriter();
      this.startedAt = performance.now();
    }
  }

  private newWriter(): RecoveryFileWriter {
    const { pageSize, pageCount } = this.host;
    return new RecoveryFileWriter(this.file, { mode: this.mode, pageSize, pageCount, windowBytes: this.mode === 'on-failure' ? this.windowBytes : 0 });
  }

  /** Pages just sent, as the encoded frames in `frames` (one per page, in order), the first at stream byte `streamPos`. */
  noteSent(pages: readonly number[], frames: Buffer, streamPos: number): void {
    const fb = pageFrameBytes(this.host.pageSize);
    for (let k = 0; k < pages.length; k++) this.positions[pages[k]] = streamPos + k * fb + 1;
    const w = this.writer;
    if (this.mode !== 'continuous' || !w || this.state !== 'spilling') return;
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
    void this.writeRest(this.writer, new Bitmap(unsent.size, unsent.bytes), 0);
  }

  /**
   * Postcopy paused with `streamBytes` written to the stream: on-failure mode writes its file
   * now (continuous has written it already): the unsent pages, and the pages whose frame
   * started within the last `windowBytes` of the stream.
   */
  paused(unsent: Bitmap, streamBytes: number): void {
    if (this.mode !== 'on-failure') return;
    this.writer?.abort();
    const pages = new Bitmap(unsent.size, unsent.bytes);
    const from = streamBytes - this.windowBytes;
    let windowPages = 0;
    for (let i = 0; i < this.positions.length; i++) {
      const pos = this.positions[i];
      if (pos > 0 && pos - 1 >= from && !pages.get(i)) {
        pages.set(i);
        windowPages++;
      }
    }
    this.writer = this.newWriter();
    this.startedAt = performance.now();
    void this.writeRest(this.writer, pages, windowPages, streamBytes, unsent);
  }

  private async writeRest(w: RecoveryFileWriter, pages: Bitmap, windowPages: number, streamBytes = 0, unsent = pages): Promise<void> {
    const gen = ++this.generation;
    this.state = 'writing';
    const { pageSize, versions } = this.host;
    // The unsent pages' content never went out: no position (the recovery source counts a
    // lacking page with a position as lost in flight). Their old positions are of stale copies.
    const unsentPages = unsent.count;
    for (let i = unsent.nextSet(0); i >= 0; i = unsent.nextSet(i + 1)) this.positions[i] = 0;
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
      this.stats = w.finish(versions, { unsentPages, windowPages, streamBytes }, this.positions);
      this.digest = versionsDigest(versions);
      this.elapsedMs = performance.now() - this.startedAt;
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

  /**
   * query-migrate's x-recovery-file, the same fields in both modes: what was written, what it
   * cost (the time in write calls, the time from the first byte to the file in place, the
   * bandwidth that used), and once written the file's size against the minimum known here
   * (the unsent pages; the pages lost in flight come on top and only the recovery source,
   * told what the destination lacks, knows them: its x-recovery-source.minimum-bytes).
   */
  report(): Record<string, unknown> {
    const { pageSize, pageCount } = this.host;
    const bytes = this.stats?.fileBytes ?? this.writer?.bytes ?? 0;
    const elapsed = this.stats ? this.elapsedMs : this.startedAt ? performance.now() - this.startedAt : 0;
    const out: Record<string, unknown> = {
      mode: this.mode,
      file: this.file,
      state: this.state,
      'window-bytes': this.mode === 'on-failure' ? this.windowBytes : 0,
      'bytes-written': bytes,
      'write-ms': Math.round(this.stats?.writeMs ?? this.writer?.writeTimeMs ?? 0),
      'elapsed-ms': Math.round(elapsed),
      // Bytes per second of wall time while the file was being written (MB/s, 10^6 bytes).
      'write-mbps': elapsed > 0 ? Math.round((bytes / 1e6 / (elapsed / 1000)) * 100) / 100 : 0,
    };
    if (this.stats) {
      const minimum = minimumFileBytes(pageSize, pageCount, this.stats.unsentPages);
      Object.assign(out, {
        // The guest's identity, for `recovery-source --expect-digest`.
        digest: this.digest,
        'file-bytes': this.stats.fileBytes,
        'held-pages': this.stats.heldPages,
        records: this.stats.records,
        'unsent-pages': this.stats.unsentPages,
        'window-pages': this.stats.windowPages,
        'stream-bytes': this.stats.streamBytes,
        'minimum-bytes-known': minimum,
        'size-vs-minimum': Math.round((this.stats.fileBytes / minimum) * 100) / 100,
      });
    }
    if (this.error) out.error = this.error;
    return out;
  }
}
