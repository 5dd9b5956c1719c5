/**
 * The recovery file (issue 12; VMware's QuickResume buffer, Gilbert's sketch in the 2016
 * thread): the pages a destination may still need when the source host is lost during
 * postcopy, with enough identity to refuse a file that is not this guest's.
 *
 * Layout (format version 2), big-endian unless said otherwise:
 *   header   160 bytes: magic "PCLRECF\0", version, mode, page size, page count, window bytes,
 *            record count, where the versions table, the positions table and the bitmap are, the
 *            whole file's length, the sha-256 of the versions table (the guest's identity), the
 *            sizing counters, the stream bytes at the failure, and the first 16 bytes of the
 *            header's own sha-256.
 *   records  one per page written: index u32, version u32, the page's bytes, 16 bytes of the
 *            sha-256 of those. A page may appear more than once (continuous mode spills every
 *            copy sent); only a record of the frozen version counts as held.
 *   versions the source's frozen version of every page (u32 little-endian, as x-verify carries
 *            them): what the recovery source sends at the end for the destination's verification.
 *   positions per page, where in the migration stream (its byte offset, + 1) the page's frame
 *            last started, for the pages whose frozen content had been sent; 0 for a page never
 *            sent (the unsent pages). u64 each, then 16 bytes of the table's sha-256. With the
 *            stream bytes at the failure, this is what lets the recovery source measure how many
 *            bytes were in flight when the destination lacks a page that had been sent, and so
 *            the window that would have been enough (8 bytes a page: 32 MiB for a 16 GiB guest,
 *            written and read in 1 MiB pieces). Continuous mode writes its file at switchover,
 *            before any failure: its positions are those of then, its stream bytes 0 (unknown).
 *   bitmap   the pages the file holds (a record of the frozen version), then 16 bytes of its sha-256.
 *
 * Version 1 (no positions table, a 128-byte header) is refused: it cannot say what was in flight.
 *
 * The header is written last (a positional write over the reserved bytes) because the record
 * count and the offsets are only known at the end; the file is written under a temporary name,
 * fsynced and renamed, so a reader sees either no file or a whole one. Writing is streamed
 * through one 1 MiB buffer: a 16 GiB guest's file never holds more than that of its pages.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Bitmap } from '../sim/bitmap.js';

export const RECOVERY_MAGIC = Buffer.from('PCLRECF\0', 'latin1');
export const RECOVERY_VERSION = 2;
export const HEADER_BYTES = 160;
/** The header's bytes covered by its checksum (the checksum follows them). */
const HEADER_SUMMED = HEADER_BYTES - 16;
const SUM_BYTES = 16;
const CHUNK = 1 << 20;

export type RecoveryMode = 'on-failure' | 'continuous';
const MODES: readonly RecoveryMode[] = ['on-failure', 'continuous'];

/** A file that cannot be used, and exactly why. */
export class RecoveryFileError extends Error {
  override name = 'RecoveryFileError';
}

/** What the file says about itself (the header), plus what a reader derives from it. */
export interface RecoveryHeader {
  version: number;
  mode: RecoveryMode;
  pageSize: number;
  pageCount: number;
  /** x-recovery-file-window: bytes of the last pages sent that the source wrote again. */
  windowBytes: number;
  recordCount: number;
  versionsOffset: number;
  positionsOffset: number;
  bitmapOffset: number;
  fileBytes: number;
  /** sha-256 of the frozen versions table, hex: the guest's identity. */
  digest: string;
  /** Pages the source knew it had not sent when it wrote the file. */
  unsentPages: number;
  /** Pages written because they were sent within the last `windowBytes` of the stream. */
  windowPages: number;
  /** Bytes of the migration stream written when postcopy failed (0: not known, continuous mode). */
  streamBytes: number;
}

export function recordBytes(pageSize: number): number {
  return 8 + pageSize + SUM_BYTES;
}

/** A file's bytes besides its records: header, versions, positions, bitmap (what any file costs). */
export function fileOverheadBytes(pageCount: number): number {
  return HEADER_BYTES + pageCount * 4 + pageCount * 8 + SUM_BYTES + Math.ceil(pageCount / 8) + SUM_BYTES;
}

/** The smallest file that holds `pages` pages (one record each). */
export function minimumFileBytes(pageSize: number, pageCount: number, pages: number): number {
  return fileOverheadBytes(pageCount) + pages * recordBytes(pageSize);
}

function sum16(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest().subarray(0, SUM_BYTES);
}

/** sha-256 of a versions table as its bytes lie (little-endian), hex. */
export function versionsDigest(versions: Uint32Array): string {
  return createHash('sha256').update(versionsBytes(versions)).digest('hex');
}

function versionsBytes(versions: Uint32Array): Buffer {
  const b = Buffer.allocUnsafe(versions.length * 4);
  for (let i = 0; i < versions.length; i++) b.writeUInt32LE(versions[i], i * 4);
  return b;
}

function encodeHeader(h: RecoveryHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  RECOVERY_MAGIC.copy(b, 0);
  b.writeUInt16BE(h.version, 8);
  b.writeUInt16BE(MODES.indexOf(h.mode), 10);
  b.writeUInt32BE(h.pageSize, 12);
  b.writeUInt32BE(h.pageCount, 16);
  b.writeBigUInt64BE(BigInt(h.windowBytes), 24);
  b.writeBigUInt64BE(BigInt(h.recordCount), 32);
  b.writeBigUInt64BE(BigInt(h.versionsOffset), 40);
  b.writeBigUInt64BE(BigInt(h.bitmapOffset), 48);
  b.writeBigUInt64BE(BigInt(h.fileBytes), 56);
  Buffer.from(h.digest, 'hex').copy(b, 64);
  b.writeBigUInt64BE(BigInt(h.unsentPages), 96);
  b.writeBigUInt64BE(BigInt(h.windowPages), 104);
  b.writeBigUInt64BE(BigInt(h.positionsOffset), 112);
  b.writeBigUInt64BE(BigInt(h.streamBytes), 120);
  sum16(b.subarray(0, HEADER_SUMMED)).copy(b, HEADER_SUMMED);
  return b;
}

export interface WriterOptions {
  mode: RecoveryMode;
  pageSize: number;
  pageCount: number;
  windowBytes: number;
}

/** What writing cost, for query-migrate and the inspect command. */
export interface WriteStats {
  file: string;
  fileBytes: number;
  records: number;
  heldPages: number;
  unsentPages: number;
  windowPages: number;
  streamBytes: number;
  writeMs: number;
}

/**
 * Streams a recovery file: `append` page records in any order (duplicates allowed), then
 * `finish` with the frozen versions. Synchronous primitive writes through one buffer; the
 * caller decides when to yield (the on-failure writer does, so QMP stays answered).
 */
export class RecoveryFileWriter {
  private readonly tmp: string;
  private fd: number;
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private offset = HEADER_BYTES;
  private records = 0;
  /** The last version appended per page (+ which pages have any record): decides what is held. */
  private readonly lastVersion: Uint32Array;
  private readonly recorded: Bitmap;
  private readonly rec: number;
  private writeMs = 0;
  private done = false;

  constructor(readonly file: string, readonly opts: WriterOptions) {
    this.tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
    this.fd = fs.openSync(this.tmp, 'w', 0o600);
    this.rec = recordBytes(opts.pageSize);
    this.lastVersion = new Uint32Array(opts.pageCount);
    this.recorded = new Bitmap(opts.pageCount);
    this.timed(() => fs.writeSync(this.fd, Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, 0));
  }

  /** Bytes written so far (records and the reserved header). */
  get bytes(): number {
    return this.offset + this.used;
  }

  /** Time spent in write and fsync calls so far, ms. */
  get writeTimeMs(): number {
    return this.writeMs;
  }

  /** One page record: `page[offset, offset+pageSize)` must be page `index` at `version`. */
  append(index: number, version: number, page: Uint8Array, offset = 0): void {
    const { pageSize, pageCount } = this.opts;
    if (index >= pageCount) throw new RangeError(`page ${index} is outside the guest (${pageCount} pages)`);
    if (this.used + this.rec > CHUNK) this.flush();
    const b = this.buf;
    const o = this.used;
    b.writeUInt32BE(index, o);
    b.writeUInt32BE(version >>> 0, o + 4);
    b.set(page.subarray(offset, offset + pageSize), o + 8);
    sum16(b.subarray(o, o + 8 + pageSize)).copy(b, o + 8 + pageSize);
    this.used += this.rec;
    this.records++;
    this.lastVersion[index] = version >>> 0;
    this.recorded.set(index);
  }

  private flush(): void {
    if (this.used === 0) return;
    const n = this.used;
    this.timed(() => fs.writeSync(this.fd, this.buf, 0, n, this.offset));
    this.offset += n;
    this.used = 0;
  }

  private timed(f: () => void): void {
    const t = performance.now();
    f();
    this.writeMs += performance.now() - t;
  }

  /**
   * Versions table, positions table, bitmap, header; fsync; rename over `file`; fsync the
   * directory. `positions[i]`: where page i's frame last started in the stream, + 1 (0: unsent).
   */
  finish(versions: Uint32Array, sizing: { unsentPages: number; windowPages: number; streamBytes: number }, positions?: Float64Array): WriteStats {
    const { pageCount, pageSize, mode, windowBytes } = this.opts;
    if (versions.length !== pageCount) throw new RangeError(`versions table has ${versions.length} entries, the guest ${pageCount} pages`);
    this.flush();
    const held = new Bitmap(pageCount);
    for (let i = this.recorded.nextSet(0); i >= 0; i = this.recorded.nextSet(i + 1)) if (this.lastVersion[i] === versions[i]) held.set(i);
    const vb = versionsBytes(versions);
    const versionsOffset = this.offset;
    const positionsOffset = versionsOffset + vb.length;
    const bitmapOffset = positionsOffset + pageCount * 8 + SUM_BYTES;
    const bm = Buffer.from(held.bytes.buffer, held.bytes.byteOffset, held.bytes.byteLength);
    const fileBytes = bitmapOffset + bm.length + SUM_BYTES;
    const header = encodeHeader({
      version: RECOVERY_VERSION,
      mode,
      pageSize,
      pageCount,
      windowBytes,
      recordCount: this.records,
      versionsOffset,
      positionsOffset,
      bitmapOffset,
      fileBytes,
      digest: createHash('sha256').update(vb).digest('hex'),
      ...sizing,
    });
    this.timed(() => {
      fs.writeSync(this.fd, vb, 0, vb.length, versionsOffset);
      this.writePositions(positionsOffset, positions);
      fs.writeSync(this.fd, Buffer.concat([bm, sum16(bm)]), 0, bm.length + SUM_BYTES, bitmapOffset);
      fs.writeSync(this.fd, header, 0, HEADER_BYTES, 0);
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      fs.renameSync(this.tmp, this.file);
      // The rename is durable only once the directory is.
      const dfd = fs.openSync(path.dirname(this.file), 'r');
      try {
        fs.fsyncSync(dfd);
      } finally {
        fs.closeSync(dfd);
      }
    });
    this.done = true;
    return { file: this.file, fileBytes, records: this.records, heldPages: held.count, ...sizing, writeMs: this.writeMs };
  }

  /** The positions table in 1 MiB pieces, then its checksum (a 16 GiB guest's is 32 MiB). */
  private writePositions(at: number, positions: Float64Array | undefined): void {
    const { pageCount } = this.opts;
    if (positions && positions.length !== pageCount) throw new RangeError(`positions table has ${positions.length} entries, the guest ${pageCount} pages`);
    const h = createHash('sha256');
    const per = CHUNK / 8;
    for (let s = 0; s < pageCount; s += per) {
      const n = Math.min(per, pageCount - s);
      const b = this.buf.subarray(0, n * 8);
      for (let k = 0; k < n; k++) b.writeBigUInt64BE(BigInt(positions ? positions[s + k] : 0), k * 8);
      h.update(b);
      fs.writeSync(this.fd, b, 0, b.length, at + s * 8);
    }
    fs.writeSync(this.fd, h.digest().subarray(0, SUM_BYTES), 0, SUM_BYTES, at + pageCount * 8);
  }

  /** Give up: the temporary file goes, nothing is renamed. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    try {
      fs.closeSync(this.fd);
    } catch {
      // closed already
    }
    fs.rmSync(this.tmp, { force: true });
  }
}

/** The temporary file a writer of `file` left behind (it was stopped before finishing), if any. */
function partialOf(file: string): string | null {
  const prefix = `.${path.basename(file)}.tmp-`;
  try {
    const found = fs.readdirSync(path.dirname(file)).find((n) => n.startsWith(prefix));
    return found ? path.join(path.dirname(file), found) : null;
  } catch {
    return null;
  }
}

/** The positions table, read and checked in 1 MiB pieces. */
function readPositions(fd: number, h: RecoveryHeader, bad: (what: string) => RecoveryFileError): Float64Array {
  const out = new Float64Array(h.pageCount);
  const hash = createHash('sha256');
  const per = CHUNK / 8;
  const b = Buffer.alloc(CHUNK);
  for (let s = 0; s < h.pageCount; s += per) {
    const n = Math.min(per, h.pageCount - s);
    fs.readSync(fd, b, 0, n * 8, h.positionsOffset + s * 8);
    hash.update(b.subarray(0, n * 8));
    for (let k = 0; k < n; k++) out[s + k] = Number(b.readBigUInt64BE(k * 8));
  }
  const sum = Buffer.alloc(SUM_BYTES);
  fs.readSync(fd, sum, 0, SUM_BYTES, h.positionsOffset + h.pageCount * 8);
  if (!hash.digest().subarray(0, SUM_BYTES).equals(sum)) throw bad('positions table checksum mismatch (the table of stream positions is corrupt)');
  return out;
}

/** What a reader may require of the file: the guest it must belong to. */
export interface ExpectGuest {
  pageSize?: number;
  pageCount?: number;
  /** The versions digest (hex) the source reported. */
  digest?: string;
}

/**
 * A validated recovery file. `open` reads every record and checks its checksum before
 * anything is served: a file with one bad record is refused whole, so no page of it is ever
 * placed. Pages are read back (and checked again) on demand; only the index is kept.
 */
export class RecoveryFile {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly header: RecoveryHeader,
    readonly versions: Uint32Array,
    readonly held: Bitmap,
    /** Per page, the record number of its held record + 1 (0: not held). */
    private readonly where: Uint32Array,
    /** Per page, where its frame last started in the stream + 1 (0: unsent); see the layout. */
    readonly positions: Float64Array,
  ) {}

  static open(file: string, expect: ExpectGuest = {}): RecoveryFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      const partial = (e as NodeJS.ErrnoException).code === 'ENOENT' ? partialOf(file) : null;
      if (partial) {
        throw new RecoveryFileError(
          `recovery file ${file} was never completed: ${partial} is the part written before its writer stopped ` +
            `(a file is renamed into place only once every page it must hold is in it; in continuous mode, once the pages unsent at switchover are written)`,
        );
      }
      throw new RecoveryFileError(`cannot open recovery file ${file}: ${(e as Error).message}`);
    }
    try {
      return RecoveryFile.validate(file, fd, expect);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private static validate(file: string, fd: number, expect: ExpectGuest): RecoveryFile {
    const bad = (what: string) => new RecoveryFileError(`recovery file ${file}: ${what}`);
    const size = fs.fstatSync(fd).size;
    const hb = Buffer.alloc(HEADER_BYTES);
    const got = fs.readSync(fd, hb, 0, HEADER_BYTES, 0);
    if (got < 8 || !hb.subarray(0, 8).equals(RECOVERY_MAGIC)) {
      throw bad(`not a postcopy-lab recovery file (magic ${JSON.stringify(hb.subarray(0, Math.min(got, 8)).toString('latin1'))}, expected "PCLRECF\\0")`);
    }
    const version = hb.readUInt16BE(8);
    if (version !== RECOVERY_VERSION) {
      throw bad(
        `format version ${version} is not supported (this build reads version ${RECOVERY_VERSION}` +
          (version < RECOVERY_VERSION ? ': a version 1 file has no record of what was in flight at the failure; write it again with this build)' : ')'),
      );
    }
    if (got < HEADER_BYTES) throw bad(`truncated: ${size} bytes, the header alone is ${HEADER_BYTES}`);
    if (!sum16(hb.subarray(0, HEADER_SUMMED)).equals(hb.subarray(HEADER_SUMMED, HEADER_BYTES))) throw bad('header checksum mismatch (the header is corrupt)');
    const num = (o: number) => Number(hb.readBigUInt64BE(o));
    const modeIndex = hb.readUInt16BE(10);
    if (modeIndex >= MODES.length) throw bad(`unknown mode ${modeIndex}`);
    const h: RecoveryHeader = {
      version,
      mode: MODES[modeIndex],
      pageSize: hb.readUInt32BE(12),
      pageCount: hb.readUInt32BE(16),
      windowBytes: num(24),
      recordCount: num(32),
      versionsOffset: num(40),
      positionsOffset: num(112),
      bitmapOffset: num(48),
      fileBytes: num(56),
      digest: hb.subarray(64, 96).toString('hex'),
      unsentPages: num(96),
      windowPages: num(104),
      streamBytes: num(120),
    };
    if (expect.pageSize !== undefined && expect.pageSize !== h.pageSize) throw bad(`wrong guest: pages of ${h.pageSize} bytes, expected ${expect.pageSize}`);
    if (expect.pageCount !== undefined && expect.pageCount !== h.pageCount) throw bad(`wrong guest: ${h.pageCount} pages, expected ${expect.pageCount}`);
    if (expect.digest !== undefined && expect.digest.toLowerCase() !== h.digest) {
      throw bad(`wrong guest: versions digest ${h.digest.slice(0, 16)}…, expected ${expect.digest.slice(0, 16)}…`);
    }
    const rec = recordBytes(h.pageSize);
    const recordsEnd = HEADER_BYTES + h.recordCount * rec;
    const bitmapLen = Math.ceil(h.pageCount / 8);
    if (
      h.versionsOffset !== recordsEnd ||
      h.positionsOffset !== recordsEnd + h.pageCount * 4 ||
      h.bitmapOffset !== h.positionsOffset + h.pageCount * 8 + SUM_BYTES ||
      h.fileBytes !== h.bitmapOffset + bitmapLen + SUM_BYTES
    ) {
      throw bad('header offsets are inconsistent with its record count and guest size');
    }
    if (size < h.fileBytes) throw bad(`truncated: ${size} bytes, the header says ${h.fileBytes}`);
    if (size > h.fileBytes) throw bad(`${size - h.fileBytes} unexpected bytes after the end (${h.fileBytes} expected)`);

    const vb = Buffer.alloc(h.pageCount * 4);
    fs.readSync(fd, vb, 0, vb.length, h.versionsOffset);
    const vdigest = createHash('sha256').update(vb).digest('hex');
    if (vdigest !== h.digest) throw bad(`versions table checksum mismatch (sha-256 ${vdigest.slice(0, 16)}…, header says ${h.digest.slice(0, 16)}…)`);
    const versions = new Uint32Array(h.pageCount);
    for (let i = 0; i < h.pageCount; i++) versions[i] = vb.readUInt32LE(i * 4);
    const positions = readPositions(fd, h, bad);
    const bb = Buffer.alloc(bitmapLen + SUM_BYTES);
    fs.readSync(fd, bb, 0, bb.length, h.bitmapOffset);
    if (!sum16(bb.subarray(0, bitmapLen)).equals(bb.subarray(bitmapLen))) throw bad('bitmap checksum mismatch (the bitmap is corrupt)');
    const held = new Bitmap(h.pageCount, bb.subarray(0, bitmapLen));

    // Every record, checked; the last record of the frozen version is the one served.
    const where = new Uint32Array(h.pageCount);
    const per = Math.max(1, Math.floor(CHUNK / rec));
    const chunk = Buffer.alloc(per * rec);
    for (let r = 0; r < h.recordCount; r += per) {
      const n = Math.min(per, h.recordCount - r);
      fs.readSync(fd, chunk, 0, n * rec, HEADER_BYTES + r * rec);
      for (let k = 0; k < n; k++) {
        const o = k * rec;
        const index = chunk.readUInt32BE(o);
        const ver = chunk.readUInt32BE(o + 4);
        const at = `record ${r + k} (byte ${HEADER_BYTES + (r + k) * rec})`;
        if (!sum16(chunk.subarray(o, o + 8 + h.pageSize)).equals(chunk.subarray(o + 8 + h.pageSize, o + rec))) {
          throw bad(`${at}: checksum mismatch (page ${index}? the record is corrupt)`);
        }
        if (index >= h.pageCount) throw bad(`${at}: page ${index} is outside the guest (${h.pageCount} pages)`);
        if (ver === versions[index]) where[index] = r + k + 1;
      }
    }
    for (let i = 0; i < h.pageCount; i++) {
      if (held.get(i) && where[i] === 0) throw bad(`the bitmap says page ${i} is held, but no record of its frozen version ${versions[i]} was found`);
      if (!held.get(i) && where[i] !== 0) throw bad(`record ${where[i] - 1} holds page ${i} at its frozen version, but the bitmap does not list it`);
    }
    return new RecoveryFile(file, fd, h, versions, held, where, positions);
  }

  /** Page `index`'s bytes, its record's checksum checked again (the file may change under us). */
  readPage(index: number, into: Buffer, offset: number): void {
    const r = this.where[index];
    if (!r) throw new RecoveryFileError(`recovery file ${this.file}: page ${index} is not in the file`);
    const { pageSize } = this.header;
    const rec = recordBytes(pageSize);
    const b = Buffer.allocUnsafe(rec);
    const pos = HEADER_BYTES + (r - 1) * rec;
    const n = fs.readSync(this.fd, b, 0, rec, pos);
    if (n !== rec || !sum16(b.subarray(0, 8 + pageSize)).equals(b.subarray(8 + pageSize)) || b.readUInt32BE(0) !== index) {
      throw new RecoveryFileError(`recovery file ${this.file}: record ${r - 1} (byte ${pos}) for page ${index} changed or is corrupt since it was validated`);
    }
    b.copy(into, offset, 8, 8 + pageSize);
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // closed already
    }
  }
}
