/**
 * Shared by the wire protocol tests and the decoder fuzz test: valid messages of every type,
 * as [encoded bytes, expected decoding], for a small guest.
 */
import fc from 'fast-check';
import { checkPage, writePage } from '../../../src/sim/content.js';
import {
  encodeEmpty,
  encodeHeader,
  encodeJson,
  encodeRanges,
  encodeRecvBitmap,
  encodeResume,
  encodeVerify,
  MIG_CMD,
  MIG_RP_MSG,
  pageFrameBytes,
  WIRE_MAGIC,
  writePageFrameHeader,
  type MainMessage,
  type ReturnMessage,
} from '../../../src/sim/wire.js';

export const PS = 512;

/**
 * encodeHeader's argument, whatever optional flags the header grows (a postcopy-preempt change
 * adds two): the flags this suite does not know about are off.
 */
export function headerOf(h: { resume: boolean; pageSize: number; pageCount: number }): Parameters<typeof encodeHeader>[0] {
  return { preemptChannel: false, preemptEnabled: false, ...h } as Parameters<typeof encodeHeader>[0];
}
export const PAGES = 1000;

export function encodePage(index: number, version: number, pageSize = PS): Buffer {
  const b = Buffer.alloc(pageFrameBytes(pageSize));
  const at = writePageFrameHeader(b, 0, index, version, pageSize);
  writePage(b, at, index, version, pageSize);
  return b;
}

/** A decoded main message in a comparable form (a page's buffer is only valid in the callback). */
export type Plain = Record<string, unknown>;
export function plainMain(m: MainMessage, pageSize = PS): Plain {
  switch (m.type) {
    case 'page':
      return { type: 'page', index: m.index, version: m.version, ok: checkPage(m.buf, m.offset, m.index, m.version, pageSize) };
    case 'x-verify':
      return { type: 'x-verify', start: m.start, versions: [...m.versions] };
    case 'header': {
      // Only the fields this suite checks; newer headers may carry more flags.
      const { magic, version, resume, pageSize: ps, pageCount } = m.header;
      return { type: 'header', header: { magic, version, resume, pageSize: ps, pageCount } };
    }
    default:
      return { ...m } as Plain;
  }
}
export function plainReturn(m: ReturnMessage): Plain {
  return m.type === 'recv-bitmap' ? { type: 'recv-bitmap', bitmap: [...m.bitmap] } : ({ ...m } as Plain);
}

/** Splits buf at the given cut points (any values; folded into range and sorted). */
export function chunk(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

// ---- arbitraries: one valid message each, as [bytes, expected decoding] ------------------------

const idx = fc.integer({ min: 0, max: PAGES - 1 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const range = idx.chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 1, max: PAGES - s })));
const device = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }).map((d) => JSON.parse(JSON.stringify(d)) as Record<string, unknown>);

export const mainMsg: fc.Arbitrary<[Buffer, Plain]> = fc.oneof(
  fc.boolean().map((resume): [Buffer, Plain] => [
    encodeHeader(headerOf({ resume, pageSize: PS, pageCount: PAGES })),
    { type: 'header', header: { magic: WIRE_MAGIC, version: 1, resume, pageSize: PS, pageCount: PAGES } },
  ]),
  fc.tuple(idx, u32).map(([i, v]): [Buffer, Plain] => [encodePage(i, v), { type: 'page', index: i, version: v, ok: true }]),
  fc.constant<[Buffer, Plain]>([encodeEmpty(MIG_CMD.POSTCOPY_ADVISE), { type: 'postcopy-advise' }]),
  fc.array(range, { minLength: 0, maxLength: 5 }).map((ranges): [Buffer, Plain] => [
    encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, ranges),
    { type: 'postcopy-ram-discard', ranges },
  ]),
  device.map((d): [Buffer, Plain] => [encodeJson(MIG_CMD.POSTCOPY_RUN, d), { type: 'postcopy-run', device: d }]),
  fc.constant<[Buffer, Plain]>([encodeEmpty(MIG_CMD.RECV_BITMAP), { type: 'recv-bitmap' }]),
  fc.constantFrom<'bitmap' | 'walk'>('bitmap', 'walk').map((mode): [Buffer, Plain] => [encodeResume(mode), { type: 'postcopy-resume', mode }]),
  idx.chain((s) => fc.tuple(fc.constant(s), fc.array(u32, { maxLength: Math.min(20, PAGES - s) }))).map(([s, vs]): [Buffer, Plain] => [
    encodeVerify(s, Uint32Array.from(vs)),
    { type: 'x-verify', start: s, versions: vs },
  ]),
  device.map((d): [Buffer, Plain] => [encodeJson(MIG_CMD.EOF, d), { type: 'eof', device: d }]),
);

export const returnMsg: fc.Arbitrary<[Buffer, Plain]> = fc.oneof(
  range.map(([s, c]): [Buffer, Plain] => [encodeRanges(MIG_RP_MSG.REQ_PAGES, [[s, c]]), { type: 'req-pages', start: s, count: c }]),
  fc.uint8Array({ minLength: Math.ceil(PAGES / 8), maxLength: Math.ceil(PAGES / 8) }).map((b): [Buffer, Plain] => [
    encodeRecvBitmap(b),
    { type: 'recv-bitmap', bitmap: [...b] },
  ]),
  fc.constant<[Buffer, Plain]>([encodeEmpty(MIG_RP_MSG.RESUME_ACK), { type: 'resume-ack' }]),
  device.map((d): [Buffer, Plain] => [encodeJson(MIG_RP_MSG.SHUT, d), { type: 'shut', result: d }]),
  fc.constant<[Buffer, Plain]>([encodeEmpty(MIG_RP_MSG.X_ALL_RECEIVED), { type: 'x-all-received' }]),
);
