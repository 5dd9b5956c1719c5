/**
 * The lab screen's own UI state (which overlay is open, the QMP console's line, cursor and
 * history, which step is being read and how far each panel is scrolled, the link menu's cursor
 * and direction) as a pure reducer: testable without a terminal. Migration state is not here;
 * it lives in the session.
 */
import type { Direction, LabEvent, LinkFault, Side } from '../types.js';
import { describeFaultKind, FAULT_DIRECTIONS } from '../link/fault-model.js';
import { complete } from './qmp-commands.js';

export type Mode = 'normal' | 'console' | 'help' | 'link' | 'confirm-quit' | 'confirm-fault';

export interface ConsoleEntry {
  /** Chosen by the caller at submit time; replies find their line by it. */
  id: number;
  side: Side;
  line: string;
  /** Undefined while the reply is awaited. */
  ok?: boolean;
  text?: string;
}

export interface ConsoleState {
  side: Side;
  input: string;
  /** Where the next typed character goes, 0..input.length. */
  cursor: number;
  /**
   * Each side its own: a line typed to the source is rarely right for the destination. ↑ walks
   * this side's lines, newest first, then goes on into the other side's (browseHistory).
   */
  history: Record<Side, string[]>;
  /** Position while browsing history with up/down; null when editing a fresh line. */
  historyIndex: number | null;
  /** The line being typed before browsing history, restored on the way back down. */
  draft: string;
  /** Candidates shown after an ambiguous Tab. */
  completions: string[];
  /**
   * With the candidates: the line typed is itself a whole command whose arguments a second Tab
   * fills ("migrate", which the migrate-* commands extend). Read only while completions show.
   */
  tabAgainFills: boolean;
  /** Lines sent and their replies, most recent last (bounded). */
  output: ConsoleEntry[];
  /** First reply-pane row shown; null follows the newest reply. */
  scroll: number | null;
  /** The step the console last aimed itself for (see 'console-aim'); null before any. */
  aimedStep: number | null;
}

/** Which panel the scroll keys move while the console is closed. */
export type Focus = 'steps' | 'log';

/** The steps panel: which step is being read, and how far its text is scrolled. */
export interface StepsViewState {
  /** The step (StepView.index) being read; null follows the current step. */
  viewing: number | null;
  /** First text row shown, for the step `offsetStep` (another step starts at its top). */
  offset: number;
  offsetStep: number | null;
}

/** A fault without its direction: the link menu adds the direction chosen separately. */
type Undirected<F> = F extends LinkFault ? Omit<F, 'direction'> : never;
type UndirectedFault = Undirected<LinkFault>;

export interface LinkMenuItem {
  label: string;
  fault: UndirectedFault;
}

const MiB = 1024 * 1024;
/** The menu's line for a shaping preset is the fault model's own words, as the notice says it. */
const preset = (fault: UndirectedFault): LinkMenuItem => ({ label: describeFaultKind(fault as LinkFault), fault });

/** Every fault a person can apply by hand from the `l` menu, to the direction chosen there. */
export const LINK_MENU_ITEMS: readonly LinkMenuItem[] = [
  { label: 'cut: reset the connections, refuse new ones', fault: { kind: 'cut' } },
  { label: 'blackhole: drop every byte silently', fault: { kind: 'blackhole' } },
  { label: 'down: hold every byte until up', fault: { kind: 'down' } },
  { label: 'up: end cut, blackhole or down (keeps shaping)', fault: { kind: 'up' } },
  preset({ kind: 'latency', ms: 20, jitterMs: 0 }),
  preset({ kind: 'latency', ms: 100, jitterMs: 0 }),
  preset({ kind: 'latency', ms: 200, jitterMs: 50 }),
  preset({ kind: 'latency', ms: 1000, jitterMs: 0 }),
  preset({ kind: 'latency', ms: 0, jitterMs: 0 }),
  preset({ kind: 'bandwidth', bytesPerSec: 1 * MiB }),
  preset({ kind: 'bandwidth', bytesPerSec: 10 * MiB }),
  preset({ kind: 'bandwidth', bytesPerSec: 100 * MiB }),
  preset({ kind: 'bandwidth', bytesPerSec: 0 }),
  preset({ kind: 'loss', percent: 1 }),
  preset({ kind: 'loss', percent: 5 }),
  preset({ kind: 'loss', percent: 0 }),
];

/** The link menu's directions, in the order `d` cycles through them. */
export const MENU_DIRECTIONS: readonly (Direction | 'both')[] = FAULT_DIRECTIONS;

export interface LabUiState {
  mode: Mode;
  /** The mode to go back to when help closes. */
  beforeHelp: Mode;
  console: ConsoleState;
  /** The link menu: the item under the cursor and the direction it applies to (indexes). */
  link: { item: number; direction: number };
  /** A short message in the header (an action's error, a confirmation), with when it was set. */
  notice: { text: string; level: 'info' | 'error'; at: number } | null;
  focus: Focus;
  steps: StepsViewState;
  /** The event log's first shown event; null follows the newest. By identity: the log is bounded. */
  log: { top: LabEvent | null };
  /** First row of the help shown (it scrolls on a short terminal). */
  helpOffset: number;
  /** The fault asked about in 'confirm-fault' mode (one the current step does not call for). */
  pendingFault: LinkFault | null;
  /** The last step (StepView.index) in which the person did something to the run: a key's action, a console line. */
  actedStep: number | null;
}

/** Reading speed for a step's text: 4 words a second (240 a minute), a careful reader's pace. */
const READ_MS_PER_WORD = 250;

/**
 * Whether step `step` (StepView.index), current for `shownMs` and just ended, ended under a reader:
 * followed on screen (not another step read with [ ]), not scrolled to its end, the person did
 * nothing in it (or did with part of its text never in view: `hiddenBelow`), and it lasted less
 * than a careful read of its text.
 */
export function endedUnread(state: LabUiState, step: number, text: string, shownMs: number, hiddenBelow = false): boolean {
  const v = state.steps;
  // Scrolled and following the lab (not pinned halfway, which sets `viewing`): read to its end.
  const readToEnd = v.offsetStep === step && v.offset > 0;
  // Acting is no proof of reading when part of the text never came into view: step texts say
  // what to do first and what follows from it after (found playing double-failure on QEMU 10.0:
  // the resume typed after the first lines of "Reconnect too early" ended it, 13 lines unread).
  return v.viewing === null && (state.actedStep !== step || hiddenBelow) && !readToEnd && shownMs < readingMs(text);
}

/** How long a careful reader takes over a step's text, at least 5 s and at most a minute. */
export function readingMs(text: string): number {
  const words = text.split(/\s+/).filter(Boolean).length;
  return Math.min(60_000, Math.max(5_000, words * READ_MS_PER_WORD));
}

export const CONSOLE_OUTPUT_LIMIT = 50;
export const HISTORY_LIMIT = 100;

export function initialLabUiState(): LabUiState {
  return {
    mode: 'normal',
    beforeHelp: 'normal',
    console: {
      side: 'destination',
      input: '',
      cursor: 0,
      history: { source: [], destination: [] },
      historyIndex: null,
      draft: '',
      completions: [],
      tabAgainFills: false,
      output: [],
      scroll: null,
      aimedStep: null,
    },
    link: { item: 0, direction: 0 },
    notice: null,
    focus: 'steps',
    steps: { viewing: null, offset: 0, offsetStep: null },
    log: { top: null },
    helpOffset: 0,
    pendingFault: null,
    actedStep: null,
  };
}

export type LabUiAction =
  | { type: 'mode'; mode: Mode }
  | { type: 'close-help' }
  | { type: 'notice'; text: string; level?: 'info' | 'error'; at?: number }
  | { type: 'clear-notice' }
  | { type: 'console-type'; text: string }
  | { type: 'console-backspace' }
  /** Delete the character under the cursor (the Delete key of a PC keyboard). */
  | { type: 'console-delete-forward' }
  | { type: 'console-cursor'; to: 'left' | 'right' | 'home' | 'end' }
  | { type: 'console-clear-line' }
  /** `fills`: the name typed is a whole command whose arguments a second Tab would fill. */
  | { type: 'console-tab'; fills?: boolean }
  | { type: 'console-toggle-side' }
  | { type: 'console-history'; delta: -1 | 1 }
  /** Put a line into the input (a hint's command), aimed at `side` when the hint names one. */
  | { type: 'console-fill'; line: string; side?: Side }
  /**
   * Opening the console in a new step: aim it at the side the step's first command goes to, once
   * per step and only over an empty line, so a learner does not send the step's command to the
   * side they used last (the console's side was sticky across steps).
   */
  | { type: 'console-aim'; step: number; side: Side | null }
  /** Scroll the reply pane to `row` (null: follow the newest). */
  | { type: 'console-scroll'; row: number | null }
  | { type: 'focus'; focus: Focus }
  /** Read step `index` (null: the current step); its text starts at the top. */
  | { type: 'steps-view'; index: number | null }
  | {
      type: 'steps-scroll';
      step: number;
      offset: number;
      /** For the current step: true keeps it on screen after it ends (read halfway), false follows the lab. */
      pin?: boolean;
    }
  /**
   * The person acted on the current step `step` (a key, a console line). `follow`: and the steps
   * panel, showing another step, goes to it (what was done is in view, as after s).
   */
  | { type: 'acted'; step: number; follow?: boolean }
  /**
   * The current step `step` (StepView.index) ended after `shownMs` on screen and the lab moved on.
   * A step that ended under a reader (endedUnread) stays on screen, marked done: ] goes on (found
   * playing throttle-vs-postcopy: "Watch the throttle climb" ended 3 s after it appeared, its 120
   * words unread, and the panel jumped to step 6).
   */
  | { type: 'step-ended'; step: number; text: string; shownMs: number; hiddenBelow?: boolean }
  | { type: 'log-scroll'; top: LabEvent | null }
  | { type: 'help-scroll'; offset: number }
  /** The line was handed to the session; the reply follows as console-reply. */
  | { type: 'console-submit'; id: number }
  | { type: 'console-reply'; id: number; ok: boolean; text: string }
  /** Ask before applying `fault` (the current step does not break the link). */
  | { type: 'confirm-fault'; fault: LinkFault }
  | { type: 'link-move'; delta: number }
  | { type: 'link-direction'; delta: number };

const otherSide = (s: Side): Side => (s === 'source' ? 'destination' : 'source');
const wrap = (n: number, len: number): number => ((n % len) + len) % len;

/** The input replaced by `input`, the cursor at its end: what history, completion and fill do. */
const withInput = (c: ConsoleState, input: string): ConsoleState => ({ ...c, input, cursor: input.length });

function reduceConsole(c: ConsoleState, action: LabUiAction): ConsoleState {
  const at = Math.min(c.cursor, c.input.length);
  switch (action.type) {
    case 'console-type': {
      // Pasted text may carry newlines; a console line is one line.
      const text = action.text.replace(/[\r\n]+/g, ' ');
      return { ...c, input: c.input.slice(0, at) + text + c.input.slice(at), cursor: at + text.length, historyIndex: null, completions: [] };
    }
    case 'console-backspace':
      if (at === 0) return c;
      return { ...c, input: c.input.slice(0, at - 1) + c.input.slice(at), cursor: at - 1, historyIndex: null, completions: [] };
    case 'console-delete-forward':
      if (at >= c.input.length) return c;
      return { ...c, input: c.input.slice(0, at) + c.input.slice(at + 1), cursor: at, historyIndex: null, completions: [] };
    case 'console-cursor': {
      const to = { left: Math.max(0, at - 1), right: Math.min(c.input.length, at + 1), home: 0, end: c.input.length }[action.to];
      return { ...c, cursor: to };
    }
    case 'console-clear-line':
      return { ...withInput(c, ''), historyIndex: null, completions: [] };
    case 'console-toggle-side':
      // History belongs to a side: browsing starts afresh on the other one.
      return { ...c, side: otherSide(c.side), historyIndex: null, draft: '', completions: [] };
    case 'console-tab': {
      // Tab only completes a command name: switching the target is Shift-Tab, so a stray Tab
      // never sends a command to the other VM.
      const name = c.input.trimStart();
      if (name.length === 0 || /\s/.test(name)) return { ...c, completions: [] };
      const { matches, common } = complete(name);
      if (!matches.some((m) => m !== name)) return { ...c, completions: [] };
      if (common.length > name.length) {
        return { ...withInput(c, matches.length === 1 ? common + ' ' : common), completions: matches.length === 1 ? [] : matches };
      }
      return { ...c, completions: matches, tabAgainFills: action.fills === true && matches.includes(name) };
    }
    case 'console-history': {
      const history = browseHistory(c);
      if (history.length === 0) return c;
      if (action.delta === -1) {
        const index = c.historyIndex === null ? history.length - 1 : Math.max(0, c.historyIndex - 1);
        const draft = c.historyIndex === null ? c.input : c.draft;
        return { ...withInput(c, history[index]), historyIndex: index, draft, completions: [] };
      }
      if (c.historyIndex === null) return c;
      if (c.historyIndex >= history.length - 1) return { ...withInput(c, c.draft), historyIndex: null, completions: [] };
      const index = c.historyIndex + 1;
      return { ...withInput(c, history[index]), historyIndex: index, completions: [] };
    }
    case 'console-aim':
      if (c.aimedStep === action.step) return c;
      return { ...c, aimedStep: action.step, side: action.side && c.input === '' ? action.side : c.side };
    case 'console-fill':
      return { ...withInput(c, action.line), side: action.side ?? c.side, historyIndex: null, draft: '', completions: [] };
    case 'console-scroll':
      return { ...c, scroll: action.row === null ? null : Math.max(0, action.row) };
    case 'console-submit': {
      const line = c.input.trim();
      if (!line) return c;
      const own = c.history[c.side];
      const history = { ...c.history, [c.side]: own[own.length - 1] === line ? own : [...own, line].slice(-HISTORY_LIMIT) };
      const output = [...c.output, { id: action.id, side: c.side, line }].slice(-CONSOLE_OUTPUT_LIMIT);
      // A new command scrolls the pane back to the newest, where its reply will appear.
      return { ...withInput(c, ''), history, historyIndex: null, draft: '', completions: [], output, scroll: null };
    }
    case 'console-reply': {
      const output = c.output.map((e) => (e.id === action.id ? { ...e, ok: action.ok, text: action.text } : e));
      return { ...c, output };
    }
    default:
      return c;
  }
}

/**
 * The lines ↑ walks from the end: the other side's first (oldest to newest, but for lines this
 * side has too), then this side's. So ↑ gives this side's newest line first and, past its oldest,
 * the other side's newest: QEMU wants a capability such as postcopy-preempt set on both sides,
 * and played, ↑ on the destination after setting it on the source gave nothing.
 */
function browseHistory(c: ConsoleState): string[] {
  const own = c.history[c.side];
  return [...c.history[otherSide(c.side)].filter((l) => !own.includes(l)), ...own];
}

export function labUiReducer(state: LabUiState, action: LabUiAction): LabUiState {
  switch (action.type) {
    case 'close-help':
      return { ...state, mode: state.beforeHelp === 'help' ? 'normal' : state.beforeHelp };
    case 'mode':
      return {
        ...state,
        mode: action.mode,
        beforeHelp: action.mode === 'help' && state.mode !== 'help' ? state.mode : state.beforeHelp,
        console: action.mode === 'console' ? state.console : { ...state.console, completions: [] },
      };
    case 'notice':
      return { ...state, notice: { text: action.text, level: action.level ?? 'info', at: action.at ?? Date.now() } };
    case 'clear-notice':
      return { ...state, notice: null };
    case 'focus':
      // Leaving the log, it follows the newest events again: unfocused, no key scrolls it, and
      // a log left scrolled back showed the same old lines for the rest of the lab.
      return { ...state, focus: action.focus, log: action.focus === 'log' ? state.log : { top: null } };
    case 'steps-view':
      return { ...state, steps: { viewing: action.index, offset: 0, offsetStep: action.index } };
    case 'steps-scroll': {
      // A reader halfway down the current step's text keeps their place when the step ends
      // under them (a step may end by the lab's clock): ] then goes on to the step that began.
      const viewing = action.pin === undefined ? state.steps.viewing : action.pin ? action.step : null;
      return { ...state, steps: { viewing, offset: Math.max(0, action.offset), offsetStep: action.step } };
    }
    case 'acted': {
      // Played link-cut-recovery: "Cut the link" kept on screen (it ended while read), then u and
      // both recovery commands typed from the advice: steps 5 and 6 began and ended unseen, their
      // texts (why nothing resumes by itself; what the resume does) never shown.
      const away = action.follow === true && state.steps.viewing !== null && state.steps.viewing !== action.step;
      if (state.actedStep === action.step && !away) return state;
      // Acted from another step's text, the person has not read this one: it does not count as
      // read when it ends (played: u from the kept "Cut the link" ended "Bring the network back"
      // at once, and the panel went on past it unseen).
      if (away) return { ...state, steps: { viewing: null, offset: 0, offsetStep: action.step } };
      return { ...state, actedStep: action.step };
    }
    case 'step-ended': {
      const v = state.steps;
      if (!endedUnread(state, action.step, action.text, action.shownMs, action.hiddenBelow)) return state;
      return {
        ...state,
        steps: { viewing: action.step, offset: v.offsetStep === action.step ? v.offset : 0, offsetStep: action.step },
        notice: { text: `step ${action.step + 1} ended while you read it: ] goes on`, level: 'info', at: Date.now() },
      };
    }
    case 'log-scroll':
      return { ...state, log: { top: action.top } };
    case 'help-scroll':
      return { ...state, helpOffset: Math.max(0, action.offset) };
    case 'confirm-fault':
      return { ...state, mode: 'confirm-fault', pendingFault: action.fault };
    case 'link-move':
      return { ...state, link: { ...state.link, item: wrap(state.link.item + action.delta, LINK_MENU_ITEMS.length) } };
    case 'link-direction':
      return { ...state, link: { ...state.link, direction: wrap(state.link.direction + action.delta, MENU_DIRECTIONS.length) } };
    default:
      return { ...state, console: reduceConsole(state.console, action) };
  }
}

/** The fault the link menu would apply now: the item under the cursor, on the chosen direction. */
export function selectedLinkFault(state: LabUiState): LinkFault {
  const item = LINK_MENU_ITEMS[state.link.item];
  return { ...item.fault, direction: MENU_DIRECTIONS[state.link.direction] } as LinkFault;
}
