/**
 * Layout math for the lab screen: a pure function of the terminal size, so it can be tested
 * with plain numbers. The hook that follows resizes lives in use-terminal-size.ts.
 *
 * The screen, top to bottom: a header line, the main area (steps on the left; counters, link
 * and page map on the right), the bottom area (event log, or the QMP console when open) and
 * the key bar. Heights are fixed per size so nothing jumps while counters change.
 *
 * The QMP console needs room for a reply (query-migrate is some 30 lines), and the event log
 * focused with Tab shows each event whole (a QMP command with its arguments is several lines),
 * so while either is in use (`tall`) the bottom area grows to about half the screen; the right column then keeps the counters and
 * drops the link panel and page map when they no longer fit, rather than squeezing them.
 */

/** The smallest terminal the lab screen supports. */
export const MIN_COLUMNS = 80;
export const MIN_ROWS = 24;
/** At and above this width the wide layout is used. */
export const WIDE_COLUMNS = 100;

/** Rows the counters table takes: a heading row plus ten counter rows. */
export const COUNTERS_HEIGHT = 11;
/** Rows the link panel takes: a heading row plus one row per direction. */
export const LINK_HEIGHT = 3;
/** Rows the sparklines take: throughput and remaining, one row each. */
export const SPARKLINE_HEIGHT = 2;
/** The page map's minimum: a heading row with the legend plus two rows of cells. */
export const PAGE_MAP_MIN_HEIGHT = 3;
/** The bottom area's minimum: a heading row, at least two lines, (console: the input line). */
export const BOTTOM_MIN_HEIGHT = 4;
export const BOTTOM_MAX_HEIGHT = 14;

export interface Rect {
  width: number;
  height: number;
}

export interface Layout {
  columns: number;
  rows: number;
  /** Below MIN_COLUMNS x MIN_ROWS: the app says so and waits for a resize. */
  tooSmall: boolean;
  mode: 'wide' | 'compact';
  /**
   * Lines the whole frame may use. One less than the terminal's rows: Ink clears the whole
   * terminal on every frame once its output is as tall as the terminal, which flickers.
   */
  height: number;
  header: Rect;
  main: Rect;
  left: { width: number; steps: Rect; sparkline: Rect | null };
  /** A panel with height 0 is not shown (only while the console is open on a short terminal). */
  right: { width: number; counters: Rect; link: Rect; pageMap: Rect };
  /** The event log, or the QMP console over the same rectangle when it is open. */
  bottom: Rect;
  keyBar: Rect;
}

const clamp = (n: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, n));

/** Decide which panels go where for a terminal of `columns` x `rows` cells. */
export function calculateLayout(columns: number, rows: number, opts: { tall?: boolean } = {}): Layout {
  const cols = Math.max(0, Math.floor(columns || 0));
  const rws = Math.max(0, Math.floor(rows || 0));
  const tooSmall = cols < MIN_COLUMNS || rws < MIN_ROWS;
  const mode: Layout['mode'] = cols >= WIDE_COLUMNS ? 'wide' : 'compact';

  // Sizes are computed for at least the minimum so a too-small layout is still well formed.
  const c = Math.max(cols, MIN_COLUMNS);
  const height = Math.max(rws, MIN_ROWS) - 1;
  const inner = height - 2; // header and key bar

  const mainMin = COUNTERS_HEIGHT + LINK_HEIGHT + PAGE_MAP_MIN_HEIGHT;
  const logHeight = Math.max(
    BOTTOM_MIN_HEIGHT,
    Math.min(clamp(Math.floor(inner * 0.3), BOTTOM_MIN_HEIGHT, BOTTOM_MAX_HEIGHT), inner - mainMin),
  );
  const bottomHeight = opts.tall ? Math.max(logHeight, Math.min(Math.floor(inner / 2), inner - COUNTERS_HEIGHT)) : logHeight;
  const mainHeight = inner - bottomHeight;
  const countersHeight = Math.min(COUNTERS_HEIGHT, mainHeight);
  const linkHeight = mainHeight - countersHeight >= LINK_HEIGHT ? LINK_HEIGHT : 0;
  const pageMapRoom = mainHeight - countersHeight - linkHeight;
  const pageMapHeight = pageMapRoom >= PAGE_MAP_MIN_HEIGHT ? pageMapRoom : 0;

  const leftWidth =
    mode === 'wide' ? clamp(Math.floor(c * 0.4), 40, 64) : clamp(Math.floor(c * 0.4), 32, 38);
  const rightWidth = c - leftWidth - 1; // one column of gap

  // Sparklines need room: always in the wide layout, in the compact one only when tall.
  const showSparkline = mode === 'wide' || rws >= 30;
  const sparkline = showSparkline ? { width: leftWidth, height: SPARKLINE_HEIGHT } : null;

  return {
    columns: cols,
    rows: rws,
    tooSmall,
    mode,
    height,
    header: { width: c, height: 1 },
    main: { width: c, height: mainHeight },
    left: {
      width: leftWidth,
      steps: { width: leftWidth, height: mainHeight - (sparkline ? sparkline.height + 1 : 0) },
      sparkline,
    },
    right: {
      width: rightWidth,
      counters: { width: rightWidth, height: countersHeight },
      link: { width: rightWidth, height: linkHeight },
      pageMap: { width: rightWidth, height: pageMapHeight },
    },
    bottom: { width: c, height: bottomHeight },
    keyBar: { width: c, height: 1 },
  };
}

/** The message shown instead of the lab when the terminal is below the minimum. */
export function tooSmallMessage(columns: number, rows: number): string {
  return `Terminal too small: need ${MIN_COLUMNS}x${MIN_ROWS}, have ${columns}x${rows}`;
}
