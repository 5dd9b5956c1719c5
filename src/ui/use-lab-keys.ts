/**
 * Every key binding of the lab screen, in one hook. Each mode binds only what its key bar
 * shows (see key-bar.ts); the session is called directly and failures become a notice.
 */
import { useKeys } from './use-keys.js';
import type { Key } from 'ink';
import { useRef } from 'react';
import { commandSide, hintCommand, settingLineSide, type HintCommand } from '../qmp/console.js';
import { EXTRA_MONITOR_CONSOLE } from '../libvirt/commands.js';
import { complete, QMP_COMMANDS } from './qmp-commands.js';
import type { LabEvent, LabSessionApi, MigrationStatus, SessionState, Side, Snapshot, StepView } from '../types.js';
import { isPostcopy, isRecovering } from '../sim/states.js';
import type { StepsView } from './components/StepsPanel.js';
import { normalKeys, pausable, shownHintCommand } from './key-bar.js';
import { describeFault } from '../link/fault-model.js';
import { consoleArguments, faultTooEarly, isBreaking, oneWayWanted, stepsBefore } from '../lab/reach.js';
import { LAB_REFUSAL } from '../lab/operator.js';
import type { LinkFault } from '../types.js';
import { selectedLinkFault, type LabUiAction, type LabUiState } from './lab-state.js';
import type { ScrollWindow } from './scroll.js';
import type { Store } from './store.js';

/**
 * An error as the header has room for it: "step 2 'Start a precopy migration and watch it not
 * converge': …" put the reason past the edge at 80 columns; the step's number says which.
 */
export function withoutStepTitle(message: string, steps: readonly Pick<StepView, 'index' | 'title'>[]): string {
  for (const st of steps) {
    const head = `step ${st.index + 1} '${st.title}': `;
    if (message.startsWith(head)) return `step ${st.index + 1}: ${message.slice(head.length)}`;
  }
  return message;
}

/** What the lab screen shows now, as the scroll and step keys need it (from its last render). */
export interface LabViews {
  steps: StepsView;
  /** Step views in order, to move between them. */
  stepList: readonly StepView[];
  currentStep: number;
  log: { events: readonly LabEvent[]; window: ScrollWindow };
  console: ScrollWindow;
  help: ScrollWindow;
}

/**
 * Whether to ask before `fault`: it breaks the link (cut, blackhole, down), the current step's
 * own `do` does not, and a migration is under way for it to ruin.
 */
export function faultNeedsConfirm(fault: LinkFault, state: SessionState): boolean {
  if (!isBreaking(fault.kind)) return false;
  const step = state.steps.find((s) => s.index === state.currentStep);
  if (!step) return false;
  // The step's own fault, but before the postcopy it waits for: a cut now fails the migration.
  if (faultTooEarly(step, fault, state.snapshot)) return true;
  // Its kind, but both ways where the step breaks one direction (double-failure's stalled
  // handshake blackholes the return path: b took both, and the destination never saw the
  // reconnect the step is about; a newcomer's walk).
  const status = state.snapshot?.source.status ?? 'none';
  const under = !['none', 'completed', 'failed', 'cancelled'].includes(status);
  if (oneWayWanted(step, fault) && under) return true;
  // A step that breaks the link its own way (blackhole's "pull the cable") asks before another
  // kind: a cut there pauses both sides at once, the very thing the step shows a blackhole does not.
  const otherKind = step.breaksLink === true && step.linkFaults !== undefined && step.linkFaults.length > 0 && !step.linkFaults.includes(fault.kind);
  if (step.breaksLink !== false && !otherKind) return false;
  return under;
}

/** How far a scroll key moves a window, or null when the key is not a scroll key. */
export function scrollTarget(input: string, key: Key, w: Pick<ScrollWindow, 'start' | 'page' | 'maxStart'>): number | null {
  if (key.pageDown) return Math.min(w.maxStart, w.start + w.page);
  if (key.pageUp) return Math.max(0, w.start - w.page);
  if (key.downArrow || input === 'j') return Math.min(w.maxStart, w.start + 1);
  if (key.upArrow || input === 'k') return Math.max(0, w.start - 1);
  if (key.home) return 0;
  if (key.end) return w.maxStart;
  return null;
}

/** The step `[` (-1) or `]` (+1) moves to: null is the current step, undefined is no move. */
export function stepToView(v: LabViews, delta: -1 | 1): number | null | undefined {
  const pos = v.steps.viewed === null ? -1 : v.stepList.findIndex((s) => s.index === v.steps.viewed);
  const to = pos + delta;
  if (pos < 0 || to < 0 || to >= v.steps.readable) return undefined;
  return v.stepList[to].index === v.currentStep ? null : v.stepList[to].index;
}


/**
 * The command a lab's refusal names instead of the line refused ("…: use migrate {"uri": …}",
 * "…: first, on the destination, migrate-recover {"uri": …}"), with its side; null when it names
 * none, or only the line itself. QEMU's own errors are not read: only the lab's refusals.
 */
export function refusalFix(replyText: string, sent: string): HintCommand | null {
  const at = replyText.indexOf(LAB_REFUSAL);
  if (at < 0) return null;
  const fix = hintCommand(replyText.slice(at + LAB_REFUSAL.length), QMP_COMMANDS);
  return fix && fix.line !== sent.trim() ? fix : null;
}

/** A side whose migration state means quitting loses the guest. */
export interface SideAtRisk {
  side: Side;
  status: MigrationStatus;
}

/**
 * The sides in postcopy (active, paused or recovering): the guest's memory is split between
 * the hosts, so quitting, which stops both VMs, loses the guest. Ask before quitting then.
 */
export function sidesAtRisk(snapshot: Snapshot | null): SideAtRisk[] {
  if (!snapshot) return [];
  return (['source', 'destination'] as const)
    .filter((side) => isPostcopy(snapshot[side].status) || isRecovering(snapshot[side].status))
    .map((side) => ({ side, status: snapshot[side].status }));
}

export interface LabKeysOptions {
  session: LabSessionApi;
  /** The lab screen's UI state; read at key time, so a key always sees the previous key's effect. */
  ui: Store<LabUiState, LabUiAction>;
  /** The person asked to quit (and confirmed, if that was needed). */
  onQuit: () => void;
  isActive: boolean;
  /** Called after a key changed the session's state synchronously (a hint): show it now. */
  onSessionChanged?: () => void;
  /** What the screen shows now; the scroll keys move from there. */
  views: () => LabViews;
  /** `w`: start again on fresh VMs, replaying the steps before `step` (0-based). */
  onRewind?: (step: number) => void;
  /** Enter on the lab screen: true when it was taken (the end screen a finished lab holds back). */
  onEnter?: () => boolean;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function useLabKeys(opts: LabKeysOptions): void {
  const { session, ui: store, onQuit, isActive } = opts;
  const dispatch = store.dispatch;
  const nextId = useRef(1);

  /** The person did something to the run in the current step: it is not a step that ended unread. */
  /** `follow`: the steps panel goes to the current step if it shows another (a query does not). */
  const acted = (follow = true) => dispatch({ type: 'acted', step: session.getState().currentStep, follow });

  const run = (what: string, action: () => Promise<unknown>, done?: string | (() => string)) => {
    acted();
    dispatch({ type: 'notice', text: `${what}…` });
    action().then(
      () => dispatch({ type: 'notice', text: (typeof done === 'function' ? done() : done) ?? `${what}: done` }),
      (err: unknown) => dispatch({ type: 'notice', level: 'error', text: `${what} failed: ${withoutStepTitle(errorText(err), session.getState().steps)}` }),
    );
  };

  /** The notice says what was done and to which directions, in the fault model's words. */
  const applyFault = (fault: LinkFault) => {
    const what = `link ${describeFault(fault)}`;
    run(what, () => session.applyLink(fault), what);
  };

  /** A fault that would ruin a step that does not call for one asks first (see faultNeedsConfirm). */
  const faultOrAsk = (fault: LinkFault) => {
    if (faultNeedsConfirm(fault, session.getState())) dispatch({ type: 'confirm-fault', fault });
    else applyFault(fault);
  };

  const sendConsoleLine = (ui: LabUiState) => {
    const line = ui.console.input.trim();
    if (!line) return;
    const id = nextId.current++;
    const side = ui.console.side;
    // A query (query-migrate, to see where things stand) acts on nothing: a step read from
    // the list stays in view.
    acted(!/^\s*(\{\s*"execute"\s*:\s*")?query-/.test(line));
    dispatch({ type: 'console-submit', id });
    session.qmpLine(side, line).then(
      (reply) => {
        dispatch({ type: 'console-reply', id, ok: reply.ok, text: reply.text });
        // Sent to the side it is not for (the console keeps its side between steps): QEMU refused
        // it, or took a setting that does nothing there (auto-converge on the destination); turn
        // to the right side with the line, so Enter sends it there.
        const right = reply.ok ? settingLineSide(line) : commandSide(line);
        if (store.getState().console.input !== '') return;
        if (right && right !== side) {
          dispatch({ type: 'console-fill', line, side: right });
          dispatch({ type: 'notice', text: `the console turned to the ${right} with your line: Enter sends it there` });
          return;
        }
        if (reply.ok) return;
        // The lab refused it and named the command to send instead (the right address, or
        // migrate-recover first): that command, on its side, ready for Enter.
        const fix = refusalFix(reply.text, line);
        if (fix) {
          dispatch({ type: 'console-fill', line: fix.line, side: fix.side ?? side });
          dispatch({ type: 'notice', text: `Enter sends the lab's command to the ${fix.side ?? side}` });
        }
      },
      (err: unknown) => dispatch({ type: 'console-reply', id, ok: false, text: `Error: ${errorText(err)}` }),
    );
  };

  /** Reading keys: which step, which panel, how far. True when the key was one of them. */
  const navigate = (input: string, key: Key, ui: LabUiState): boolean => {
    const v = opts.views();
    if (input === '[' || input === ']') {
      const to = stepToView(v, input === '[' ? -1 : 1);
      if (to !== undefined) dispatch({ type: 'steps-view', index: to });
      return true;
    }
    if (key.tab) {
      dispatch({ type: 'focus', focus: ui.focus === 'steps' ? 'log' : 'steps' });
      return true;
    }
    if (input === 'y') {
      const step = v.stepList.find((s) => s.index === (v.steps.viewed ?? v.currentStep));
      const cmd = shownHintCommand(step);
      if (!cmd) {
        dispatch({ type: 'notice', level: 'error', text: step?.hintsShown ? 'the hints shown give no QMP command to copy' : 'no hint shown yet: h shows one, y then copies its command' });
        return true;
      }
      dispatch({ type: 'console-fill', line: cmd.line, side: cmd.side });
      dispatch({ type: 'mode', mode: 'console' });
      return true;
    }
    if (ui.focus === 'log') {
      const { events, window: w } = v.log;
      const to = scrollTarget(input, key, w);
      if (to === null) return false;
      dispatch({ type: 'log-scroll', top: to >= w.maxStart ? null : (events[to] ?? null) });
      return true;
    }
    const to = v.steps.viewed === null ? null : scrollTarget(input, key, v.steps.window);
    if (to === null || v.steps.viewed === null) return false;
    // Halfway down the current step's text, the panel stays on it when the step ends; at its top
    // or its end (read), it follows the lab to the next step.
    const pin = v.steps.viewed === v.currentStep ? to > 0 && to < v.steps.window.maxStart : undefined;
    dispatch({ type: 'steps-scroll', step: v.steps.viewed, offset: to, pin });
    return true;
  };

  const onKey = (input: string, key: Key): void => {
    const ui = store.getState();
    switch (ui.mode) {
      case 'console': {
        if (key.escape) return dispatch({ type: 'mode', mode: 'normal' });
        if (key.return) return sendConsoleLine(ui);
        if (key.tab && key.shift) return dispatch({ type: 'console-toggle-side' });
        if (key.tab) {
          // "migrate " (a whole name and a space, no arguments yet), a whole name no other
          // extends ("migrate-recover", as the console turned it), or a second Tab on a whole
          // name others extend ("migrate", its candidates showing): Tab gives this run's address.
          // A learner typed "migrate", Tab, and met only the list of migrate-* commands.
          const typed = /^\s*(\S+)( *)$/.exec(ui.console.input);
          const again = typed && ui.console.tabAgainFills && ui.console.completions.includes(typed[1]!);
          const whole = typed && (typed[2] !== '' || again || complete(typed[1]!).matches.join() === typed[1]);
          const s = session.getState();
          const args = whole ? consoleArguments(typed[1]!, ui.console.side, s.snapshot, s.addresses ?? {}) : null;
          if (args) return dispatch({ type: 'console-fill', line: `${typed![1]} ${args}` });
          // A command for the other side (migrate typed to the destination, where the console
          // opened for the step's first command): turn there with its address rather than send
          // it here for QEMU's error (found playing blackhole on QEMU 10.0).
          const name = whole ? typed![1]! : null;
          const there = name ? commandSide(name) : null;
          const theirs = name && there && there !== ui.console.side ? consoleArguments(name, there, s.snapshot, s.addresses ?? {}) : null;
          if (theirs) {
            dispatch({ type: 'console-fill', line: `${name} ${theirs}`, side: there! });
            return dispatch({ type: 'notice', text: `console → ${there}: ${name} is its command` });
          }
          // The candidates for a whole name others extend say that Tab again fills its arguments.
          const exact = typed && typed[2] === '' ? typed[1]! : null;
          const side = exact ? commandSide(exact) ?? ui.console.side : ui.console.side;
          const fills = exact !== null && consoleArguments(exact, side, s.snapshot, s.addresses ?? {}) !== null;
          return dispatch({ type: 'console-tab', fills });
        }
        if (key.upArrow) return dispatch({ type: 'console-history', delta: -1 });
        if (key.downArrow) return dispatch({ type: 'console-history', delta: 1 });
        if (key.pageUp || key.pageDown) {
          const w = opts.views().console;
          const row = key.pageUp ? Math.max(0, w.start - w.page) : w.start + w.page;
          return dispatch({ type: 'console-scroll', row: row >= w.maxStart ? null : row });
        }
        if (key.leftArrow) return dispatch({ type: 'console-cursor', to: 'left' });
        if (key.rightArrow) return dispatch({ type: 'console-cursor', to: 'right' });
        if (key.home || (key.ctrl && input === 'a')) return dispatch({ type: 'console-cursor', to: 'home' });
        if (key.end || (key.ctrl && input === 'e')) return dispatch({ type: 'console-cursor', to: 'end' });
        // Terminals send DEL (0x7f) for Backspace, which Ink names `delete`: both erase backwards.
        if (key.backspace || key.delete) return dispatch({ type: 'console-backspace' });
        if (key.ctrl && input === 'd') return dispatch({ type: 'console-delete-forward' });
        if (key.ctrl && input === 'u') return dispatch({ type: 'console-clear-line' });
        if (input === '?' && ui.console.input === '') return dispatch({ type: 'mode', mode: 'help' });
        if (key.ctrl || key.meta || !input) return;
        return dispatch({ type: 'console-type', text: input });
      }
      case 'help': {
        if (key.escape || input === '?' || input === 'q') return dispatch({ type: 'close-help' });
        const to = scrollTarget(input, key, opts.views().help);
        if (to !== null) dispatch({ type: 'help-scroll', offset: to });
        return;
      }
      case 'link':
        if (key.escape || input === 'l') return dispatch({ type: 'mode', mode: 'normal' });
        if (input === '?') return dispatch({ type: 'mode', mode: 'help' });
        if (key.upArrow || input === 'k') return dispatch({ type: 'link-move', delta: -1 });
        if (key.downArrow || input === 'j') return dispatch({ type: 'link-move', delta: 1 });
        if (key.leftArrow || (key.tab && key.shift) || input === 'D') return dispatch({ type: 'link-direction', delta: -1 });
        if (key.rightArrow || key.tab || input === 'd') return dispatch({ type: 'link-direction', delta: 1 });
        if (key.return) {
          dispatch({ type: 'mode', mode: 'normal' });
          faultOrAsk(selectedLinkFault(ui));
        }
        return;
      case 'confirm-fault':
      case 'confirm-quit': {
        if (input === 'y' || input === 'Y') {
          if (ui.mode === 'confirm-quit') return onQuit();
          dispatch({ type: 'mode', mode: 'normal' });
          return ui.pendingFault ? applyFault(ui.pendingFault) : undefined;
        }
        if (input === '?') return dispatch({ type: 'mode', mode: 'help' });
        // Reading keys (scroll, [ ], Tab) read on and leave the question up: reading the step's
        // text is how a person decides.
        if (navigate(input, key, ui)) return;
        dispatch({ type: 'mode', mode: 'normal' });
        if (key.escape || input === 'n' || input === 'N' || input === 'q') return;
        // y/N: any other key is a no, and does what it does (found playing link-cut-recovery:
        // u, : and a resume typed while a cut's question was up all vanished without a word).
        dispatch({ type: 'notice', text: ui.mode === 'confirm-quit' ? 'not quitting' : `not applied: ${describeFault(ui.pendingFault!)}` });
        return onKey(input, key);
      }
      case 'normal': {
        // The session's latest state, not the last sampled frame: validity must not lag.
        const state: SessionState = session.getState();
        const k = normalKeys(state);
        if (input === 'q') {
          if (sidesAtRisk(state.snapshot).length > 0) dispatch({ type: 'mode', mode: 'confirm-quit' });
          else onQuit();
          return;
        }
        if (input === '?') return dispatch({ type: 'mode', mode: 'help' });
        if (key.return && opts.onEnter?.()) return;
        if (input === ':') {
          const first = state.steps.find((st) => st.index === state.currentStep)?.actions.find((a) => /^(source|destination): /.test(a));
          dispatch({ type: 'console-aim', step: state.currentStep, side: first ? (first.split(':')[0] as Side) : null });
          return dispatch({ type: 'mode', mode: 'console' });
        }
        if (navigate(input, key, ui)) return;
        if (input === 'c' && k.cut) return faultOrAsk({ kind: 'cut' });
        if (input === 'b' && k.blackhole) return faultOrAsk({ kind: 'blackhole' });
        if (input === 'r' && k.retry) {
          const step = state.currentStep + 1;
          acted();
          const replay = step > 1 ? `replaying ${stepsBefore(step)} on the same VMs, then step ${step} again` : 'step 1 again on the same VMs';
          if (session.retry()) dispatch({ type: 'notice', text: `retry: ${replay}` });
          return;
        }
        if (input === 'w' && k.rewind) return opts.onRewind?.(state.currentStep);
        if (input === 'u' && k.restore) return run('restore link', () => session.restoreLink(), 'link restored');
        if (input === 'l' && k.linkMenu) return dispatch({ type: 'mode', mode: 'link' });
        if (input === 'p' && k.pause) {
          // Source first, as QEMU's docs do: the destination may not notice a dead stream at once.
          // A side already paused (or not in postcopy) is left alone: QEMU would refuse it, and
          // an error after the pause that did work reads as if nothing had.
          const snap = state.snapshot;
          let sides: Side[] = (['source', 'destination'] as const).filter((side) => !snap || pausable(snap[side].status));
          const skipped = (['source', 'destination'] as const).filter((side) => !sides.includes(side));
          const notes = skipped.map((side) => `the ${side} is ${snap![side].status}`);
          // libvirt refuses the destination's pause (its incoming job holds the domain; found playing
          // libvirt-postcopy-pause: p worked, then said "migrate-pause failed"). The source's pause
          // closes the connection and the destination follows, but over a blackhole it notices
          // nothing: p again then names its extra QMP socket (one row at 80 columns).
          if (state.addresses?.['libvirt.domain'] && sides.includes('destination')) {
            sides = sides.filter((side) => side !== 'destination');
            if (sides.length === 0) return dispatch({ type: 'notice', level: 'error', text: `libvirt: ${EXTRA_MONITOR_CONSOLE} pauses the destination` });
            notes.push('libvirt: source only');
          }
          // The source's pause closes the connection, and a destination that sees it pauses by
          // itself before its own migrate-pause arrives: QEMU then refuses that one ("only
          // supported during postcopy-active"), which said "migrate-pause failed", cut at the
          // edge, over a pause that had worked (a newcomer's walk, walk-recovery).
          let followed = false;
          return run(
            'migrate-pause',
            async () => {
              for (const side of sides) {
                try {
                  await session.qmp(side, 'migrate-pause');
                } catch (err) {
                  if (side !== 'destination' || !sides.includes('source') || !/only supported during/i.test(errorText(err))) throw err;
                  followed = true;
                }
              }
            },
            () => {
              const all = followed ? [...notes, 'the destination had paused by itself as the connection closed'] : notes;
              const sent = followed ? sides.filter((side) => side !== 'destination') : sides;
              return `migrate-pause sent to ${sent.join(' and ')}${all.length ? ` (${all.join('; ')})` : ''}`;
            },
          );
        }
        if (input === 'h' && k.hint) {
          session.nextHint();
          // The hint is the last thing in the step's text: bring it into view (render clamps).
          dispatch({ type: 'steps-view', index: null });
          dispatch({ type: 'steps-scroll', step: state.currentStep, offset: Number.MAX_SAFE_INTEGER, pin: false });
          opts.onSessionChanged?.();
          return;
        }
        if (input === 'h') {
          // Past the last hint the key did nothing at all (a newcomer's README walk): say so.
          const step = state.steps.find((st) => st.index === state.currentStep);
          if (step?.status === 'active' && step.hints.length > 0) {
            return dispatch({ type: 'notice', text: `${step.hints.length === 1 ? "the step's one hint is" : `all ${step.hints.length} hints are`} shown, under its text; s (show me) does the step` });
          }
        }
        if (input === ' ' && k.hold) {
          acted();
          session.toggleHold();
          opts.onSessionChanged?.();
          return;
        }
        if (input === 's' && k.showMe) {
          // It runs the current step's commands; read from another step (one kept on screen, or
          // gone back to with [), the panel goes to the step it ran, so what ran is in view.
          const other = ui.steps.viewing !== null && ui.steps.viewing !== state.currentStep;
          if (other) dispatch({ type: 'steps-view', index: null });
          return run('show me', () => session.showMe(), other ? `show me: ran step ${state.currentStep + 1}’s commands (the current step)` : 'show me: ran this step’s commands');
        }
        return;
      }
    }
  };
  useKeys(onKey, { isActive });
}
