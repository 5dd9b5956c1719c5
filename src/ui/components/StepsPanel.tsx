import { Box, Text } from 'ink';
import type { StepView } from '../../types.js';
import { wrapWords } from '../format.js';
import { Panel } from './Panel.js';

const MARK: Record<StepView['status'], { glyph: string; color?: string }> = {
  done: { glyph: '✓', color: 'green' },
  active: { glyph: '▶', color: 'cyan' },
  pending: { glyph: ' ' },
  failed: { glyph: '✗', color: 'red' },
};

/**
 * What fits in `rows` lines, in order of importance: the current step's line, the hints the
 * person asked for (newest kept), the step's text (cut with '…'), then the other steps' lines
 * (a window around the current one). Nothing may overflow: Ink shrinks the rows of a box whose
 * content is taller than the box, which pushed the panel's title out and overwrote lines.
 */
export function fitSteps(
  steps: readonly StepView[],
  currentIndex: number,
  text: string[],
  hints: string[],
  rows: number,
): { first: number; count: number; text: string[]; hints: string[] } {
  let budget = Math.max(0, rows);
  if (currentIndex < 0) return { first: 0, count: Math.min(steps.length, budget), text: [], hints: [] };
  budget = Math.max(0, budget - 1); // the current step's line
  // Hints: the blank line above them, then the newest that fit.
  const h = hints.length ? Math.min(hints.length, Math.max(0, budget - 1)) : 0;
  const shownHints = h ? hints.slice(hints.length - h) : [];
  if (h) budget -= h + 1;
  // Text: one more blank line (above the text, or between it and the hints).
  const t = Math.min(text.length, Math.max(0, budget - 1));
  const shownText = t < text.length && t > 0 ? [...text.slice(0, t - 1), ellipsis(text[t - 1])] : text.slice(0, t);
  if (t) budget -= t + 1;
  const count = 1 + Math.min(budget, steps.length - 1);
  const first = Math.max(0, Math.min(currentIndex - Math.floor((count - 1) / 2), steps.length - count));
  return { first, count, text: shownText, hints: shownHints };
}

function ellipsis(line: string): string {
  return `${line.replace(/\s*\S*$/, '') || line.slice(0, -1)}…`;
}

/** The lab's steps: a numbered list, then the current step's text and the hints asked for. */
export function StepsPanel(props: { steps: StepView[]; currentStep: number; width: number; height: number }) {
  const { steps, currentStep, width, height } = props;
  const current = steps.find((s) => s.index === currentStep);
  const currentPos = current ? steps.indexOf(current) : -1;
  const position = current ? currentPos + 1 : steps.filter((s) => s.status === 'done').length;
  const allDone = !current && steps.length > 0 && steps.every((s) => s.status === 'done');
  const text = current ? wrapWords(current.text, width) : [];
  const hints = current
    ? current.hints.slice(0, current.hintsShown).flatMap((h, i) => wrapWords(`Hint ${i + 1}/${current.hints.length}: ${h}`, width))
    : [];
  const fit = fitSteps(steps, currentPos, text, hints, height - 1 - (allDone ? 2 : 0));
  return (
    <Panel title={`Steps ${position}/${steps.length}`} width={width} height={height}>
      {steps.slice(fit.first, fit.first + fit.count).map((s, j) => {
        const i = fit.first + j;
        const mark = MARK[s.status];
        const isCurrent = s.index === currentStep;
        return (
          <Text key={s.index} wrap="truncate" bold={isCurrent} dimColor={s.status === 'done' && !isCurrent}>
            <Text color={mark.color}>{mark.glyph}</Text> {i + 1}. {s.title}
          </Text>
        );
      })}
      {current && (fit.text.length || fit.hints.length) ? (
        <Box flexDirection="column" marginTop={1} width={width} flexShrink={0}>
          {fit.text.map((l, i) => (
            <Text key={`t${i}`} wrap="truncate">
              {l}
            </Text>
          ))}
          {fit.hints.length && fit.text.length ? <Text> </Text> : null}
          {fit.hints.map((l, i) => (
            <Text key={`h${i}`} color="yellow" wrap="truncate">
              {l}
            </Text>
          ))}
        </Box>
      ) : allDone ? (
        <Box marginTop={1}>
          <Text color="green">All steps done.</Text>
        </Box>
      ) : null}
    </Panel>
  );
}
