/**
 * The lab screen's own UI state (which overlay is open, the QMP console's line and history,
 * the link menu's cursor and direction) as a pure reducer: testable without a terminal. Migration state is
 * not here; it lives in the session.
 */
import type { Direction, LinkFault, Side } from '../types.js';
import { describeFaultKind, FAULT_DIRECTIONS } from '../link/fault-model.js';
import { complete } from './qmp-commands.js';

export type Mode = 'normal' | 'console' | 'help' | 'link' | 'confirm-quit';

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
  history: string[];
  /** Position while browsing history with up/down; null when editing a fresh line. */
  historyIndex: number | null;
  /** The line being typed before browsing history, restored on the way back down. */
  draft: string;
  /** Candidates shown after an ambiguous Tab. */
  completions: string[];
  /** Lines sent and their replies, most recent last (bounded). */
  output: ConsoleEntry[];
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
}

export const CONSOLE_OUTPUT_LIMIT = 50;
export const HISTORY_LIMIT = 100;

export function initialLabUiState(): LabUiState {
  return {
    mode: 'normal',
    beforeHelp: 'normal',
    console: { side: 'destination', input: '', history: [], historyIndex: null, draft: '', completions: [], output: [] },
    link: { item: 0, direction: 0 },
    notice: null,
  };
}

export type LabUiAction =
  | { type: 'mode'; mode: Mode }
  | { type: 'close-help' }
  | { type: 'notice'; text: string; level?: 'info' | 'error'; at?: number }
  | { type: 'clear-notice' }
  | { type: 'console-type'; text: string }
  | { type: 'console-backspace' }
  | { type: 'console-clear-line' }
  | { type: 'console-tab' }
  | { type: 'console-toggle-side' }
  | { type: 'console-history'; delta: -1 | 1 }
  /** The line was handed to the session; the reply follows as console-reply. */
  | { type: 'console-submit'; id: number }
  | { type: 'console-reply'; id: number; ok: boolean; text: string }
  | { type: 'link-move'; delta: number }
  | { type: 'link-direction'; delta: number };

const otherSide = (s: Side): Side => (s === 'source' ? 'destination' : 'source');
const wrap = (n: number, len: number): number => ((n % len) + len) % len;

function reduceConsole(c: ConsoleState, action: LabUiAction): ConsoleState {
  switch (action.type) {
    case 'console-type':
      // Pasted text may carry newlines; a console line is one line.
      return { ...c, input: c.input + action.text.replace(/[\r\n]+/g, ' '), historyIndex: null, completions: [] };
    case 'console-backspace':
      return { ...c, input: c.input.slice(0, -1), historyIndex: null, completions: [] };
    case 'console-clear-line':
      return { ...c, input: '', historyIndex: null, completions: [] };
    case 'console-toggle-side':
      return { ...c, side: otherSide(c.side) };
    case 'console-tab': {
      // While typing a command name Tab completes it; otherwise Tab switches the target.
      const name = c.input.trimStart();
      if (name.length > 0 && !/\s/.test(name)) {
        const { matches, common } = complete(name);
        const extendable = matches.some((m) => m !== name);
        if (extendable) {
          if (common.length > name.length) {
            const input = matches.length === 1 ? common + ' ' : common;
            return { ...c, input, completions: matches.length === 1 ? [] : matches };
          }
          return { ...c, completions: matches };
        }
        if (matches.length === 0) return { ...c, completions: [] };
      }
      return { ...c, side: otherSide(c.side), completions: [] };
    }
    case 'console-history': {
      if (c.history.length === 0) return c;
      if (action.delta === -1) {
        const index = c.historyIndex === null ? c.history.length - 1 : Math.max(0, c.historyIndex - 1);
        const draft = c.historyIndex === null ? c.input : c.draft;
        return { ...c, historyIndex: index, input: c.history[index], draft, completions: [] };
      }
      if (c.historyIndex === null) return c;
      if (c.historyIndex >= c.history.length - 1) return { ...c, historyIndex: null, input: c.draft, completions: [] };
      const index = c.historyIndex + 1;
      return { ...c, historyIndex: index, input: c.history[index], completions: [] };
    }
    case 'console-submit': {
      const line = c.input.trim();
      if (!line) return c;
      const history = c.history[c.history.length - 1] === line ? c.history : [...c.history, line].slice(-HISTORY_LIMIT);
      const output = [...c.output, { id: action.id, side: c.side, line }].slice(-CONSOLE_OUTPUT_LIMIT);
      return { ...c, input: '', history, historyIndex: null, draft: '', completions: [], output };
    }
    case 'console-reply': {
      const output = c.output.map((e) => (e.id === action.id ? { ...e, ok: action.ok, text: action.text } : e));
      return { ...c, output };
    }
    default:
      return c;
  }
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
