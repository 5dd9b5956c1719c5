import { Text } from 'ink';
import { memo } from 'react';
import type { StepView } from '../../types.js';
import { wrapWords } from '../format.js';
import type { StepsViewState } from '../lab-state.js';
import { moreAbove, moreBelow, scrollWindow, type ScrollWindow } from '../scroll.js';
import { Panel } from './Panel.js';
import { GlyphRow } from './GlyphRow.js';

const MARK: Record<StepView['status'], { glyph: string; color?: string }> = {
  done: { glyph: '✓', color: 'green' },
  active: { glyph: '▶', color: 'cyan' },
  pending: { glyph: ' ' },
  failed: { glyph: '✗', color: 'red' },
};

const STATUS_WORD: Record<StepView['status'], string> = { done: 'done', active: 'current', pending: 'not yet', failed: 'failed' };

const FOLLOW_CURRENT: StepsViewState = { viewing: null, offset: 0, offsetStep: null };

/** The list of step titles keeps at least this many rows, however long the text. */
export const STEP_LIST_MIN_ROWS = 3;

export interface StepsView {
  /** The panel's title: the current step's position, as it always was ("Steps 2/7"). */
  title: string;
  /** The window of step titles shown, around the step being read. */
  list: { step: StepView; number: number; viewed: boolean }[];
  /** "step 3 of 7 (done) — [ prev  ] next"; null when there is no step to read. */
  nav: string | null;
  /** Exactly the rows of text shown: the step's text, its hints, and "more" markers. */
  body: { text: string; kind: 'title' | 'text' | 'hint' | 'more' }[];
  /** The step being read (StepView.index), or null. */
  viewed: number | null;
  /** The window over the step's whole text: the scroll keys move it. */
  window: ScrollWindow;
  /** How many steps may be read: the current one and those before it (all, once done). */
  readable: number;
  allDone: boolean;
}

/**
 * What the steps panel shows in `width` x `height` cells (the panel's title row included).
 * The text of the step being read is never cut silently: what does not fit scrolls, with a
 * marker saying how much lies above and below. Nothing may overflow: Ink shrinks the rows of a
 * box whose content is taller than the box, which pushed the panel's title out.
 */
export function stepsView(steps: readonly StepView[], currentStep: number, view: StepsViewState, width: number, height: number): StepsView {
  const currentPos = steps.findIndex((s) => s.index === currentStep);
  const allDone = currentPos < 0 && steps.length > 0 && steps.every((s) => s.status === 'done');
  const readable = currentPos >= 0 ? currentPos + 1 : allDone ? steps.length : 0;
  const position = currentPos >= 0 ? currentPos + 1 : steps.filter((s) => s.status === 'done').length;
  const title = `Steps ${position}/${steps.length}`;
  const viewingPos = view.viewing === null ? -1 : steps.findIndex((s) => s.index === view.viewing);
  const pos = viewingPos >= 0 && viewingPos < readable ? viewingPos : currentPos;
  const rows = Math.max(0, height - 1);
  const empty = scrollWindow(0, 0, 0);

  if (pos < 0) {
    const count = Math.min(steps.length, Math.max(0, rows - (allDone ? 2 : 0)));
    const list = steps.slice(0, count).map((step, i) => ({ step, number: i + 1, viewed: false }));
    return { title, list, nav: null, body: [], viewed: null, window: empty, readable, allDone };
  }

  const step = steps[pos];
  const text = wrapWords(step.text, width);
  const hints = step.hints
    .slice(0, step.hintsShown)
    .flatMap((h, i) => wrapWords(`Hint ${i + 1}/${step.hints.length}: ${h}`, width))
    .map((t) => ({ text: t, kind: 'hint' as const }));
  // A title the list cuts ("Get the destination listen…" at 80 columns) heads the text whole.
  const listed = `✓ ${pos + 1}. ${step.title}`;
  const whole = listed.length > width ? wrapWords(step.title, width).map((t) => ({ text: t, kind: 'title' as const })) : [];
  const lines = [...whole, ...text.map((t) => ({ text: t, kind: 'text' as const })), ...(hints.length ? [{ text: '', kind: 'text' as const }, ...hints] : [])];

  // Rows: the list of titles, the navigation line, then the text.
  const rest = Math.max(0, rows - 1);
  const listRows = Math.max(Math.min(steps.length, STEP_LIST_MIN_ROWS, rest), Math.min(steps.length, rest - lines.length));
  const bodyRows = rest - listRows;
  const first = Math.max(0, Math.min(pos - Math.floor((listRows - 1) / 2), steps.length - listRows));
  const list = steps.slice(first, first + listRows).map((s, j) => ({ step: s, number: first + j + 1, viewed: first + j === pos }));

  const offset = view.offsetStep === step.index ? view.offset : 0;
  const window = scrollWindow(lines.length, bodyRows, offset);
  const body: StepsView['body'] = [];
  // The marker names its key when it fits: the key bar may have no room for it at 80 columns.
  const withKey = (text: string, key: string) => (text.length + key.length + 3 <= width ? `${text} · ${key}` : text);
  if (window.above > 0) body.push({ text: withKey(moreAbove(window.above), 'PgUp'), kind: 'more' });
  body.push(...lines.slice(window.start, window.end));
  if (window.below > 0) body.push({ text: withKey(moreBelow(window.below), 'PgDn'), kind: 'more' });

  return { title, list, nav: navLine(pos, steps.length, step.status, readable, width), body, viewed: step.index, window, readable, allDone };
}

/** "step 3 of 7 (done) — [ prev  ] next", shortened to what fits. */
function navLine(pos: number, total: number, status: StepView['status'], readable: number, width: number): string {
  const head = `step ${pos + 1} of ${total} (${STATUS_WORD[status]})`;
  const prev = pos > 0;
  const next = pos < readable - 1;
  if (!prev && !next) return head;
  const keys = [prev ? '[ prev' : '', next ? '] next' : ''].filter(Boolean).join('  ');
  // "] next" matters most where a reader kept a step that ended under them: shorten the head first.
  for (const h of [head, `step ${pos + 1}/${total} (${STATUS_WORD[status]})`]) if (`${h} — ${keys}`.length <= width) return `${h} — ${keys}`;
  return `${head} ${prev ? '[' : ''}${prev && next ? ' ' : ''}${next ? ']' : ''}`;
}

/** The lab's steps: a window of their titles, the step being read, and its text and hints. */
function StepsPanelView(props: {
  steps: StepView[];
  currentStep: number;
  /** Which step is read and how far scrolled; default: the current step, from its top. */
  view?: StepsViewState;
  width: number;
  height: number;
  /** The scroll keys move this panel now. */
  focused?: boolean;
}) {
  const { steps, currentStep, width, height } = props;
  const v = stepsView(steps, currentStep, props.view ?? FOLLOW_CURRENT, width, height);
  return (
    <Panel title={v.title} width={width} height={height}>
      {v.list.map(({ step: s, number, viewed }) => {
        const mark = MARK[s.status];
        const isCurrent = s.index === currentStep;
        return (
          <GlyphRow key={s.index} width={width} bold={isCurrent || viewed} dimColor={s.status === 'done' && !viewed}>
            <Text color={mark.color}>{mark.glyph}</Text> {number}. {s.title}
          </GlyphRow>
        );
      })}
      {v.nav ? (
        <GlyphRow width={width} color="cyan" bold={props.focused}>
          {v.nav}
        </GlyphRow>
      ) : null}
      {v.body.map((l, i) => (
        <Text key={i} wrap="truncate" bold={l.kind === 'title'} color={l.kind === 'hint' ? 'yellow' : l.kind === 'more' ? 'cyan' : undefined}>
          {l.text || ' '}
        </Text>
      ))}
      {v.allDone ? (
        <Text color="green" wrap="truncate">
          {'\n'}All steps done.
        </Text>
      ) : null}
    </Panel>
  );
}

/** Its props are slices the session replaces only when they change: a shallow compare is exact. */
export const StepsPanel = memo(StepsPanelView);
