/**
 * A fixed-size bitset over page indices with an incrementally maintained population count,
 * so "how many pages are present" is O(1) however large the guest. 16 GiB of 4 KiB pages is
 * 4 Mi bits = 512 KiB.
 */
const POPCOUNT8 = new Uint8Array(256);
for (let i = 0; i < 256; i++) POPCOUNT8[i] = (i & 1) + POPCOUNT8[i >> 1];

export class Bitmap {
  readonly size: number;
  readonly bytes: Uint8Array;
  private population = 0;

  constructor(size: number, bytes?: Uint8Array) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`bitmap size must be a whole number, got ${size}`);
    this.size = size;
    this.bytes = new Uint8Array(Math.ceil(size / 8));
    if (bytes) {
      if (bytes.length !== this.bytes.length) {
        throw new RangeError(`bitmap of ${size} bits needs ${this.bytes.length} bytes, got ${bytes.length}`);
      }
      this.bytes.set(bytes);
      // Bits past `size` in the last byte carry no meaning; clear them so counts stay exact.
      const tail = size % 8;
      if (tail) this.bytes[this.bytes.length - 1] &= (1 << tail) - 1;
      this.population = this.countRange(0, size);
    }
  }

  get count(): number {
    return this.population;
  }

  get(i: number): boolean {
    return (this.bytes[i >>> 3] & (1 << (i & 7))) !== 0;
  }

  /** Sets bit i; returns true if it was clear. */
  set(i: number): boolean {
    const m = 1 << (i & 7);
    const b = this.bytes[i >>> 3];
    if (b & m) return false;
    this.bytes[i >>> 3] = b | m;
    this.population++;
    return true;
  }

  /** Clears bit i; returns true if it was set. */
  clear(i: number): boolean {
    const m = 1 << (i & 7);
    const b = this.bytes[i >>> 3];
    if (!(b & m)) return false;
    this.bytes[i >>> 3] = b & ~m;
    this.population--;
    return true;
  }

  setAll(): void {
    this.bytes.fill(0xff);
    const tail = this.size % 8;
    if (tail) this.bytes[this.bytes.length - 1] = (1 << tail) - 1;
    this.population = this.size;
  }

  clearAll(): void {
    this.bytes.fill(0);
    this.population = 0;
  }

  /** this |= other */
  or(other: Bitmap): void {
    this.checkSame(other);
    for (let k = 0; k < this.bytes.length; k++) this.bytes[k] |= other.bytes[k];
    this.population = this.countRange(0, this.size);
  }

  /** this = complement of other (within size). */
  assignComplement(other: Bitmap): void {
    this.checkSame(other);
    for (let k = 0; k < this.bytes.length; k++) this.bytes[k] = ~other.bytes[k] & 0xff;
    const tail = this.size % 8;
    if (tail) this.bytes[this.bytes.length - 1] &= (1 << tail) - 1;
    this.population = this.size - other.count;
  }

  copyFrom(other: Bitmap): void {
    this.checkSame(other);
    this.bytes.set(other.bytes);
    this.population = other.count;
  }

  /** Index of the first set bit at or after `from`, or -1. Skips zero bytes quickly. */
  nextSet(from: number): number {
    if (from >= this.size) return -1;
    let i = from;
    // Finish the partial first byte bit by bit.
    while (i < this.size && (i & 7) !== 0) {
      if (this.get(i)) return i;
      i++;
    }
    if (i >= this.size) return -1;
    let k = i >>> 3;
    const n = this.bytes.length;
    while (k < n && this.bytes[k] === 0) k++;
    if (k >= n) return -1;
    i = k << 3;
    const end = Math.min(this.size, i + 8);
    for (; i < end; i++) if (this.get(i)) return i;
    return -1;
  }

  /** Index of the first clear bit at or after `from`, or -1. */
  nextClear(from: number): number {
    if (from >= this.size) return -1;
    let i = from;
    while (i < this.size && (i & 7) !== 0) {
      if (!this.get(i)) return i;
      i++;
    }
    if (i >= this.size) return -1;
    let k = i >>> 3;
    const n = this.bytes.length;
    while (k < n && this.bytes[k] === 0xff) k++;
    i = k << 3;
    for (; i < this.size; i++) if (!this.get(i)) return i;
    return -1;
  }

  /** Set bits in [start, end). */
  countRange(start: number, end: number): number {
    let c = 0;
    let i = start;
    while (i < end && (i & 7) !== 0) {
      if (this.get(i)) c++;
      i++;
    }
    while (i + 8 <= end) {
      c += POPCOUNT8[this.bytes[i >>> 3]];
      i += 8;
    }
    for (; i < end; i++) if (this.get(i)) c++;
    return c;
  }

  private checkSame(other: Bitmap): void {
    if (other.size !== this.size) throw new RangeError(`bitmap sizes differ: ${this.size} vs ${other.size}`);
  }
}
