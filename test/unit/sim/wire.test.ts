/**
 * The migration wire protocol: every message type of the main stream and the return path
 * round-trips through its decoder, any chunking of a stream yields the same messages, and
 * every malformed frame is a ProtocolError after which the decoder refuses further input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writePage } from '../../../src/sim/content.js';
import {
  encodeDiscard,
  encodeEmpty,
  encodeHeader,
  encodeJson,
  encodeRanges,
  encodeRecvBitmap,
  encodeReqPages,
  encodeResume,
  encodeVerify,
  encodeVerifyAll,
  FRAME_HEADER_BYTES,
  MainStreamDecoder,
  MIG_CMD,
  MIG_RP_MSG,
  pageFrameBytes,
  ProtocolError,
  ReturnPathDecoder,
  WIRE_MAGIC,
  writePageFrameHeader,
} from '../../../src/sim/wire.js';
import { chunk, encodePage, headerOf, mainMsg, PAGES, plainMain, plainReturn, PS, returnMsg, type Plain } from './wire-arbitraries.js';

function decodeMain(chunks: Buffer[], pageSize = PS, pageCount = PAGES): Plain[] {
  const out: Plain[] = [];
  const d = new MainStreamDecoder(pageSize, pageCount, (m) => out.push(plainMain(m, pageSize)));
  for (const c of chunks) d.push(c);
  expect(d.buffered).toBe(0);
  return out;
}
function decodeReturn(chunks: Buffer[], pageCount = PAGES): Plain[] {
  const out: Plain[] = [];
  const d = new ReturnPathDecoder(pageCount, (m) => out.push(plainReturn(m)));
  for (const c of chunks) d.push(c);
  expect(d.buffered).toBe(0);
  return out;
}

describe('wire: round trips', () => {
  it('decodes every main stream message type as encoded', () => {
    const msgs: Array<[Buffer, Plain]> = [
      [encodeHeader(headerOf({ resume: false, pageSize: PS, pageCount: PAGES })), { type: 'header', header: { magic: WIRE_MAGIC, version: 1, resume: false, pageSize: PS, pageCount: PAGES } }],
      [encodePage(0, 0), { type: 'page', index: 0, version: 0, ok: true }],
      [encodePage(PAGES - 1, 0xffffffff), { type: 'page', index: PAGES - 1, version: 0xffffffff, ok: true }],
      [encodeEmpty(MIG_CMD.POSTCOPY_ADVISE), { type: 'postcopy-advise' }],
      [encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[0, 1], [10, PAGES - 10]]), { type: 'postcopy-ram-discard', ranges: [[0, 1], [10, PAGES - 10]] }],
      [encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: [{ rng: 1, pos: 2, ops: 3 }] }), { type: 'postcopy-run', device: { vcpus: [{ rng: 1, pos: 2, ops: 3 }] } }],
      [encodeEmpty(MIG_CMD.RECV_BITMAP), { type: 'recv-bitmap' }],
      [encodeResume('bitmap'), { type: 'postcopy-resume', mode: 'bitmap' }],
      [encodeResume('walk'), { type: 'postcopy-resume', mode: 'walk' }],
      [encodeVerify(5, Uint32Array.from([1, 2, 0xffffffff])), { type: 'x-verify', start: 5, versions: [1, 2, 0xffffffff] }],
      [encodeJson(MIG_CMD.EOF, {}), { type: 'eof', device: {} }],
    ];
    expect(decodeMain([Buffer.concat(msgs.map((m) => m[0]))])).toEqual(msgs.map((m) => m[1]));
  });

  it('decodes every return path message type as encoded', () => {
    const bitmap = new Uint8Array(Math.ceil(PAGES / 8)).fill(0x5a);
    const msgs: Array<[Buffer, Plain]> = [
      [encodeReqPages(7, 1), { type: 'req-pages', start: 7, count: 1 }],
      [encodeReqPages(0, PAGES), { type: 'req-pages', start: 0, count: PAGES }],
      [encodeRecvBitmap(bitmap), { type: 'recv-bitmap', bitmap: [...bitmap] }],
      [encodeEmpty(MIG_RP_MSG.RESUME_ACK), { type: 'resume-ack' }],
      [encodeJson(MIG_RP_MSG.SHUT, { verified: true, mismatches: [] }), { type: 'shut', result: { verified: true, mismatches: [] } }],
      [encodeEmpty(MIG_RP_MSG.X_ALL_RECEIVED), { type: 'x-all-received' }],
    ];
    expect(decodeReturn([Buffer.concat(msgs.map((m) => m[0]))])).toEqual(msgs.map((m) => m[1]));
  });

  it('main stream: any chunking of any message sequence gives the same messages', () => {
    fc.assert(
      fc.property(fc.array(mainMsg, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map((m) => m[0]));
        expect(decodeMain(chunk(stream, cuts))).toEqual(msgs.map((m) => m[1]));
      }),
      { numRuns: 300 },
    );
  });

  it('return path: any chunking of any message sequence gives the same messages', () => {
    fc.assert(
      fc.property(fc.array(returnMsg, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map((m) => m[0]));
        expect(decodeReturn(chunk(stream, cuts))).toEqual(msgs.map((m) => m[1]));
      }),
      { numRuns: 300 },
    );
  });

  it('a stream read into one reused buffer (push(buf, n), as the destination reads) decodes whole, whatever the buffer held before', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 12 }), (cuts) => {
        const stream = Buffer.concat([encodePage(1, 2), encodePage(4, 5), encodePage(6, 7), encodePage(8, 0xffffffff)]);
        const out: Plain[] = [];
        const d = new MainStreamDecoder(PS, PAGES, (m) => out.push(plainMain(m, PS)));
        const readBuf = Buffer.alloc(9000);
        let o = 0;
        for (let k = 0; o < stream.length; k++) {
          const n = Math.min(cuts[k % cuts.length], stream.length - o);
          // Stale bytes past n: the decoder must never look at them.
          readBuf.fill(0xee);
          stream.copy(readBuf, 0, o, o + n);
          d.push(readBuf, n);
          o += n;
        }
        expect(out).toEqual([
          { type: 'page', index: 1, version: 2, ok: true },
          { type: 'page', index: 4, version: 5, ok: true },
          { type: 'page', index: 6, version: 7, ok: true },
          { type: 'page', index: 8, version: 0xffffffff, ok: true },
        ]);
        expect(d.bytes).toBe(stream.length);
      }),
      { numRuns: 100 },
    );
  });

  it('frames split across chunks, one after another and of growing size, decode whole (the partial-frame buffer is reused and grown)', () => {
    const big = { pad: 'x'.repeat(100_000) };
    const stream = Buffer.concat([encodePage(1, 2), encodePage(4, 5), encodeJson(MIG_CMD.EOF, big), encodePage(6, 7)]);
    // Cut inside every frame, and once inside the big frame's header, so a header is completed
    // in a buffer that must then grow for the rest of the frame.
    const pageLen = encodePage(1, 2).length;
    const eofAt = 2 * pageLen;
    const out = decodeMain(chunk(stream, [10, pageLen + 10, eofAt + 3, eofAt + 50_000, stream.length - 10]));
    expect(out.map((m) => m.type)).toEqual(['page', 'page', 'eof', 'page']);
    expect(out[0]).toEqual({ type: 'page', index: 1, version: 2, ok: true });
    expect(out[1]).toEqual({ type: 'page', index: 4, version: 5, ok: true });
    expect(out[2]).toEqual({ type: 'eof', device: big });
    expect(out[3]).toEqual({ type: 'page', index: 6, version: 7, ok: true });
  });

  it('one byte at a time gives the same messages', () => {
    const stream = Buffer.concat([
      encodeHeader(headerOf({ resume: true, pageSize: PS, pageCount: PAGES })),
      encodePage(3, 9),
      encodeResume('walk'),
      encodeJson(MIG_CMD.EOF, { a: 'ü✓' }),
    ]);
    const out = decodeMain([...stream].map((b) => Buffer.from([b])));
    expect(out.map((m) => m.type)).toEqual(['header', 'page', 'postcopy-resume', 'eof']);
    expect(out[1]).toEqual({ type: 'page', index: 3, version: 9, ok: true });
    expect(out[3]).toEqual({ type: 'eof', device: { a: 'ü✓' } });
  });

  it('splits a large discard set and a large verify set into frames the decoder accepts', () => {
    const pages = 300_000;
    const ranges: Array<[number, number]> = Array.from({ length: 140_000 }, (_, i) => [i * 2, 1]);
    const frames = encodeDiscard(ranges);
    expect(frames.length).toBeGreaterThan(1);
    const got: Array<[number, number]> = [];
    const d = new MainStreamDecoder(PS, pages, (m) => {
      if (m.type === 'postcopy-ram-discard') for (const r of m.ranges) got.push(r);
    });
    for (const f of frames) d.push(f);
    expect(got).toEqual(ranges);

    const versions = Uint32Array.from({ length: pages }, (_, i) => i * 7);
    const vframes = encodeVerifyAll(versions);
    expect(vframes.length).toBeGreaterThan(1);
    const seen = new Uint32Array(pages);
    let n = 0;
    const d2 = new MainStreamDecoder(PS, pages, (m) => {
      if (m.type === 'x-verify') {
        seen.set(m.versions, m.start);
        n += m.versions.length;
      }
    });
    for (const f of vframes) d2.push(f);
    expect(n).toBe(pages);
    expect(seen).toEqual(versions);
  });
});

// ---- errors ------------------------------------------------------------------------------------

function frame(type: number, payload: Buffer | number[] = []): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const b = Buffer.alloc(FRAME_HEADER_BYTES + p.length);
  b[0] = type;
  b.writeUInt32BE(p.length, 1);
  p.copy(b, 5);
  return b;
}

function u32s(...vals: number[]): Buffer {
  const b = Buffer.alloc(vals.length * 4);
  vals.forEach((v, i) => b.writeUInt32BE(v, i * 4));
  return b;
}

/** Pushes `bad` (after `before`) and expects a ProtocolError matching `re`; then refusal. */
function expectMainError(bad: Buffer, re: RegExp, before: Buffer[] = [], pageSize = PS, pageCount = PAGES): Plain[] {
  const out: Plain[] = [];
  const d = new MainStreamDecoder(pageSize, pageCount, (m) => out.push(plainMain(m, pageSize)));
  for (const b of before) d.push(b);
  let err: unknown;
  try {
    d.push(bad);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as Error).message).toMatch(re);
  // After an error the decoder refuses further input, even a perfectly valid frame.
  expect(() => d.push(encodeEmpty(MIG_CMD.POSTCOPY_ADVISE))).toThrow(ProtocolError);
  expect(() => d.push(Buffer.alloc(0))).toThrow(ProtocolError);
  return out;
}

function expectReturnError(bad: Buffer, re: RegExp, pageCount = PAGES): void {
  const d = new ReturnPathDecoder(pageCount, () => {});
  expect(() => d.push(bad)).toThrow(ProtocolError);
  expect(() => d.push(bad)).toThrow(re);
  expect(() => d.push(encodeEmpty(MIG_RP_MSG.RESUME_ACK))).toThrow(ProtocolError);
}

describe('wire: ProtocolError', () => {
  it('unknown message type, on either stream (as soon as the 5-byte frame header is in)', () => {
    expectMainError(frame(0x42), /unknown main stream message type 0x42/);
    expectMainError(frame(0x00, [1, 2, 3]), /unknown main stream message type 0x00/);
    // A return path type on the main stream is unknown there, and vice versa.
    expectMainError(frame(MIG_RP_MSG.RESUME_ACK), /unknown main stream message type 0x83/);
    expectReturnError(frame(MIG_CMD.PAGE), /unknown return path message type 0x02/);
    // Detected from the header alone, before any payload arrives (no waiting for 4 GiB).
    const header = Buffer.from([0x77, 0xff, 0xff, 0xff, 0xff]);
    expectMainError(header, /unknown main stream message type 0x77/);
  });

  it('wrong page length (another page size, or a truncated page frame)', () => {
    const other = Buffer.alloc(pageFrameBytes(1024));
    writePage(other, writePageFrameHeader(other, 0, 1, 1, 1024), 1, 1, 1024);
    expectMainError(other, /bad page \(page size 512\) frame: payload length 1032/);
    expectMainError(frame(MIG_CMD.PAGE, Buffer.alloc(8 + PS - 1)), /payload length 519/);
    expectMainError(frame(MIG_CMD.PAGE, Buffer.alloc(0)), /payload length 0/);
  });

  it('page index out of range', () => {
    const out = expectMainError(encodePage(PAGES, 0), /page: page 1000 is outside guest memory \(1000 pages\)/, [encodePage(PAGES - 1, 0)]);
    // The valid page before it was delivered; the bad one never was.
    expect(out).toEqual([{ type: 'page', index: PAGES - 1, version: 0, ok: true }]);
    expectMainError(encodePage(0xffffffff, 0), /outside guest memory/);
  });

  it('discard range out of range, empty or misaligned', () => {
    expectMainError(encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[PAGES - 1, 2]]), /discard range 999\+2 is outside guest memory/);
    expectMainError(encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[0, 0]]), /discard range 0\+0/);
    expectMainError(encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[0xffffffff, 0xffffffff]]), /outside guest memory/);
    expectMainError(frame(MIG_CMD.POSTCOPY_RAM_DISCARD, Buffer.alloc(12)), /bad discard frame: payload length 12/);
  });

  it('page request out of range on the return path', () => {
    expectReturnError(encodeReqPages(PAGES, 1), /page request 1000\+1 is outside guest memory/);
    expectReturnError(encodeReqPages(0, 0), /page request 0\+0/);
    expectReturnError(frame(MIG_RP_MSG.REQ_PAGES, u32s(1)), /bad req-pages frame on the return path: payload length 4/);
    expectReturnError(encodeRecvBitmap(new Uint8Array(3)), /bad recv-bitmap frame/);
  });

  it('bad magic, wrong version, layout mismatch', () => {
    const bad = encodeHeader(headerOf({ resume: false, pageSize: PS, pageCount: PAGES }));
    bad.writeUInt32BE(0x51454d55, 5); // "QEMU"
    expectMainError(bad, /not a postcopy-lab migration stream \(magic 0x51454d55\)/);
    const ver = encodeHeader(headerOf({ resume: false, pageSize: PS, pageCount: PAGES }));
    ver.writeUInt16BE(2, 9);
    expectMainError(ver, /unsupported stream version 2, expected 1/);
    expectMainError(
      encodeHeader(headerOf({ resume: false, pageSize: 4096, pageCount: PAGES })),
      /guest layout mismatch: source has 1000 pages of 4096 bytes, destination 1000 of 512/,
    );
    expectMainError(encodeHeader(headerOf({ resume: false, pageSize: PS, pageCount: PAGES + 1 })), /guest layout mismatch/);
    expectMainError(frame(MIG_CMD.HEADER, Buffer.alloc(15)), /bad header frame: payload length 15/);
  });

  it('truncated or non-object JSON', () => {
    const good = encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: [1, 2, 3] });
    // Cut the JSON short but keep the frame self-consistent (length matches the shorter payload).
    const cut = frame(MIG_CMD.POSTCOPY_RUN, good.subarray(5, good.length - 3));
    expectMainError(cut, /postcopy-run: payload is not a JSON object/);
    expectMainError(frame(MIG_CMD.EOF, Buffer.from('[1,2]')), /eof: payload is not a JSON object \(not an object\)/);
    expectMainError(frame(MIG_CMD.EOF, Buffer.from('null')), /eof: payload is not a JSON object/);
    expectMainError(frame(MIG_CMD.EOF, Buffer.alloc(0)), /eof: payload is not a JSON object/);
    expectReturnError(frame(MIG_RP_MSG.SHUT, Buffer.from('{"verified": tr')), /shut: payload is not a JSON object/);
    // An oversized JSON frame is refused from its header, before its payload is buffered.
    const huge = Buffer.alloc(5);
    huge[0] = MIG_CMD.EOF;
    huge.writeUInt32BE((1 << 20) + 1, 1);
    expectMainError(huge, /bad device state frame/);
  });

  it('malformed resume and verify frames', () => {
    expectMainError(frame(MIG_CMD.POSTCOPY_RESUME, [2]), /unknown resume mode 2/);
    expectMainError(frame(MIG_CMD.POSTCOPY_RESUME, [0, 0]), /bad resume frame/);
    expectMainError(frame(MIG_CMD.X_VERIFY, Buffer.concat([u32s(PAGES - 1, 2), Buffer.alloc(8)])), /x-verify chunk 999\+2 does not fit/);
    expectMainError(frame(MIG_CMD.X_VERIFY, Buffer.concat([u32s(0, 3), Buffer.alloc(8)])), /x-verify chunk 0\+3 does not fit/);
    expectMainError(frame(MIG_CMD.X_VERIFY, Buffer.alloc(4)), /bad x-verify frame/);
    expectMainError(frame(MIG_CMD.POSTCOPY_ADVISE, [0]), /bad empty command frame/);
    expectReturnError(frame(MIG_RP_MSG.RESUME_ACK, [0]), /bad empty frame on the return path/);
  });

  it('an exception thrown by the consumer becomes the decoder error and stops it', () => {
    const d = new MainStreamDecoder(PS, PAGES, () => {
      throw new Error('page 3: content does not match');
    });
    expect(() => d.push(encodePage(3, 1))).toThrow(ProtocolError);
    expect(() => d.push(encodePage(4, 1))).toThrow(/page 3: content does not match/);
  });

  it('an error in the second half of a split frame is still caught, and the first half is not delivered', () => {
    const bad = encodeHeader(headerOf({ resume: false, pageSize: PS, pageCount: PAGES }));
    bad.writeUInt32BE(0xdeadbeef, 5);
    const stream = Buffer.concat([encodeEmpty(MIG_CMD.POSTCOPY_ADVISE), bad]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const out: Plain[] = [];
      const d = new MainStreamDecoder(PS, PAGES, (m) => out.push(plainMain(m)));
      const errors: unknown[] = [];
      for (const part of [stream.subarray(0, cut), stream.subarray(cut)]) {
        try {
          d.push(part);
        } catch (e) {
          errors.push(e);
        }
      }
      // Whichever push completes the bad header fails; a later push is refused with the same error.
      expect(errors.length).toBeGreaterThanOrEqual(1);
      for (const e of errors) {
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as Error).message).toMatch(/magic 0xdeadbeef/);
      }
      expect(out).toEqual([{ type: 'postcopy-advise' }]);
    }
  });
});
