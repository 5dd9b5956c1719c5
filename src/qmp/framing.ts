/**
 * QMP framing: QMP is a stream of JSON objects with no length prefix and no required
 * delimiter. QEMU feeds bytes to a streaming JSON lexer and dispatches each complete top-level
 * object; a client may send one per line, pretty-print one across many lines, or pack several
 * into one write. This module does the equivalent for both ends of our sockets: it tracks brace
 * depth (aware of strings and escapes) and hands back each complete top-level object's text.
 *
 * It never throws on bad input. Anything that is not a JSON object at the top level (other than
 * whitespace) is reported as an error item and skipped, and an object that grows past the size
 * or nesting limit is reported once and discarded up to its closing brace, so one bad message
 * cannot wedge the connection. Parsing each object's text (JSON.parse) is the caller's job; see
 * `parseMessage`.
 */
import { StringDecoder } from 'node:string_decoder';

/** QEMU refuses JSON tokens/messages beyond a few MiB; 1 MiB is plenty for any QMP message we use. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** QEMU's JSON parser refuses nesting deeper than 1024 (MAX_NESTING in json-streamer.c). */
export const MAX_NESTING = 1024;
/** How much of a garbage run we quote back in the error text. */
const GARBAGE_QUOTE_CHARS = 32;

export type FrameItem =
  | { kind: 'message'; text: string }
  | { kind: 'error'; error: string };

export interface SplitterOptions {
  /** Largest accepted message, in UTF-8 bytes. Default MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /** Deepest accepted nesting of objects. Default MAX_NESTING. */
  maxNesting?: number;
}

function isJsonWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** UTF-8 length of one UTF-16 code unit (a surrogate pair counts 2 + 2 = 4). */
function utf8Units(c: number): number {
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdfff) return 2;
  return 3;
}

const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Streaming splitter of a byte (or text) stream into top-level JSON object texts.
 * Feed it with `push(chunk)`; it returns the items completed by that chunk, in stream order.
 */
export class JsonObjectSplitter {
  private readonly maxBytes: number;
  private readonly maxNesting: number;
  private readonly decoder = new StringDecoder('utf8');

  /** Brace depth of the object being read; 0 between objects. */
  private depth = 0;
  private inString = false;
  private escape = false;
  /** Text pieces of the object being read, from earlier chunks. */
  private parts: string[] = [];
  /** UTF-8 bytes of the object being read so far. */
  private bytes = 0;
  /** The object being read overflowed a limit: skip to its end without keeping text. */
  private discarding = false;
  /** Non-whitespace, non-object text at the top level, pending report (quoted prefix). */
  private garbage: string | null = null;
  private garbageBytes = 0;

  constructor(opts: SplitterOptions = {}) {
    this.maxBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.maxNesting = opts.maxNesting ?? MAX_NESTING;
  }

  /** UTF-8 bytes held for an incomplete object (0 between objects or while discarding). */
  get buffered(): number {
    return this.discarding ? 0 : this.bytes;
  }

  /** Forget any partial object or garbage (e.g. when a connection is reused). */
  reset(): void {
    this.depth = 0;
    this.inString = false;
    this.escape = false;
    this.parts = [];
    this.bytes = 0;
    this.discarding = false;
    this.garbage = null;
    this.garbageBytes = 0;
  }

  push(chunk: Buffer | Uint8Array | string): FrameItem[] {
    const s = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const out: FrameItem[] = [];
    // Start, in `s`, of the current object's text in this chunk; -1 when not keeping text.
    let segStart = this.depth > 0 && !this.discarding ? 0 : -1;

    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);

      if (this.depth === 0) {
        if (c === OPEN || isJsonWhitespace(c)) {
          if (this.garbage !== null) this.flushGarbage(out);
          if (c === OPEN) {
            this.depth = 1;
            this.inString = false;
            this.escape = false;
            this.parts = [];
            this.bytes = 1;
            this.discarding = false;
            segStart = i;
          }
        } else {
          this.addGarbage(s[i]!, c);
        }
        continue;
      }

      this.bytes += utf8Units(c);
      if (!this.discarding && this.bytes > this.maxBytes) {
        this.startDiscarding(out, `message exceeds the ${this.maxBytes}-byte limit`);
        segStart = -1;
      }

      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === BACKSLASH) this.escape = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      if (c === QUOTE) {
        this.inString = true;
      } else if (c === OPEN) {
        this.depth++;
        if (!this.discarding && this.depth > this.maxNesting) {
          this.startDiscarding(out, `nesting deeper than ${this.maxNesting} levels`);
          segStart = -1;
        }
      } else if (c === CLOSE) {
        this.depth--;
        if (this.depth === 0) {
          if (!this.discarding) {
            this.parts.push(s.slice(segStart, i + 1));
            out.push({ kind: 'message', text: this.parts.join('') });
          }
          this.parts = [];
          this.bytes = 0;
          this.discarding = false;
          segStart = -1;
        }
      }
    }

    if (this.depth > 0 && !this.discarding && segStart >= 0) {
      this.parts.push(s.slice(segStart));
    }
    return out;
  }

  /**
   * End of stream: reports garbage still pending, and an object cut off mid-way.
   * The splitter is reset afterwards.
   */
  end(): FrameItem[] {
    const out: FrameItem[] = [];
    const rest = this.decoder.end();
    if (rest) out.push(...this.push(rest));
    if (this.garbage !== null) this.flushGarbage(out);
    if (this.depth > 0 && !this.discarding) {
      out.push({ kind: 'error', error: 'JSON parse error, premature end of input' });
    }
    this.reset();
    return out;
  }

  private addGarbage(ch: string, c: number): void {
    if (this.garbage === null) {
      this.garbage = '';
      this.garbageBytes = 0;
    }
    if (this.garbage.length < GARBAGE_QUOTE_CHARS) this.garbage += ch;
    this.garbageBytes += utf8Units(c);
  }

  private flushGarbage(out: FrameItem[]): void {
    const g = this.garbage ?? '';
    const more = this.garbageBytes > g.length ? '...' : '';
    out.push({ kind: 'error', error: `JSON parse error, expecting a JSON object, got '${g}${more}'` });
    this.garbage = null;
    this.garbageBytes = 0;
  }

  private startDiscarding(out: FrameItem[], why: string): void {
    this.discarding = true;
    this.parts = [];
    out.push({ kind: 'error', error: `JSON parse error, ${why}` });
  }
}

/** QEMU's own message encoding: compact JSON terminated by CRLF. */
export function encode(msg: unknown): string {
  const json = JSON.stringify(msg);
  if (json === undefined) throw new TypeError('QMP message must be JSON-serialisable');
  return json + '\r\n';
}

/** JSON.parse one framed object's text, turning a syntax error into QEMU-style text. */
export function parseMessage(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `JSON parse error, ${e instanceof Error ? e.message : String(e)}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    // Unreachable for splitter output (it only frames '{...}'), kept for direct callers.
    return { ok: false, error: 'QMP input must be a JSON object' };
  }
  return { ok: true, value: value as Record<string, unknown> };
}
