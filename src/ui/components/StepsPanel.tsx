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

/** The lab's steps: a numbered list, then the current step's text and the hints asked for. */
export function StepsPanel(props: { steps: StepView[]; currentStep: number; width: number; height: number }) {
  const { steps, currentStep, width, height } = props;
  const current = steps.find((s) => s.index === currentStep);
  const position = current ? steps.indexOf(current) + 1 : steps.filter((s) => s.status === 'done').length;
  return (
    <Panel title={`Steps ${position}/${steps.length}`} width={width} height={height}>
      {steps.map((s, i) => {
        const mark = MARK[s.status];
        const isCurrent = s.index === currentStep;
        return (
          <Text key={s.index} wrap="truncate" bold={isCurrent} dimColor={s.status === 'done' && !isCurrent}>
            <Text color={mark.color}>{mark.glyph}</Text> {i + 1}. {s.title}
          </Text>
        );
      })}
      {current ? (
        <Box flexDirection="column" marginTop={1} width={width}>
          {wrapWords(current.text, width).map((l, i) => (
            <Text key={`t${i}`}>{l}</Text>
          ))}
          {current.hints.slice(0, current.hintsShown).flatMap((h, i) =>
            wrapWords(`Hint ${i + 1}/${current.hints.length}: ${h}`, width).map((l, j) => (
              <Text key={`h${i}.${j}`} color="yellow">
                {l}
              </Text>
            )),
          )}
        </Box>
      ) : steps.length > 0 && steps.every((s) => s.status === 'done') ? (
        <Box marginTop={1}>
          <Text color="green">All steps done.</Text>
        </Box>
      ) : null}
    </Panel>
  );
}
