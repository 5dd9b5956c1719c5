/**
 * The recovery file format: a round trip, a streamed write of a large guest, and every way a
 * file must be refused (truncated, flipped bits, foreign, wrong version, wrong guest) without
 * a page of it being served.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPage, makePage, writePage } from '../../../src/sim/content.js';
import { HEADER_BYTES, recordBytes, RecoveryFile, RecoveryFileError, RecoveryFileWriter, versionsDigest } from '../../../src/recovery/format.js';

const PS = 4096;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'recfile-'));
  dirs.push(d);
  return d;
}

/** A small guest: versions i % 5, the file holds the even pages (and a stale copy of page 2). */
function smallFile(): { file: string; versions: Uint32Array } {
  const file = path.join(tmp(), 'r.pclr');
  const versions = new Uint32Array(64).map((_, i) => i % 5);
  const w = new RecoveryFileWriter(file, { mode: 'continuous', pageSize: PS, pageCount: 64, windowBytes: 8 * PS });
  w.append(2, 99, makePage(2, 99, PS)); // stale: superseded by the frozen version below
  for (let i = 0; i < 64; i += 2) w.append(i, versions[i], makePage(i, versions[i], PS));
  w.finish(versions, { unsentPages: 30, windowPages: 2, streamBytes: 1_000_000 }, new Float64Array(64).map((_, i) => (i % 2 ? 0 : 1000 + i * 5000)));
  return { file, versions };
}

function refused(file: string, re: RegExp, expectGuest = {}): void {
  let err: unknown;
  try {
    RecoveryFile.open(file, expectGuest).close();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(RecoveryFileError);
  expect((err as Error).message).toMatch(re);
}

describe('recovery file', () => {
  it('round trip: identity, held pages, pages byte for byte, stale copies not held', () => {
    const { file, versions } = smallFile();
    const f = RecoveryFile.open(file, { pageSize: PS, pageCount: 64, digest: versionsDigest(versions) });
    expect(f.header).toMatchObject({ version: 2, mode: 'continuous', pageSize: PS, pageCount: 64, windowBytes: 8 * PS, recordCount: 33, unsentPages: 30, windowPages: 2, streamBytes: 1_000_000 });
    expect(f.positions[4]).toBe(1000 + 4 * 5000);
    expect(f.positions[5]).toBe(0);
    expect(f.held.count).toBe(32);
    expect(Array.from(f.versions)).toEqual(Array.from(versions));
    const b = Buffer.alloc(PS);
    f.readPage(2, b, 0);
    expect(checkPage(b, 0, 2, versions[2], PS)).toBe(true);
    expect(() => f.readPage(3, b, 0)).toThrow(/page 3 is not in the file/);
    f.close();
    // Written atomically: no temporary file is left beside it.
    expect(fs.readdirSync(path.dirname(file))).toEqual(['r.pclr']);
  });

  it('refuses a truncated file (at any cut), naming the expected length', () => {
    const { file } = smallFile();
    const whole = fs.readFileSync(file);
    for (const keep of [whole.length - 1, HEADER_BYTES + recordBytes(PS) * 3 + 7, 100, 4]) {
      fs.writeFileSync(file, whole.subarray(0, keep));
      refused(file, keep < 8 ? /not a postcopy-lab recovery file/ : keep < HEADER_BYTES ? /truncated/ : /truncated: \d+ bytes, the header says \d+/);
    }
  });

  it('refuses flipped bits in a record, the header, the versions table, the positions table and the bitmap, naming what is corrupt', () => {
    const { file } = smallFile();
    const whole = fs.readFileSync(file);
    const f = RecoveryFile.open(file);
    const { versionsOffset, positionsOffset, bitmapOffset } = f.header;
    f.close();
    const cases: Array<[number, RegExp]> = [
      [HEADER_BYTES + recordBytes(PS) * 5 + 100, /record 5 \(byte \d+\): checksum mismatch/],
      [20, /header checksum mismatch/],
      [versionsOffset + 9, /versions table checksum mismatch/],
      [positionsOffset + 8 * 4 + 7, /positions table checksum mismatch/],
      [bitmapOffset, /bitmap checksum mismatch/],
    ];
    for (const [at, re] of cases) {
      const b = Buffer.from(whole);
      b[at] ^= 0x10;
      fs.writeFileSync(file, b);
      refused(file, re);
    }
  });

  it('refuses a foreign file, a newer format version, and another guest', () => {
    const { file, versions } = smallFile();
    const whole = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.concat([Buffer.from('QEVM\x00\x00\x00\x03'), whole.subarray(8)]));
    refused(file, /not a postcopy-lab recovery file \(magic "QEVM/);
    const v3 = Buffer.from(whole);
    v3.writeUInt16BE(3, 8);
    fs.writeFileSync(file, v3);
    refused(file, /format version 3 is not supported \(this build reads version 2\)/);
    // A file of the first format (no positions table): refused, saying why and what to do.
    const v1 = Buffer.from(whole);
    v1.writeUInt16BE(1, 8);
    fs.writeFileSync(file, v1);
    refused(file, /format version 1 is not supported \(this build reads version 2: a version 1 file has no record of what was in flight .*write it again/);
    fs.writeFileSync(file, whole);
    refused(file, /wrong guest: 64 pages, expected 128/, { pageCount: 128 });
    refused(file, /wrong guest: pages of 4096 bytes, expected 65536/, { pageSize: 65536 });
    const other = Uint32Array.from(versions);
    other[7]++;
    refused(file, /wrong guest: versions digest/, { digest: versionsDigest(other) });
  });

  it('streams a 1 GiB guest\'s file without holding the guest: pages made on the fly, RSS stays small', () => {
    const file = path.join(tmp(), 'big.pclr');
    const pageCount = (1 << 30) / PS;
    const versions = new Uint32Array(pageCount).map((_, i) => (i * 7) % 3);
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const w = new RecoveryFileWriter(file, { mode: 'on-failure', pageSize: PS, pageCount, windowBytes: 0 });
    const page = Buffer.allocUnsafe(PS);
    // Every 4th page: a 256 MiB file of real page bytes.
    for (let i = 0; i < pageCount; i += 4) {
      writePage(page, 0, i, versions[i], PS);
      w.append(i, versions[i], page);
      if ((i & 0xfff) === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    const stats = w.finish(versions, { unsentPages: pageCount / 4, windowPages: 0, streamBytes: 0 });
    expect(stats.heldPages).toBe(pageCount / 4);
    expect(fs.statSync(file).size).toBe(stats.fileBytes);
    // Not the 256 MiB of pages written: a few MiB of buffers and metadata.
    expect(peak - rss0).toBeLessThan(64 * 1024 * 1024);
    const f = RecoveryFile.open(file);
    expect(f.held.count).toBe(pageCount / 4);
    const b = Buffer.alloc(PS);
    f.readPage(pageCount - 4, b, 0);
    expect(checkPage(b, 0, pageCount - 4, versions[pageCount - 4], PS)).toBe(true);
    f.close();
  }, 120_000);

  it('a file never completed: its writer stopped (killed) before the rename, and the reader says so', () => {
    const dir = tmp();
    const file = path.join(dir, 'src.recovery');
    const w = new RecoveryFileWriter(file, { mode: 'continuous', pageSize: PS, pageCount: 8, windowBytes: 0 });
    w.append(0, 0, makePage(0, 0, PS));
    // No finish, no abort: as a SIGKILLed source leaves it.
    refused(file, /recovery file .*src\.recovery was never completed: .*\.src\.recovery\.tmp-\d+ is the part written before its writer stopped/);
    w.abort();
    refused(file, /cannot open recovery file .*ENOENT/);
  });
});
