import { Box, Text } from 'ink';
import { memo, useEffect, useMemo, useRef, useState } from 'react';
import type { LabSessionApi, RunSummary, SessionState } from '../../types.js';
import { EventLog, eventLines, logWindow, NewestEvent } from '../components/EventLog.js';
import { HelpOverlay, helpWindow } from '../components/HelpOverlay.js';
import { KeyBar } from '../components/KeyBar.js';
import { HoldStatus } from '../components/HoldStatus.js';
import { holdLine, isHeld, type HoldLine } from '../hold-status.js';
import { LinkMenu } from '../components/LinkMenu.js';
import { LinkPanel } from '../components/LinkPanel.js';
import { PageMap } from '../components/PageMap.js';
import { consoleWindow, QmpConsole } from '../components/QmpConsole.js';
import { QuitConfirm } from '../components/QuitConfirm.js';
import { SideCounters } from '../components/SideCounters.js';
import { Sparkline } from '../components/Sparkline.js';
import { StepsPanel, stepsView } from '../components/StepsPanel.js';
import { fmtT } from '../format.js';
import { fitKeyHints, hintWidth, keyHints, type KeyHint } from '../key-bar.js';
import { endedUnread, initialLabUiState, labUiReducer, type LabUiAction, type LabUiState } from '../lab-state.js';
import { createStore, useStore } from '../store.js';
import { calculateLayout } from '../layout.js';
import { sidesAtRisk, useLabKeys, type LabViews } from '../use-lab-keys.js';
import { useSampledStore } from '../use-session.js';
import { Advice, adviceLines } from './Advice.js';

/** How long an action's notice stays in the header. */
export const NOTICE_MS = 5000;

/**
 * The lab's title as the header has room for it beside the id and clock: cut (…) rather than
 * the clock (qemu-recover-hang's 58-character title left "qemu-recover-hang · …" at 80
 * columns), and left out when fewer than 12 cells remain.
 */
export function headerTitle(title: string, clock: string, width: number): string {
  const room = width - clock.length - 2;
  if (title.length <= room) return title;
  return room >= 12 ? `${title.slice(0, room - 1).trimEnd()}…` : '';
}

/** Whether the lab's id and clock fit in front of a notice on a header `width` wide. */
export function clockFits(notice: string, clock: string, width: number): boolean {
  return clock.length + 2 + notice.length <= width;
}

export interface LabScreenProps {
  session: LabSessionApi;
  columns: number;
  rows: number;
  /** False while something else (the too-small message) owns the screen. */
  isActive?: boolean;
  onQuit: () => void;
  onFinished: (summary: RunSummary) => void;
  /** `w`: start the lab again on fresh VMs, replaying the steps before `step` (0-based). */
  onRewind?: (step: number) => void;
  /** Sampling interval; tests shorten it. */
  sampleIntervalMs?: number;
}

/** The lab: steps, live counters, link, page map, event log or console, key bar. */
export function LabScreen(props: LabScreenProps) {
  const { session, columns, rows, onQuit, onFinished } = props;
  const { state, flush } = useSampledStore(session, props.sampleIntervalMs);
  const store = useMemo(() => createStore<LabUiState, LabUiAction>(labUiReducer, initialLabUiState()), []);
  const ui = useStore(store);
  const dispatch = store.dispatch;
  // What this render shows, for the scroll keys: they move from what the person sees. Kept as
  // this render's function, computed only when a key asks (most renders are counter samples).
  const views = useRef<(() => LabViews) | null>(null);
  useLabKeys({
    session,
    ui: store,
    onQuit,
    isActive: props.isActive ?? true,
    onSessionChanged: flush,
    views: () => (views.current ?? computeViews)(),
    onRewind: props.onRewind,
    onEnter: () => {
      if (!endHeld) return false;
      onFinished(endHeld);
      return true;
    },
  });

  // The step on screen and since when: one that ends under a reader stays (lab-state's step-ended).
  const shown = useRef<{ step: number; at: number } | null>(null);
  // The terminal's size in the last render, for what of a step's text was in view.
  const screenSize = useRef({ columns, rows });
  // Steps below this index were replayed for the person (a retry or a rewind): they end at once
  // by design and are not kept (found after a rewind in postcopy-preempt: step 1 was kept).
  const replayedBelow = useRef(0);
  if (state.replaying) replayedBelow.current = Math.max(replayedBelow.current, state.replaying.to);
  // A lab that completes under a reader (its last step unread, or another step on screen) keeps
  // its screen until Enter: the end screen would take that text away unread (throttle-vs-postcopy's
  // "Postcopy finishes" lasts 7 s at the lab's pace and explains what was just on screen).
  const [endHeld, setEndHeld] = useState<RunSummary | null>(null);
  useEffect(() => {
    const prev = shown.current;
    const now = Date.now();
    if (state.currentStep >= 0 && prev?.step !== state.currentStep) shown.current = { step: state.currentStep, at: now };
    const unread = (index: number, since: number): boolean => {
      const step = state.steps.find((st) => st.index === index);
      if (step?.status !== 'done' || index < replayedBelow.current) return false;
      // Whether its text, from the top, had lines below the panel (a reader at the top never saw them).
      // The panel as the normal screen has it: the console and a focused log shrink it, but a
      // person who opened the console had the whole panel before (found playing double-failure: a
      // step that fitted was kept because it ended while the console was open).
      const box = calculateLayout(screenSize.current.columns, screenSize.current.rows).left.steps;
      const hiddenBelow = stepsView(state.steps, state.currentStep, { viewing: index, offset: 0, offsetStep: index }, box.width, box.height).window.below > 0;
      if (!endedUnread(store.getState(), index, step.text, now - since, hiddenBelow)) return false;
      dispatch({ type: 'step-ended', step: index, text: step.text, shownMs: now - since, hiddenBelow });
      return true;
    };
    // The lab moved on past the step on screen. Steps it passed in between were never on screen
    // at all (one done at its start: recovery-file's "Bring the network back" after u pressed a
    // step early, found by a newcomer's README walk, who never saw its text): the first of them
    // stays, as one that ended under its reader.
    if (prev && state.currentStep > prev.step && !unread(prev.step, prev.at)) {
      for (let i = prev.step + 1; i < state.currentStep; i++) if (unread(i, now)) break;
    }
    if (!state.finished || endHeld) return;
    // The lab finished: the runner leaves its last step current. Held while its last step was
    // not read, or while the person reads another step (one kept on screen, or one they went
    // back to with [): found playing double-failure, where the end screen replaced step 5, kept
    // for reading, the moment the short last step completed.
    const last = shown.current;
    const reading = store.getState().steps.viewing !== null;
    if (state.finished.ok && last && (unread(last.step, last.at) || reading)) {
      setEndHeld(state.finished);
      dispatch({ type: 'notice', text: 'lab complete: Enter shows the summary' });
      return;
    }
    onFinished(state.finished);
  }, [state.currentStep, state.finished, onFinished]);

  useEffect(() => {
    if (!ui.notice) return;
    const timer = setTimeout(() => dispatch({ type: 'clear-notice' }), NOTICE_MS);
    return () => clearTimeout(timer);
  }, [ui.notice]);

  const layout = calculateLayout(columns, rows, { tall: ui.mode === 'console' || ui.focus === 'log' });
  screenSize.current = { columns, rows };
  const snap = state.snapshot;
  const overlayHeight = layout.main.height + layout.bottom.height;
  // What must be said now takes rows from the bottom panel (the log can be scrolled back later).
  const advice = adviceLines(
    state,
    ui.mode === 'confirm-fault' ? ui.pendingFault : null,
    layout.bottom.width,
    // With the console open, three: "the link is cut: u restores it; then:" and both recovery
    // commands (with two, the source's resume was lost, playing link-cut-recovery at 80×24).
    ui.mode === 'console' ? Math.min(3, layout.bottom.height - 3) : layout.bottom.height,
  );
  const bottomHeight = layout.bottom.height - advice.length;
  function computeViews(): LabViews {
    return {
      steps: stepsView(state.steps, state.currentStep, ui.steps, layout.left.steps.width, layout.left.steps.height),
      stepList: state.steps,
      currentStep: state.currentStep,
      log: {
        events: state.events,
        window: logWindow(state.events, ui.log.top, bottomHeight - 1, ui.focus === 'log' ? (e) => eventLines(e, layout.bottom.width).length : undefined),
      },
      console: consoleWindow(ui.console, layout.bottom.width, bottomHeight).window,
      help: helpWindow(layout.main.width, overlayHeight, ui.helpOffset),
    };
  }
  views.current = computeViews;

  let body;
  if (ui.mode === 'help' || ui.mode === 'link' || ui.mode === 'confirm-quit') {
    body =
      ui.mode === 'help' ? (
        <HelpOverlay width={layout.main.width} height={overlayHeight} offset={ui.helpOffset} />
      ) : ui.mode === 'link' ? (
        <LinkMenu item={ui.link.item} direction={ui.link.direction} link={snap?.link} width={layout.main.width} height={overlayHeight} />
      ) : (
        <QuitConfirm atRisk={sidesAtRisk(snap)} width={layout.main.width} height={overlayHeight} />
      );
  } else {
    body = (
      <>
        <Box height={layout.main.height} width={layout.main.width}>
          <Box flexDirection="column" width={layout.left.width}>
            <StepsPanel
              steps={state.steps}
              currentStep={state.currentStep}
              view={ui.steps}
              focused={ui.focus === 'steps'}
              width={layout.left.width}
              height={layout.left.steps.height}
            />
            {layout.left.sparkline ? (
              <Box marginTop={1}>
                <Sparkline history={state.history} width={layout.left.width} />
              </Box>
            ) : null}
          </Box>
          <Box width={1} />
          <Box flexDirection="column" width={layout.right.width}>
            <SideCounters source={snap?.source} destination={snap?.destination} width={layout.right.width} height={layout.right.counters.height} />
            {layout.right.link.height ? <LinkPanel link={snap?.link} width={layout.right.width} height={layout.right.link.height} /> : null}
            {layout.right.pageMap.height ? (
              <PageMap
                pages={snap?.destination.pages}
                ram={snap?.source.ram}
                width={layout.right.pageMap.width}
                height={layout.right.pageMap.height}
              />
            ) : null}
          </Box>
        </Box>
        <Advice lines={advice} width={layout.bottom.width} />
        {ui.mode === 'console' ? (
          <QmpConsole console={ui.console} width={layout.bottom.width} height={bottomHeight} virsh={!!state.addresses?.['libvirt.domain']} />
        ) : bottomHeight >= 2 ? (
          <EventLog events={state.events} top={ui.log.top} focused={ui.focus === 'log'} width={layout.bottom.width} height={bottomHeight} />
        ) : bottomHeight === 1 ? (
          <NewestEvent events={state.events} />
        ) : null}
      </>
    );
  }

  const clock = `${session.labId} · t=${fmtT(snap?.t ?? 0)}`;
  const title = headerTitle(session.title, clock, layout.header.width);
  return (
    <Box flexDirection="column" width={layout.main.width} height={layout.height} overflowY="hidden">
      <Box height={1} width={layout.header.width} overflowY="hidden">
        {/* A notice takes the title's place while it shows: the title is on every other frame,
            the notice (an error's reason above all) would otherwise be cut at the right edge.
            An error takes the clock's place too: its reason ends with what to do, and at 80
            columns the clock left that cut off ("press u to restore it" after a show me); so
            does any notice the clock would leave no room for ("... Enter sends it there"). */}
        <Text wrap="truncate">
          {ui.notice || !title ? null : <Text bold>{title}  </Text>}
          {ui.notice?.level === 'error' || (ui.notice && !clockFits(ui.notice.text, clock, layout.header.width)) ? null : (
            <Text dimColor>
              {clock}
              {ui.notice ? '  ' : ''}
            </Text>
          )}
          {ui.notice ? (
            <Text color={ui.notice.level === 'error' ? 'red' : 'cyan'}>
              {ui.notice.level === 'error' ? 'Error: ' : ''}
              {ui.notice.text}
            </Text>
          ) : null}
        </Text>
      </Box>
      {body}
      <StatusAndKeys {...statusAndKeys(state, ui.mode, layout.keyBar.width, ui.steps.viewing !== null && ui.steps.viewing !== state.currentStep)} />
    </Box>
  );
}

/**
 * "⏸ held" and the two spaces before the keys: no more, or at 80 columns it pushed out "s show
 * me" (the way on for someone stuck) in blackhole's "Pause both sides yourself" (an e2e run).
 */
const HELD_CELLS = '⏸ held'.length + 2;

/** What the key bar's row shows: the keys valid now and, in the room they leave, the hold status. */
interface StatusAndKeysView {
  hints: KeyHint[];
  line: HoldLine | null;
  width: number;
}

/**
 * The key bar's row, shared with the hold status (or the time left) on its left: the one line
 * that says whether the lab is waiting for you. The keys come first — the status gets only the
 * room they leave, so the key a step asks for (c, b, p) is never pushed out by it. Except
 * "⏸ held" while a hold is on: with a full key bar it was gone, and a lab text that says "the
 * key bar says held" was wrong (a newcomer's walk, walk-recovery; played in blackhole).
 */
function statusAndKeys(state: SessionState, mode: LabUiState['mode'], width: number, viewingOther: boolean): StatusAndKeysView {
  const hints = keyHints(mode, state, viewingOther);
  const held = mode === 'normal' && isHeld(state);
  const shown = fitKeyHints(hints, held ? width - HELD_CELLS : width);
  const keysWidth = shown.reduce((w, h, i) => w + hintWidth(h) + (i > 0 ? 2 : 0), 0);
  const room = width - keysWidth - 2;
  const line = mode === 'normal' && room >= 6 ? holdLine(state, room) : null;
  return { hints, line: line && line.text.length <= room ? line : null, width };
}

/** Computed from the whole state on every sample; the row re-renders only when its words change. */
function sameStatusAndKeys(a: StatusAndKeysView, b: StatusAndKeysView): boolean {
  return (
    a.width === b.width &&
    a.line?.text === b.line?.text &&
    a.line?.tone === b.line?.tone &&
    a.hints.length === b.hints.length &&
    a.hints.every((h, i) => h.key === b.hints[i].key && h.label === b.hints[i].label && h.priority === b.hints[i].priority)
  );
}

const StatusAndKeys = memo(function StatusAndKeys(props: StatusAndKeysView) {
  const { hints, line, width } = props;
  if (!line) return <KeyBar hints={hints} width={width} />;
  return (
    <Box width={width}>
      <Box width={line.text.length}>
        <HoldStatus line={line} />
      </Box>
      <Text>{'  '}</Text>
      <KeyBar hints={hints} width={width - line.text.length - 2} />
    </Box>
  );
}, sameStatusAndKeys);
