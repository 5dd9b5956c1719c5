import { Box, Text } from 'ink';
import type { RunSummary } from '../../types.js';
import { stepsBefore } from '../../lab/reach.js';
import { fmtDuration, wrapWords } from '../format.js';
import { summaryRows } from '../../lab/summary.js';

/**
 * The end screen: what the run did, whether every page arrived intact, and the lab's closing
 * lesson (its `summary-text`), completed or failed: the lesson is what the lab was for. It stays
 * until the person presses a key.
 */
export function Summary(props: {
  summary: RunSummary;
  title: string;
  lesson?: string;
  hasNext: boolean;
  /** A failed run: `r` retries this step (0-based) on fresh VMs, the earlier steps replayed. */
  retryStep?: number | null;
  notice?: string;
  /** A lab with `compare:`: its comparison's progress, then its table (src/compare/table.ts). */
  comparison?: string;
  width: number;
}) {
  const { summary: s, title, lesson, hasNext, notice, width } = props;
  // The same rows, labels and units as the drill's summary line (src/lab/summary.ts).
  const retry = props.retryStep ?? null;
  const rows: [string, string, string?][] = [
    ['time', fmtDuration(s.durationMs)],
    ...summaryRows(s).map((r): [string, string] => [r.label, r.value]),
    ['all pages verified', s.verified ? 'yes' : s.expectedFailure ? 'no, as the lab expects' : 'NO', s.verified ? 'green' : s.expectedFailure ? 'yellow' : 'red'],
  ];
  // The values in one column, two spaces after the longest label ("of them from a recovery file").
  const labelWidth = Math.max(...rows.map(([label]) => label.length)) + 2;
  return (
    <Box flexDirection="column" width={width} paddingX={1}>
      <Text bold color={s.ok ? 'green' : s.knownBug ? 'yellow' : 'red'}>
        {s.ok ? '✓ Lab complete' : s.knownBug ? '⚠ Bug reproduced' : '✗ Lab failed'}: {title}
      </Text>
      {s.expectedFailure ? (
        <Text color="green" wrap="wrap">
          ended as the lab expects ({s.expectedFailure.reason}): {s.expectedFailure.message}
        </Text>
      ) : null}
      <Box flexDirection="column" marginTop={1}>
        {rows.map(([label, value, color]) => (
          <Text key={label}>
            <Text dimColor>{label.padEnd(labelWidth)}</Text>
            <Text color={color} bold={!!color}>
              {value}
            </Text>
          </Text>
        ))}
      </Box>
      {s.failure ? (
        <Box flexDirection="column" marginTop={1}>
          {/* A bug the lab declares for this QEMU: its message ends saying so (verdict.ts). */}
          <Text color={s.knownBug ? 'yellow' : 'red'} wrap="wrap">
            {s.failure.step !== undefined ? `Step ${s.failure.step}${s.failure.stepTitle ? ` (${s.failure.stepTitle})` : ''}: ` : ''}
            {s.failure.message}
          </Text>
          {s.failure.condition ? <Text dimColor>condition: {s.failure.condition}</Text> : null}
          {s.failure.seen ? <Text dimColor wrap="wrap">seen: {JSON.stringify(s.failure.seen)}</Text> : null}
        </Box>
      ) : null}
      {lesson?.trim() ? (
        <Box flexDirection="column" marginTop={1} width={width - 2}>
          {/* The lesson tells of the run the lab intends: after another ending it must not read as this run's account (found: recovery-file-window, cut before the switchover reached the destination). */}
          {!s.ok && !s.knownBug ? <Text dimColor>What the lab shows when it runs to its end:</Text> : null}
          {wrapWords(lesson, width - 2).map((l, i) => (
            <Text key={i}>{l || ' '}</Text>
          ))}
        </Box>
      ) : null}
      {props.comparison ? (
        <Box flexDirection="column" marginTop={1}>
          {props.comparison.split('\n').map((l, i) => (
            <Text key={i} wrap="truncate-end">
              {l || ' '}
            </Text>
          ))}
        </Box>
      ) : null}
      {notice ? (
        <Box marginTop={1}>
          <Text color="yellow">{notice}</Text>
        </Box>
      ) : null}
      <Box marginTop={1}>
        <Text>
          {retry !== null ? (
            <>
              <Text bold color="cyan">
                r
              </Text>{' '}
              {retry === 0 ? 'start the lab again' : `retry step ${retry + 1} (fresh VMs, ${stepsBefore(retry + 1)} replayed)`}
              {'  '}
            </>
          ) : null}
          <Text bold color="cyan">
            Enter
          </Text>{' '}
          labs{'  '}
          {hasNext ? (
            <>
              <Text bold color="cyan">
                n
              </Text>{' '}
              next lab{'  '}
            </>
          ) : null}
          <Text bold color="cyan">
            q
          </Text>{' '}
          quit
        </Text>
      </Box>
    </Box>
  );
}
