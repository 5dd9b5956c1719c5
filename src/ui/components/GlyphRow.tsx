/**
 * A one-row text whose few non-ASCII glyphs (`–`, `·`, `→`, bar blocks) Ink does not measure.
 * Ink measures the width of every text on every frame (widest-line, uncached); ASCII takes
 * string-width's fast path, but one `·` in a row sends the whole row through Intl.Segmenter
 * and the emoji regex, ~0.1 ms a row under load, a millisecond or more a frame for the counter
 * rows alone (profile of bench/ui.ts's in-process frames). So the row reaches Ink with a `*` in
 * each glyph's column, and a Transform puts the glyphs back as Ink writes the row: the same
 * text on the screen, measured on the fast path. As with the page map's cells (PageMap.tsx).
 *
 * The children are `<Text>` elements and strings only; anything else (or a character not in
 * GLYPHS) renders as a plain `<Text wrap="truncate">`, measured the slow way but the same.
 */
import { Text, Transform } from 'ink';
import { cloneElement, createElement, isValidElement, type ComponentProps, type ReactElement, type ReactNode } from 'react';

/** One column wide in every terminal string-width knows; the only ones replaced. */
const GLYPHS = new Set('–—·✓▶→←█░▒▚…▁▂▃▄▅▆▇');
const PLACEHOLDER = '*';
const ELLIPSIS = '…';

interface Walk {
  col: number;
  /** [column, glyph], in column order. */
  glyphs: Array<[number, string]>;
}

/** `node` with each glyph replaced by the placeholder, or null when it cannot be (see header). */
function asciify(node: ReactNode, w: Walk): ReactNode | null {
  if (node === null || node === undefined || typeof node === 'boolean') return node;
  if (typeof node === 'string' || typeof node === 'number') {
    let out = '';
    for (const ch of String(node)) {
      const code = ch.charCodeAt(0);
      if (ch.length === 1 && code >= 0x20 && code <= 0x7e) out += ch;
      else if (GLYPHS.has(ch)) {
        w.glyphs.push([w.col, ch]);
        out += PLACEHOLDER;
      } else return null;
      w.col++;
    }
    return out;
  }
  if (Array.isArray(node)) {
    const out: ReactNode[] = [];
    for (const child of node as ReactNode[]) {
      const a = asciify(child, w);
      if (a === null) return null;
      out.push(a);
    }
    return out;
  }
  if (isValidElement(node) && node.type === Text) {
    const el = node as ReactElement<{ children?: ReactNode }>;
    const children = asciify(el.props.children, w);
    if (children === null && el.props.children !== null) return null;
    return cloneElement(el, undefined, ...spread(children));
  }
  return null;
}

/**
 * The children rebuilt here are the same static children JSX wrote (`<Text>a {n}. {b}</Text>`):
 * passed spread, not as one array, so React does not take them for a list wanting keys.
 */
const spread = (children: ReactNode): ReactNode[] => (Array.isArray(children) ? (children as ReactNode[]) : [children]);

/** Puts each glyph back in its column of one written row (Ink's SGR codes skipped). */
function restore(line: string, glyphs: ReadonlyArray<[number, string]>): string {
  let out = '';
  let from = 0;
  let col = 0;
  let g = 0;
  for (let i = 0; i < line.length && g < glyphs.length; i++) {
    if (line.charCodeAt(i) === 0x1b) {
      // An escape sequence: ESC [ params final-byte.
      let j = i + 1;
      if (line[j] === '[') for (j++; j < line.length && !(line.charCodeAt(j) >= 0x40 && line.charCodeAt(j) <= 0x7e); j++);
      i = j;
      continue;
    }
    if (col === glyphs[g][0]) {
      if (line[i] === PLACEHOLDER) {
        out += line.slice(from, i) + glyphs[g][1];
        from = i + 1;
      }
      g++;
    }
    col++;
  }
  return out + line.slice(from);
}

type TextProps = Omit<ComponentProps<typeof Text>, 'children' | 'wrap'>;

/** A `<Text wrap="truncate">` of `width` columns whose glyphs Ink does not measure (see header). */
export function GlyphRow(props: TextProps & { width: number; children: ReactNode }) {
  const { width, children, ...text } = props;
  const w: Walk = { col: 0, glyphs: [] };
  let ascii = asciify(children, w);
  if (ascii === null || width <= 0) {
    return (
      <Text wrap="truncate" {...text}>
        {children}
      </Text>
    );
  }
  if (w.col > width) {
    // Too long: Ink's truncate keeps width - 1 columns and adds `…`. Cut here, as ASCII.
    const find = { col: 0, glyphs: [], strings: 0, last: -1 };
    truncate(children, find, width - 1, -1);
    const keep = { col: 0, glyphs: [] as Array<[number, string]>, strings: 0, last: -1 };
    ascii = truncate(children, keep, width - 1, find.last);
    w.glyphs = [...keep.glyphs, [width - 1, ELLIPSIS]];
  }
  if (w.glyphs.length === 0) return createElement(Text, text, ...spread(ascii));
  const glyphs = w.glyphs;
  return (
    <Transform transform={(line, index) => (index === 0 ? restore(line, glyphs) : line)}>{createElement(Text, text, ...spread(ascii))}</Transform>
  );
}

/**
 * asciify (known to succeed), keeping only the first `width` columns; `ellipsisIn` (the count of
 * the string that keeps the last column) gets the placeholder of Ink's `…` after its text, inside
 * its styles, where Ink's truncation puts it. Returns the count of that string too.
 */
function truncate(node: ReactNode, w: Walk & { strings: number; last: number }, width: number, ellipsisIn: number): ReactNode {
  if (node === null || node === undefined || typeof node === 'boolean') return node;
  if (typeof node === 'string' || typeof node === 'number') {
    const n = w.strings++;
    const kept = [...String(node)].slice(0, Math.max(0, width - w.col)).join('');
    if (kept.length > 0) w.last = n;
    const a = asciify(kept, w) as string;
    return n === ellipsisIn ? a + PLACEHOLDER : a;
  }
  if (Array.isArray(node)) return (node as ReactNode[]).map((c) => truncate(c, w, width, ellipsisIn));
  const el = node as ReactElement<{ children?: ReactNode }>;
  return cloneElement(el, undefined, ...spread(truncate(el.props.children, w, width, ellipsisIn)));
}
