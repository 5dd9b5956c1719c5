import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode, JsonObjectSplitter, parseMessage, type FrameItem } from '../../../src/qmp/framing.js';

function feedAll(chunks: (string | Buffer)[], opts?: ConstructorParameters<typeof JsonObjectSplitter>[0]): FrameItem[] {
  const s = new JsonObjectSplitter(opts);
  const out: FrameItem[] = [];
  for (const c of chunks) out.push(...s.push(c));
  return out;
}

const messages = (items: FrameItem[]) => items.filter((i) => i.kind === 'message').map((i) => (i as { text: string }).text);
const errors = (items: FrameItem[]) => items.filter((i) => i.kind === 'error').map((i) => (i as { error: string }).error);

describe('JsonObjectSplitter', () => {
  const objs = [
    { execute: 'qmp_capabilities', arguments: { enable: ['oob'] } },
    { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444', resume: true }, id: 'a{b}"c' },
    { 'exec-oob': 'migrate-pause', id: 7, note: 'brace } and quote \\" and backslash \\\\ and ünïcødé ✓ 😀' },
  ];

  it('yields each object of a stream split at every byte boundary', () => {
    const stream = Buffer.from(objs.map((o) => encode(o)).join(''), 'utf8');
    for (let i = 0; i <= stream.length; i++) {
      for (const j of [i, Math.min(stream.length, i + 1), Math.min(stream.length, i + 7)]) {
        const items = feedAll([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        expect(errors(items)).toEqual([]);
        expect(messages(items).map((t) => JSON.parse(t))).toEqual(objs);
      }
    }
  });

  it('feeds one byte at a time (multi-byte UTF-8 split across chunks)', () => {
    const stream = Buffer.from(objs.map((o) => JSON.stringify(o)).join('\n'), 'utf8');
    const chunks = [...stream].map((b) => Buffer.from([b]));
    expect(messages(feedAll(chunks)).map((t) => JSON.parse(t))).toEqual(objs);
  });

  it('accepts pretty-printed objects across lines, several per chunk', () => {
    const text = objs.map((o) => JSON.stringify(o, null, 4)).join('\n\n') + '\n';
    expect(messages(feedAll([text])).map((t) => JSON.parse(t))).toEqual(objs);
  });

  it('does not count braces inside strings, including after escaped quotes', () => {
    const text = '{"a": "}}}{{{", "b": "\\"}", "c": "\\\\"}{"d": {"e": "\\\\\\"{"}}';
    const got = messages(feedAll([text]));
    expect(got).toHaveLength(2);
    expect(JSON.parse(got[0]!)).toEqual({ a: '}}}{{{', b: '"}', c: '\\' });
    expect(JSON.parse(got[1]!)).toEqual({ d: { e: '\\"{' } });
  });

  it('reports garbage between objects as a parse error and recovers', () => {
    const items = feedAll(['hello {"execute": "a"}\r\nnull\n', ']', ' {"execute": "b"}']);
    expect(items.map((i) => i.kind)).toEqual(['error', 'message', 'error', 'error', 'message']);
    expect(errors(items)[0]).toBe("JSON parse error, expecting a JSON object, got 'hello'");
    expect(errors(items)[1]).toBe("JSON parse error, expecting a JSON object, got 'null'");
    expect(messages(items).map((t) => JSON.parse(t).execute)).toEqual(['a', 'b']);
  });

  it('quotes only the start of a long garbage run, and reports it once', () => {
    const items = feedAll(['x'.repeat(1000), 'y'.repeat(1000) + '\n']);
    expect(errors(items)).toEqual([`JSON parse error, expecting a JSON object, got '${'x'.repeat(32)}...'`]);
  });

  it('reports an oversize message once, skips it, and recovers at its end', () => {
    const big = JSON.stringify({ execute: 'x', arguments: { blob: 'z'.repeat(5000), nested: { a: '}' } } });
    const items = feedAll([big.slice(0, 100), big.slice(100), '{"execute":"ok"}'], { maxMessageBytes: 1024 });
    expect(errors(items)).toEqual(['JSON parse error, message exceeds the 1024-byte limit']);
    expect(messages(items)).toEqual(['{"execute":"ok"}']);
  });

  it('counts the size limit in UTF-8 bytes', () => {
    const s = new JsonObjectSplitter({ maxMessageBytes: 20 });
    // 8 chars of 'é' = 16 bytes, plus {"":""} framing > 20.
    expect(errors(s.push(`{"a":"${'é'.repeat(8)}"}`))).toHaveLength(1);
    expect(messages(s.push('{"a":"éé"}'))).toEqual(['{"a":"éé"}']);
  });

  it('rejects nesting deeper than the limit and recovers', () => {
    const deep = '{"a":'.repeat(10) + '1' + '}'.repeat(10);
    const items = feedAll([deep, '{}'], { maxNesting: 5 });
    expect(errors(items)).toEqual(['JSON parse error, nesting deeper than 5 levels']);
    expect(messages(items)).toEqual(['{}']);
  });

  it('reports an object cut off by end of stream', () => {
    const s = new JsonObjectSplitter();
    expect(s.push('{"execute": "quer')).toEqual([]);
    expect(s.buffered).toBeGreaterThan(0);
    expect(s.end()).toEqual([{ kind: 'error', error: 'JSON parse error, premature end of input' }]);
    expect(s.buffered).toBe(0);
  });

  it('property: any split of a concatenation of random objects yields the same objects', () => {
    const jsonObject = fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 6 });
    fc.assert(
      fc.property(
        fc.array(jsonObject, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom('', '\n', '\r\n', ' \t'),
        fc.boolean(),
        (objects, cutSeeds, sep, pretty) => {
          const text = objects.map((o) => (pretty ? JSON.stringify(o, null, 2) : JSON.stringify(o))).join(sep);
          const bytes = Buffer.from(text, 'utf8');
          const cuts = [...new Set(cutSeeds.map((n) => n % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const c of [...cuts, bytes.length]) {
            chunks.push(bytes.subarray(prev, c));
            prev = c;
          }
          const items = feedAll(chunks);
          expect(errors(items)).toEqual([]);
          // Compare through JSON (fc.jsonValue may produce -0, which JSON turns into 0).
          expect(messages(items).map((t) => JSON.parse(t))).toEqual(objects.map((o) => JSON.parse(JSON.stringify(o))));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('encode / parseMessage', () => {
  it('encodes compact JSON terminated by CRLF, as QEMU sends', () => {
    expect(encode({ return: {}, id: 1 })).toBe('{"return":{},"id":1}\r\n');
  });

  it('refuses values JSON cannot carry', () => {
    expect(() => encode(undefined)).toThrow(TypeError);
  });

  it('turns a syntax error into a QEMU-style JSON parse error', () => {
    const r = parseMessage('{"execute": }');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^JSON parse error, /);
    expect(parseMessage('{"a": 1}')).toEqual({ ok: true, value: { a: 1 } });
  });
});
