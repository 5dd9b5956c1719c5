import { Box, Text } from 'ink';
import { fit, fmtDuration } from '../format.js';
import type { Progress } from '../progress.js';

export interface LabEntry {
  id: string;
  title: string;
  summary: string;
}

/** What the picker asks before resetting progress: one lab's, or all of it. */
export type ResetConfirm = { scope: 'one'; labId: string } | { scope: 'all' } | null;

/** Every lab with its summary and a ✓ (and best time) for the ones completed. */
export function LabPicker(props: {
  labs: LabEntry[];
  progress: Progress;
  selected: number;
  confirm: ResetConfirm;
  notice?: string;
  busy?: string;
  width: number;
  height: number;
}) {
  const { labs, progress, selected, confirm, notice, busy, width, height } = props;
  const done = labs.filter((l) => progress.completed[l.id]).length;
  const current = labs[selected];
  // Titles get the width the line has: the marks before, "best 12m 34s" after, the padding.
  const titleW = Math.max(10, Math.min(Math.max(...labs.map((l) => l.title.length), 10), width - 2 - 4 - 1 - 14));
  // Room for the list: the header, the selected lab's summary and the key line take ~8 rows.
  const listRows = Math.max(3, height - 9);
  const first = Math.max(0, Math.min(selected - Math.floor(listRows / 2), labs.length - listRows));
  const visible = labs.slice(first, first + listRows);
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden" paddingX={1}>
      <Text bold>
        postcopy-lab <Text dimColor>· {done}/{labs.length} labs completed</Text>
      </Text>
      <Box flexDirection="column" marginTop={1}>
        {labs.length === 0 ? <Text color="yellow">No labs found.</Text> : null}
        {visible.map((l) => {
          const i = labs.indexOf(l);
          const p = progress.completed[l.id];
          const isSel = i === selected;
          return (
            <Text key={l.id} wrap="truncate" inverse={isSel}>
              {isSel ? '›' : ' '} <Text color="green">{p ? '✓' : ' '}</Text> {fit(l.title, titleW)}{' '}
              <Text dimColor={!isSel}>{p ? `best ${fmtDuration(p.bestMs)}` : ''}</Text>
            </Text>
          );
        })}
      </Box>
      {current ? (
        <Box marginTop={1} flexDirection="column">
          <Text dimColor>{current.id}</Text>
          <Text wrap="wrap">{current.summary}</Text>
        </Box>
      ) : null}
      {confirm ? (
        <Box marginTop={1}>
          <Text color="yellow" bold>
            {confirm.scope === 'all'
              ? 'Reset progress for every lab?'
              : `Reset progress for ${labs.find((l) => l.id === confirm.labId)?.title ?? confirm.labId}?`}{' '}
            y/n
          </Text>
        </Box>
      ) : null}
      {busy ? (
        <Box marginTop={1}>
          <Text color="cyan">{busy}</Text>
        </Box>
      ) : null}
      {notice ? (
        <Box marginTop={1}>
          <Text color="yellow" wrap="wrap">
            {notice}
          </Text>
        </Box>
      ) : null}
      <Box marginTop={1}>
        <Text wrap="truncate">
          <Text bold color="cyan">
            ↑↓
          </Text>{' '}
          choose{'  '}
          <Text bold color="cyan">
            Enter
          </Text>{' '}
          open{'  '}
          <Text bold color="cyan">
            r
          </Text>{' '}
          reset lab{'  '}
          <Text bold color="cyan">
            R
          </Text>{' '}
          reset all{'  '}
          <Text bold color="cyan">
            q
          </Text>{' '}
          quit
        </Text>
      </Box>
    </Box>
  );
}
