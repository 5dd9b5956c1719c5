import { Box, Text } from 'ink';
import { fit, fmtDuration, wrapWords } from '../format.js';
import type { Progress } from '../progress.js';

export interface LabEntry {
  id: string;
  title: string;
  summary: string;
  /**
   * Set when the backend this TUI runs cannot run the lab (Enter refuses it): a short tag for
   * the row ("[libvirt only]", at most TRAIL_WIDTH) and the command that starts it.
   */
  elsewhere?: { tag: string; command: string };
}

/** The row's last column: "best 12m 34s", or a lab's "[libvirt only]". */
export const TRAIL_WIDTH = 14;

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
  const titleW = Math.max(10, Math.min(Math.max(...labs.map((l) => l.title.length), 10), width - 2 - 4 - 1 - TRAIL_WIDTH));
  // The text under the list, wrapped here so the list gets exactly the rows left: a list that
  // does not fit is shrunk by the layout, which drops rows (the selected one too).
  const textW = Math.max(10, width - 2);
  const summary = current ? wrapWords(current.summary, textW) : [];
  // A title the row cuts is given whole under the list (at 80 columns several are).
  const wholeTitle = current && current.title.length > titleW ? wrapWords(current.title, textW) : [];
  const how = current?.elsewhere ? [...wrapWords(`This backend cannot run it (Enter refuses it). Start it with:`, textW), ...wrapWords(current.elsewhere.command, textW)] : [];
  const noticeLines = notice ? wrapWords(notice, textW) : [];
  const below =
    (current ? 2 + wholeTitle.length + summary.length + how.length : 0) + (confirm ? 2 : 0) + (busy ? 2 : 0) + (notice ? 1 + noticeLines.length : 0) + 2;
  // The header line and the margin above the list come first.
  const listRows = Math.max(3, height - 2 - below);
  const first = Math.max(0, Math.min(selected - Math.floor(listRows / 2), labs.length - listRows));
  const visible = labs.slice(first, first + listRows);
  // Rows the list has no room for, said in the header: 15 of 17 showed with no word of the rest.
  const above = first;
  const after = Math.max(0, labs.length - first - visible.length);
  const more = [above ? `↑ ${above} more` : '', after ? `↓ ${after} more` : ''].filter(Boolean).join(' ');
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden" paddingX={1}>
      <Text bold>
        postcopy-lab <Text dimColor>· {done}/{labs.length} labs completed{more ? ` · ${more}` : ''}</Text>
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
              {/* A lab this backend cannot run says so here (its ✓ still shows a completion). */}
              <Text dimColor={!isSel}>{l.elsewhere ? l.elsewhere.tag.slice(0, TRAIL_WIDTH) : p ? `best ${fmtDuration(p.bestMs)}` : ''}</Text>
            </Text>
          );
        })}
      </Box>
      {current ? (
        <Box marginTop={1} flexDirection="column">
          {wholeTitle.map((line, i) => (
            <Text key={`t${i}`} bold>
              {line}
            </Text>
          ))}
          <Text dimColor>{current.id}</Text>
          {summary.map((line, i) => (
            <Text key={i}>{line}</Text>
          ))}
          {how.map((line, i) => (
            <Text key={`how${i}`} color="yellow">
              {line}
            </Text>
          ))}
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
          <Box flexDirection="column">
            {noticeLines.map((line, i) => (
              <Text key={i} color="yellow">
                {line}
              </Text>
            ))}
          </Box>
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
