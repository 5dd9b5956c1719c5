/**
 * Page content: a deterministic function of (page index, version), identical in every process.
 * A page is an 8-byte header (index, version, little-endian), a window of a fixed pseudo-random
 * pool chosen by hashing (index, version), and an 8-byte trailer: the same pair again, mixed.
 * The trailer matters because the pool has only 2^17 window starts: two versions of a page can
 * share a window, and a page whose header alone was rewritten would then pass. Generating and checking a page is a
 * memcpy/memcmp, so real page bytes can cross the wire at full speed while any corruption,
 * truncation or stale version is still detected byte for byte.
 */
const POOL_SIZE = 1 << 20;
/** Fixed, not the run's seed: both processes must agree on what a page holds. */
const POOL_SEED = 0x5eed_c0de;

let pool: Buffer | null = null;
let poolFor = 0;

function getPool(pageSize: number): Buffer {
  if (pool && poolFor >= pageSize) return pool;
  const buf = Buffer.allocUnsafe(POOL_SIZE + pageSize);
  let x = POOL_SEED >>> 0;
  for (let i = 0; i < buf.length; i += 4) {
    // xorshift32: fast, deterministic, good enough to make pages look like real data.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (i + 4 <= buf.length) buf.writeUInt32LE(x, i);
    else for (let k = i; k < buf.length; k++) buf[k] = (x >>> (8 * (k - i))) & 0xff;
  }
  pool = buf;
  poolFor = pageSize;
  return buf;
}

function windowStart(index: number, version: number): number {
  // A cheap integer hash of (index, version), aligned to 8 bytes.
  let h = Math.imul(index ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(version + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x27d4eb2f);
  h ^= h >>> 15;
  return ((h >>> 0) % (POOL_SIZE >>> 3)) << 3;
}

/**
 * Little-endian u32 in and out by hand: Buffer's writeUInt32LE/readUInt32LE check their bounds
 * through a wrapper that allocates per call (Node 20), and this runs a few times per page.
 * Both work in int32 (`| 0`), so a word above 2^31 is never a boxed number either.
 */
function put32(buf: Buffer, o: number, v: number): void {
  buf[o] = v;
  buf[o + 1] = v >>> 8;
  buf[o + 2] = v >>> 16;
  buf[o + 3] = v >>> 24;
}

function get32(buf: Buffer, o: number): number {
  return buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | (buf[o + 3] << 24);
}

export const PAGE_HEADER_BYTES = 8;
const TRAILER_BYTES = 8;

/** The trailer's words: (index, version) through a different mix than the window's (two functions, not a pair: making a page allocates nothing). */
function trailer0(index: number): number {
  return Math.imul(index ^ 0x5bd1e995, 0x1b873593) >>> 0;
}

function trailer1(index: number, version: number): number {
  return (Math.imul(version ^ 0xcc9e2d51, 0x85ebca6b) ^ index) >>> 0;
}

/**
 * Buffers made by pageBuffer(): the ArrayBuffer each lives in, and a view of all of it, whose
 * first bytes are a copy of the pool. Buffer.copy from the pool builds a Uint8Array per call
 * (Node 20), and a gigabyte of pages made that way is some 40 young-generation collections,
 * each a pause of the process that also serves page requests; copyWithin inside one
 * ArrayBuffer allocates nothing.
 */
const withPool = new WeakMap<ArrayBufferLike, { whole: Uint8Array; poolFor: number }>();

/**
 * A buffer of `bytes` to write pages into (e.g. a sender's reused encode buffer): writePage into
 * it allocates nothing. It carries a copy of the pool (1 MiB) beside it, so make few and keep them.
 */
export function pageBuffer(bytes: number, pageSize: number): Buffer {
  const p = getPool(pageSize);
  const ab = new ArrayBuffer(p.length + bytes);
  const whole = new Uint8Array(ab);
  whole.set(p, 0);
  withPool.set(ab, { whole, poolFor: pageSize });
  return Buffer.from(ab, p.length, bytes);
}

/** Writes page (index, version) into buf at offset. */
export function writePage(buf: Buffer, offset: number, index: number, version: number, pageSize: number): void {
  put32(buf, offset, index);
  put32(buf, offset + 4, version);
  const s = windowStart(index, version);
  const body = pageSize - PAGE_HEADER_BYTES - TRAILER_BYTES;
  const arena = withPool.get(buf.buffer);
  if (arena && arena.poolFor >= pageSize) arena.whole.copyWithin(buf.byteOffset + offset + PAGE_HEADER_BYTES, s, s + body);
  else getPool(pageSize).copy(buf, offset + PAGE_HEADER_BYTES, s, s + body);
  put32(buf, offset + pageSize - TRAILER_BYTES, trailer0(index));
  put32(buf, offset + pageSize - 4, trailer1(index, version));
}

/** Returns a fresh buffer holding page (index, version). */
export function makePage(index: number, version: number, pageSize: number): Buffer {
  const b = Buffer.allocUnsafe(pageSize);
  writePage(b, 0, index, version, pageSize);
  return b;
}

/** True if buf[offset, offset+pageSize) is exactly page (index, version). */
export function checkPage(buf: Buffer, offset: number, index: number, version: number, pageSize: number): boolean {
  if (offset + pageSize > buf.length) return false;
  if (offset < 0 || get32(buf, offset) !== (index | 0) || get32(buf, offset + 4) !== (version | 0)) return false;
  const p = getPool(pageSize);
  if (get32(buf, offset + pageSize - TRAILER_BYTES) !== (trailer0(index) | 0) || get32(buf, offset + pageSize - 4) !== (trailer1(index, version) | 0)) return false;
  const s = windowStart(index, version);
  const body = pageSize - PAGE_HEADER_BYTES - TRAILER_BYTES;
  return p.compare(buf, offset + PAGE_HEADER_BYTES, offset + PAGE_HEADER_BYTES + body, s, s + body) === 0;
}
