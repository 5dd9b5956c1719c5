/**
 * Decoder fuzz: random bytes, and random mutations of valid streams, in random chunks. Whatever
 * arrives, a decoder either hands out valid messages or throws ProtocolError: never another
 * exception, never a page (or range, or request) outside guest memory, and once it has thrown
 * it refuses everything after.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MainStreamDecoder, ProtocolError, ReturnPathDecoder, type MainMessage, type ReturnMessage } from '../../../src/sim/wire.js';
import { chunk, mainMsg, PAGES, PS, returnMsg } from './wire-arbitraries.js';

/**
 * Why a delivered main stream message breaks the guest's layout, or null. (Not expect(): the
 * decoder turns anything its callback throws into a ProtocolError, which would hide a failure.)
 */
function mainViolation(m: MainMessage): string | null {
  switch (m.type) {
    case 'page':
      if (m.index >= PAGES) return `page ${m.index} delivered (guest has ${PAGES})`;
      if (m.offset + PS > m.buf.length) return `page ${m.index} buffer too short`;
      return null;
    case 'postcopy-ram-discard':
      for (const [s, c] of m.ranges) if (c <= 0 || s + c > PAGES) return `discard ${s}+${c} delivered`;
      return null;
    case 'x-verify':
      return m.start + m.versions.length > PAGES ? `x-verify ${m.start}+${m.versions.length} delivered` : null;
    case 'header':
      return m.header.pageSize !== PS || m.header.pageCount !== PAGES ? `mismatched header delivered` : null;
    case 'postcopy-run':
    case 'eof':
      return typeof m.device !== 'object' || m.device === null || Array.isArray(m.device) ? `${m.type} device state is not an object` : null;
    default:
      return null;
  }
}

function returnViolation(m: ReturnMessage): string | null {
  switch (m.type) {
    case 'req-pages':
      return m.count <= 0 || m.start + m.count > PAGES ? `request ${m.start}+${m.count} delivered` : null;
    case 'recv-bitmap':
      return m.bitmap.length !== Math.ceil(PAGES / 8) ? `bitmap of ${m.bitmap.length} bytes delivered` : null;
    case 'shut':
      return typeof m.result !== 'object' || m.result === null ? 'shut result is not an object' : null;
    default:
      return null;
  }
}

/** Feeds the chunks; asserts the decoder's contract; returns how many messages came out. */
function feed(kind: 'main' | 'return', chunks: Buffer[]): { messages: number; failed: boolean } {
  let messages = 0;
  const violations: string[] = [];
  const note = (v: string | null) => {
    messages++;
    if (v) violations.push(v);
  };
  const d = kind === 'main' ? new MainStreamDecoder(PS, PAGES, (m) => note(mainViolation(m))) : new ReturnPathDecoder(PAGES, (m) => note(returnViolation(m)));
  let failed = false;
  for (const c of chunks) {
    const before = messages;
    try {
      d.push(c);
    } catch (e) {
      // Only ProtocolError, ever: a TypeError or RangeError would escape here and fail the test.
      if (!(e instanceof ProtocolError)) throw e;
      // Once failed, refused: nothing more is delivered.
      if (failed) expect(messages).toBe(before);
      failed = true;
    }
  }
  expect(violations).toEqual([]);
  return { messages, failed };
}

/** A mutation applied to a valid stream. */
type Mutation =
  | { m: 'flip'; at: number; xor: number }
  | { m: 'insert'; at: number; bytes: number[] }
  | { m: 'delete'; at: number; len: number }
  | { m: 'truncate'; at: number }
  | { m: 'u32'; at: number; value: number }
  | { m: 'dup'; at: number; len: number };

const interesting = fc.constantFrom(0, 1, 7, 8, PAGES - 1, PAGES, PAGES + 1, PS, PS + 8, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 20, (1 << 20) + 1);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ m: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ m: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }) }),
  fc.record({ m: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ m: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ m: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(interesting, fc.nat()) }),
  fc.record({ m: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 600 }) }),
);

function mutate(buf: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(buf);
  for (const mu of muts) {
    if (b.length === 0) break;
    const at = mu.at % b.length;
    switch (mu.m) {
      case 'flip':
        b[at] ^= mu.xor;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(mu.bytes), b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + mu.len)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'u32':
        if (at + 4 <= b.length) b.writeUInt32BE(mu.value >>> 0, at);
        break;
      case 'dup':
        b = Buffer.concat([b.subarray(0, at + mu.len), b.subarray(at)]);
        break;
    }
  }
  return b;
}

const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe('wire decoder fuzz', () => {
  it('main stream: random bytes in random chunks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), cuts, (bytes, c) => {
        feed('main', chunk(Buffer.from(bytes), c));
      }),
      { numRuns: 400 },
    );
  });

  it('main stream: random bytes that start with a valid frame type (gets past the type check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: PS + 40 }), fc.uint8Array({ maxLength: PS + 64 }), cuts, (type, len, rest, c) => {
        const head = Buffer.alloc(5);
        head[0] = type;
        head.writeUInt32BE(len, 1);
        feed('main', chunk(Buffer.concat([head, Buffer.from(rest)]), c));
      }),
      { numRuns: 400 },
    );
  });

  it('return path: random bytes in random chunks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1024 }), cuts, (bytes, c) => {
        feed('return', chunk(Buffer.from(bytes), c));
      }),
      { numRuns: 400 },
    );
  });

  it('main stream: mutations of a valid stream', () => {
    fc.assert(
      fc.property(fc.array(mainMsg, { minLength: 1, maxLength: 8 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, (msgs, muts, c) => {
        const stream = mutate(Buffer.concat(msgs.map((m) => m[0])), muts);
        feed('main', chunk(stream, c));
      }),
      { numRuns: 500 },
    );
  });

  it('return path: mutations of a valid stream', () => {
    fc.assert(
      fc.property(fc.array(returnMsg, { minLength: 1, maxLength: 8 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, (msgs, muts, c) => {
        const stream = mutate(Buffer.concat(msgs.map((m) => m[0])), muts);
        feed('return', chunk(stream, c));
      }),
      { numRuns: 500 },
    );
  });

  it('an unmutated stream never fails (the fuzz harness itself is sound)', () => {
    fc.assert(
      fc.property(fc.array(mainMsg, { minLength: 1, maxLength: 8 }), cuts, (msgs, c) => {
        const r = feed('main', chunk(Buffer.concat(msgs.map((m) => m[0])), c));
        expect(r).toEqual({ messages: msgs.length, failed: false });
      }),
      { numRuns: 100 },
    );
  });
});
