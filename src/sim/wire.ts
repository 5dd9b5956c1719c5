/**
 * The migration wire protocol: one TCP connection, the main stream source -> destination and
 * the return path destination -> source in its reverse direction, as QEMU does. Every message
 * is a frame: [u8 type][u32 payload length, big-endian][payload]. Names follow QEMU's
 * (MIG_CMD_*, MIG_RP_MSG_*, RAM_SAVE_FLAG_PAGE); the frames themselves are ours, not QEMU's
 * byte format. The decoder validates every frame before anything uses it, so garbage,
 * truncation or a wrong page size is a ProtocolError, never a crash or a misplaced page.
 */
import { PAGE_HEADER_BYTES, writePage } from './content.js';

export const FRAME_HEADER_BYTES = 5;
export const WIRE_MAGIC = 0x50434c4d; // "PCLM"
export const WIRE_VERSION = 1;

/** Main stream, source -> destination. */
export const MIG_CMD = {
  HEADER: 0x01,
  /** RAM_SAVE_FLAG_PAGE: [u32 index][u32 version][page bytes] */
  PAGE: 0x02,
  POSTCOPY_ADVISE: 0x03,
  /** [u32 start][u32 count]... ranges the destination must drop (dirtied since sent, or never sent). */
  POSTCOPY_RAM_DISCARD: 0x04,
  /** Switchover: destination vCPUs start. JSON device state. */
  POSTCOPY_RUN: 0x05,
  /** Resume handshake: ask the destination for its received bitmap. */
  RECV_BITMAP: 0x06,
  /** Resume handshake: [u8 mode] 0 = bitmap, 1 = walk (x-recovery-walk). */
  POSTCOPY_RESUME: 0x07,
  /** Ours: [u32 start][u32 count][u32 versions...] the source's frozen page versions. */
  X_VERIFY: 0x08,
  /** QEMU_VM_EOF: end of stream. JSON device state (used when completing without postcopy). */
  EOF: 0x09,
} as const;

/** Return path, destination -> source. */
export const MIG_RP_MSG = {
  /** [u32 start][u32 count] */
  REQ_PAGES: 0x81,
  /** The destination's received bitmap, ceil(pages/8) bytes. */
  RECV_BITMAP: 0x82,
  RESUME_ACK: 0x83,
  /** JSON: the destination's verdict, then the connection closes. */
  SHUT: 0x84,
  /** Ours: every page is present (the walker finished); source may end the stream. */
  X_ALL_RECEIVED: 0x85,
} as const;

export interface WireHeader {
  magic: number;
  version: number;
  resume: boolean;
  /** This connection is the postcopy preempt channel (requested pages only). */
  preemptChannel: boolean;
  /** On the main channel: a preempt channel will follow (postcopy-preempt is on). */
  preemptEnabled: boolean;
  /** Ours: a recovery source (src/recovery/) serves this resume from a recovery file. */
  fromFile?: boolean;
  /**
   * Ours (x-preempt-thread), on a preempt channel: the source reads page requests on this
   * channel's reverse direction, so the destination writes them here rather than on the main
   * channel's return path (the source's request thread owns this connection).
   */
  requestsOnPreempt?: boolean;
  pageSize: number;
  pageCount: number;
}

export type DeviceState = Record<string, unknown>;

export type MainMessage =
  | { type: 'header'; header: WireHeader }
  | { type: 'page'; index: number; version: number; buf: Buffer; offset: number }
  | { type: 'postcopy-advise' }
  | { type: 'postcopy-ram-discard'; ranges: Array<[number, number]> }
  | { type: 'postcopy-run'; device: DeviceState }
  | { type: 'recv-bitmap' }
  | { type: 'postcopy-resume'; mode: 'bitmap' | 'walk' }
  | { type: 'x-verify'; start: number; versions: Uint32Array }
  | { type: 'eof'; device: DeviceState };

export type ReturnMessage =
  | { type: 'req-pages'; start: number; count: number }
  | { type: 'recv-bitmap'; bitmap: Uint8Array }
  | { type: 'resume-ack' }
  | { type: 'shut'; result: Record<string, unknown> }
  | { type: 'x-all-received' };

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const MAX_JSON = 1 << 20;
const MAX_DISCARD = 1 << 20;
const MAX_VERIFY_ENTRIES = 1 << 16;

/** A message type's name and the payload lengths it may have (given the guest's layout). */
interface FrameSpec {
  name: string;
  fits(len: number, pageSize: number, pageCount: number): boolean;
}

/**
 * Payload lengths per main stream message, one table a reader can check (as QEMU keeps the
 * return path's in rp_cmd_args[]). The decoder refuses a frame before buffering it.
 */
const MAIN_FRAMES: Readonly<Record<number, FrameSpec>> = {
  [MIG_CMD.HEADER]: { name: 'header', fits: (len) => len === 16 },
  [MIG_CMD.PAGE]: { name: 'page', fits: (len, pageSize) => len === 8 + pageSize },
  [MIG_CMD.POSTCOPY_ADVISE]: { name: 'empty command', fits: (len) => len === 0 },
  [MIG_CMD.POSTCOPY_RAM_DISCARD]: { name: 'discard', fits: (len) => len % 8 === 0 && len <= MAX_DISCARD },
  [MIG_CMD.POSTCOPY_RUN]: { name: 'device state', fits: (len) => len <= MAX_JSON },
  [MIG_CMD.RECV_BITMAP]: { name: 'empty command', fits: (len) => len === 0 },
  [MIG_CMD.POSTCOPY_RESUME]: { name: 'resume', fits: (len) => len === 1 },
  [MIG_CMD.X_VERIFY]: { name: 'x-verify', fits: (len) => len >= 8 && (len - 8) % 4 === 0 && (len - 8) / 4 <= MAX_VERIFY_ENTRIES },
  [MIG_CMD.EOF]: { name: 'device state', fits: (len) => len <= MAX_JSON },
};

/** Payload lengths per return path message (QEMU: rp_cmd_args[]). */
const RP_FRAMES: Readonly<Record<number, FrameSpec>> = {
  [MIG_RP_MSG.REQ_PAGES]: { name: 'req-pages', fits: (len) => len === 8 },
  [MIG_RP_MSG.RECV_BITMAP]: { name: 'recv-bitmap', fits: (len, _ps, pageCount) => len === Math.ceil(pageCount / 8) },
  [MIG_RP_MSG.RESUME_ACK]: { name: 'empty', fits: (len) => len === 0 },
  [MIG_RP_MSG.SHUT]: { name: 'shut', fits: (len) => len <= MAX_JSON },
  [MIG_RP_MSG.X_ALL_RECEIVED]: { name: 'empty', fits: (len) => len === 0 },
};

function frame(type: number, payloadLen: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadLen);
  b[0] = type;
  b.writeUInt32BE(payloadLen, 1);
  return b;
}

export function encodeHeader(h: Omit<WireHeader, 'magic' | 'version'>): Buffer {
  const b = frame(MIG_CMD.HEADER, 16);
  b.writeUInt32BE(WIRE_MAGIC, 5);
  b.writeUInt16BE(WIRE_VERSION, 9);
  b.writeUInt16BE((h.resume ? 1 : 0) | (h.preemptChannel ? 2 : 0) | (h.preemptEnabled ? 4 : 0) | (h.fromFile ? 8 : 0) | (h.requestsOnPreempt ? 16 : 0), 11);
  b.writeUInt32BE(h.pageSize, 13);
  b.writeUInt32BE(h.pageCount, 17);
  return b;
}

function putU32BE(buf: Buffer, o: number, v: number): void {
  buf[o] = v >>> 24;
  buf[o + 1] = v >>> 16;
  buf[o + 2] = v >>> 8;
  buf[o + 3] = v;
}

/** Size of one encoded page frame. */
export function pageFrameBytes(pageSize: number): number {
  return FRAME_HEADER_BYTES + 8 + pageSize;
}

/**
 * Writes a page frame's header and [index][version] at `offset`; returns where the page's own
 * bytes go. The page itself starts with its index and version again, so a page is checkable on
 * its own, independent of the frame that carried it.
 */
export function writePageFrameHeader(buf: Buffer, offset: number, index: number, version: number, pageSize: number): number {
  // By hand, not writeUInt32BE: that allocates per call (its bounds check's wrapper, Node 20).
  buf[offset] = MIG_CMD.PAGE;
  putU32BE(buf, offset + 1, 8 + pageSize);
  putU32BE(buf, offset + 5, index);
  putU32BE(buf, offset + 9, version);
  return offset + 13;
}

/**
 * One buffer of page frames, each page's bytes made from (index, `versions[index]`). Pure: what
 * sending the pages means for the migration's bookkeeping is the sender's business.
 */
export function encodePages(pages: readonly number[], versions: Uint32Array, pageSize: number): Buffer {
  return encodePagesInto(Buffer.allocUnsafe(pageFrameBytes(pageSize) * pages.length), pages, versions, pageSize);
}

/**
 * encodePages into `buf` (at least `pages.length` frames long, e.g. a reused one); returns the
 * encoded bytes: `buf` itself when they fill it, else a view of it.
 */
export function encodePagesInto(buf: Buffer, pages: readonly number[], versions: Uint32Array, pageSize: number): Buffer {
  const frameBytes = pageFrameBytes(pageSize);
  if (buf.length < frameBytes * pages.length) throw new RangeError(`encodePagesInto: ${buf.length} bytes cannot hold ${pages.length} page frames`);
  let o = 0;
  for (const p of pages) {
    const v = versions[p];
    writePage(buf, writePageFrameHeader(buf, o, p, v, pageSize), p, v, pageSize);
    o += frameBytes;
  }
  return o === buf.length ? buf : buf.subarray(0, o);
}

export function encodeEmpty(type: number): Buffer {
  return frame(type, 0);
}

export function encodeJson(type: number, value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value ?? {}), 'utf8');
  const b = frame(type, json.length);
  json.copy(b, 5);
  return b;
}

export function encodeRanges(type: number, ranges: Array<[number, number]>): Buffer {
  const b = frame(type, ranges.length * 8);
  let o = 5;
  for (const [s, c] of ranges) {
    b.writeUInt32BE(s, o);
    b.writeUInt32BE(c, o + 4);
    o += 8;
  }
  return b;
}

/** Encodes a discard set (as ranges) in frames no larger than the decoder accepts. */
export function encodeDiscard(ranges: Array<[number, number]>): Buffer[] {
  const per = MAX_DISCARD / 8;
  const out: Buffer[] = [];
  for (let i = 0; i < ranges.length; i += per) out.push(encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, ranges.slice(i, i + per)));
  return out;
}

export function encodeResume(mode: 'bitmap' | 'walk'): Buffer {
  const b = frame(MIG_CMD.POSTCOPY_RESUME, 1);
  b[5] = mode === 'walk' ? 1 : 0;
  return b;
}

export function encodeVerify(start: number, versions: Uint32Array): Buffer {
  const b = frame(MIG_CMD.X_VERIFY, 8 + versions.length * 4);
  b.writeUInt32BE(start, 5);
  b.writeUInt32BE(versions.length, 9);
  for (let i = 0; i < versions.length; i++) b.writeUInt32LE(versions[i], 13 + i * 4);
  return b;
}

export function encodeVerifyAll(versions: Uint32Array): Buffer[] {
  const out: Buffer[] = [];
  for (let s = 0; s < versions.length; s += MAX_VERIFY_ENTRIES) {
    out.push(encodeVerify(s, versions.subarray(s, Math.min(versions.length, s + MAX_VERIFY_ENTRIES))));
  }
  return out;
}

export function encodeReqPages(start: number, count: number): Buffer {
  return encodeRanges(MIG_RP_MSG.REQ_PAGES, [[start, count]]);
}

export function encodeRecvBitmap(bitmap: Uint8Array): Buffer {
  const b = frame(MIG_RP_MSG.RECV_BITMAP, bitmap.length);
  Buffer.from(bitmap.buffer, bitmap.byteOffset, bitmap.byteLength).copy(b, 5);
  return b;
}

function parseJson(buf: Buffer, start: number, end: number, what: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(buf.toString('utf8', start, end));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ProtocolError(`${what}: payload is not a JSON object (${(e as Error).message})`);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Incremental frame decoder. push() accepts any chunking of the stream; messages are handed
 * to the callback in order. A `page` message (the object and its buffer) is only valid during
 * the callback.
 * After a ProtocolError the decoder refuses further input.
 */
abstract class FrameDecoder<M> {
  /**
   * The one partial frame, in a buffer kept across frames: a stream cut at arbitrary points
   * splits a page frame at nearly every chunk, and a fresh buffer each time is garbage at the
   * rate pages arrive (collections that pause the placing of requested pages).
   */
  private scratch: Buffer | null = null;
  private pendingLen = 0;
  private failed: ProtocolError | null = null;
  bytes = 0;

  constructor(protected readonly onMessage: (m: M) => void) {}

  /** Bytes buffered in an incomplete frame. */
  get buffered(): number {
    return this.pendingLen;
  }

  /** The stream's next bytes: chunk[0, length) (a reused read buffer holds more than was read). */
  push(chunk: Buffer, length = chunk.length): void {
    if (this.failed) throw this.failed;
    this.bytes += length;
    try {
      let o = 0;
      if (this.pendingLen) {
        // Complete the one partial frame by copying only the bytes it lacks, not the chunk.
        o = this.completePending(chunk, length);
        if (o < 0) return;
      }
      while (length - o >= FRAME_HEADER_BYTES) {
        const type = chunk[o];
        const len = chunk.readUInt32BE(o + 1);
        this.checkLength(type, len);
        if (length - o < FRAME_HEADER_BYTES + len) break;
        const start = o + FRAME_HEADER_BYTES;
        o = start + len;
        this.decode(type, chunk, start, o);
      }
      if (o < length) this.hold(chunk, o, length);
    } catch (e) {
      this.failed = e instanceof ProtocolError ? e : new ProtocolError(String((e as Error)?.message ?? e));
      this.pendingLen = 0;
      this.scratch = null;
      throw this.failed;
    }
  }

  /** Appends src[from, to) to the partial frame, growing its buffer when a frame needs more. */
  private hold(src: Buffer, from: number, to: number): void {
    const need = this.pendingLen + (to - from);
    if (!this.scratch || this.scratch.length < need) {
      const grown = Buffer.allocUnsafe(Math.max(need, 2 * (this.scratch?.length ?? 0), 8192));
      if (this.scratch && this.pendingLen) this.scratch.copy(grown, 0, 0, this.pendingLen);
      this.scratch = grown;
    }
    src.copy(this.scratch, this.pendingLen, from, to);
    this.pendingLen = need;
  }

  /** Feeds the pending partial frame; returns the offset in chunk after it, or -1 if still partial. */
  private completePending(chunk: Buffer, length: number): number {
    let used = 0;
    if (this.pendingLen < FRAME_HEADER_BYTES) {
      used = Math.min(FRAME_HEADER_BYTES - this.pendingLen, length);
      this.hold(chunk, 0, used);
      if (this.pendingLen < FRAME_HEADER_BYTES) return -1;
    }
    const p = this.scratch!;
    const len = p.readUInt32BE(1);
    this.checkLength(p[0], len);
    const need = FRAME_HEADER_BYTES + len - this.pendingLen;
    const take = Math.min(need, length - used);
    this.hold(chunk, used, used + take);
    used += take;
    if (take < need) return -1;
    this.pendingLen = 0;
    // hold() may have grown the buffer: decode from the one that holds the frame now.
    this.decode(this.scratch![0], this.scratch!, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len);
    return used;
  }

  protected abstract checkLength(type: number, len: number): void;
  protected abstract decode(type: number, buf: Buffer, start: number, end: number): void;
}

export class MainStreamDecoder extends FrameDecoder<MainMessage> {
  /**
   * The one page message, filled in for each page frame: a fresh object per page is garbage at
   * the rate pages arrive. Like its buffer, it is only valid during the callback.
   */
  private readonly page: Extract<MainMessage, { type: 'page' }> = { type: 'page', index: 0, version: 0, buf: EMPTY, offset: 0 };

  constructor(
    private readonly pageSize: number,
    private readonly pageCount: number,
    onMessage: (m: MainMessage) => void,
  ) {
    super(onMessage);
  }

  protected checkLength(type: number, len: number): void {
    const spec = MAIN_FRAMES[type];
    if (!spec) throw new ProtocolError(`unknown main stream message type 0x${type.toString(16).padStart(2, '0')}`);
    if (!spec.fits(len, this.pageSize, 0)) {
      const what = type === MIG_CMD.PAGE ? `page (page size ${this.pageSize})` : spec.name;
      throw new ProtocolError(`bad ${what} frame: payload length ${len}`);
    }
  }

  private checkIndex(i: number, what: string): void {
    if (i >= this.pageCount) throw new ProtocolError(`${what}: page ${i} is outside guest memory (${this.pageCount} pages)`);
  }

  protected decode(type: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case MIG_CMD.HEADER: {
        const header: WireHeader = {
          magic: buf.readUInt32BE(start),
          version: buf.readUInt16BE(start + 4),
          resume: (buf.readUInt16BE(start + 6) & 1) === 1,
          preemptChannel: (buf.readUInt16BE(start + 6) & 2) === 2,
          preemptEnabled: (buf.readUInt16BE(start + 6) & 4) === 4,
          fromFile: (buf.readUInt16BE(start + 6) & 8) === 8,
          requestsOnPreempt: (buf.readUInt16BE(start + 6) & 16) === 16,
          pageSize: buf.readUInt32BE(start + 8),
          pageCount: buf.readUInt32BE(start + 12),
        };
        if (header.magic !== WIRE_MAGIC) throw new ProtocolError(`not a postcopy-lab migration stream (magic 0x${header.magic.toString(16)})`);
        if (header.version !== WIRE_VERSION) throw new ProtocolError(`unsupported stream version ${header.version}, expected ${WIRE_VERSION}`);
        if (header.pageSize !== this.pageSize || header.pageCount !== this.pageCount) {
          throw new ProtocolError(
            `guest layout mismatch: source has ${header.pageCount} pages of ${header.pageSize} bytes, destination ${this.pageCount} of ${this.pageSize}`,
          );
        }
        return this.onMessage({ type: 'header', header });
      }
      case MIG_CMD.PAGE: {
        const index = buf.readUInt32BE(start);
        const version = buf.readUInt32BE(start + 4);
        this.checkIndex(index, 'page');
        const m = this.page;
        m.index = index;
        m.version = version;
        m.buf = buf;
        m.offset = start + 8;
        this.onMessage(m);
        // Not kept past the callback: drop the chunk it points into.
        m.buf = EMPTY;
        return;
      }
      case MIG_CMD.POSTCOPY_ADVISE:
        return this.onMessage({ type: 'postcopy-advise' });
      case MIG_CMD.RECV_BITMAP:
        return this.onMessage({ type: 'recv-bitmap' });
      case MIG_CMD.POSTCOPY_RAM_DISCARD: {
        const ranges: Array<[number, number]> = [];
        for (let o = start; o < end; o += 8) {
          const s = buf.readUInt32BE(o);
          const c = buf.readUInt32BE(o + 4);
          if (c === 0 || s + c > this.pageCount) throw new ProtocolError(`discard range ${s}+${c} is outside guest memory`);
          ranges.push([s, c]);
        }
        return this.onMessage({ type: 'postcopy-ram-discard', ranges });
      }
      case MIG_CMD.POSTCOPY_RUN:
        return this.onMessage({ type: 'postcopy-run', device: parseJson(buf, start, end, 'postcopy-run') });
      case MIG_CMD.EOF:
        return this.onMessage({ type: 'eof', device: parseJson(buf, start, end, 'eof') });
      case MIG_CMD.POSTCOPY_RESUME: {
        const m = buf[start];
        if (m > 1) throw new ProtocolError(`unknown resume mode ${m}`);
        return this.onMessage({ type: 'postcopy-resume', mode: m === 1 ? 'walk' : 'bitmap' });
      }
      case MIG_CMD.X_VERIFY: {
        const s = buf.readUInt32BE(start);
        const n = buf.readUInt32BE(start + 4);
        if (n !== (end - start - 8) / 4 || s + n > this.pageCount) throw new ProtocolError(`x-verify chunk ${s}+${n} does not fit`);
        const versions = new Uint32Array(n);
        for (let i = 0; i < n; i++) versions[i] = buf.readUInt32LE(start + 8 + i * 4);
        return this.onMessage({ type: 'x-verify', start: s, versions });
      }
    }
  }
}

export class ReturnPathDecoder extends FrameDecoder<ReturnMessage> {
  constructor(
    private readonly pageCount: number,
    onMessage: (m: ReturnMessage) => void,
  ) {
    super(onMessage);
  }

  protected checkLength(type: number, len: number): void {
    const spec = RP_FRAMES[type];
    if (!spec) throw new ProtocolError(`unknown return path message type 0x${type.toString(16).padStart(2, '0')}`);
    if (!spec.fits(len, 0, this.pageCount)) throw new ProtocolError(`bad ${spec.name} frame on the return path: payload length ${len}`);
  }

  protected decode(type: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case MIG_RP_MSG.REQ_PAGES: {
        const s = buf.readUInt32BE(start);
        const c = buf.readUInt32BE(start + 4);
        if (c === 0 || s + c > this.pageCount) throw new ProtocolError(`page request ${s}+${c} is outside guest memory`);
        return this.onMessage({ type: 'req-pages', start: s, count: c });
      }
      case MIG_RP_MSG.RECV_BITMAP:
        return this.onMessage({ type: 'recv-bitmap', bitmap: new Uint8Array(buf.subarray(start, end)) });
      case MIG_RP_MSG.RESUME_ACK:
        return this.onMessage({ type: 'resume-ack' });
      case MIG_RP_MSG.X_ALL_RECEIVED:
        return this.onMessage({ type: 'x-all-received' });
      case MIG_RP_MSG.SHUT:
        return this.onMessage({ type: 'shut', result: parseJson(buf, start, end, 'shut') });
    }
  }
}

export { PAGE_HEADER_BYTES };
