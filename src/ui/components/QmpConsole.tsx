import { Box, Text } from 'ink';
import type { ConsoleState } from '../lab-state.js';
import { wrapText, moreAbove, moreBelow, scrollWindow, tailWindow, type ScrollWindow } from '../scroll.js';
import { Panel } from './Panel.js';

export interface ConsoleLine {
  text: string;
  color?: string;
  dim?: boolean;
}

/** The tag before every reply line: which VM said it. */
export const replyTag = (side: string): string => `${side} › `;

/**
 * The lines the console's scrollback shows in `width` columns: each command as typed, then its
 * reply as QEMU phrased it, every reply line tagged with the side that answered, wrapped at word
 * boundaries (not cut) so a long address or JSON value can be read to its end.
 */
export function consoleLines(c: ConsoleState, width: number): ConsoleLine[] {
  const lines: ConsoleLine[] = [];
  for (const e of c.output) {
    for (const l of wrapText(`${e.side}> ${e.line}`, width)) lines.push({ text: l, dim: true });
    const tag = replyTag(e.side);
    if (e.ok === undefined) {
      lines.push({ text: `${tag}…`, dim: true });
      continue;
    }
    // Errors say so in words too: under NO_COLOR the red is gone.
    const text = !e.ok && !/^Error\b/.test(e.text ?? '') ? `Error: ${e.text ?? ''}` : (e.text ?? '');
    for (const l of wrapText(text, Math.max(1, width - tag.length))) lines.push({ text: tag + l, color: e.ok ? undefined : 'red' });
  }
  if (c.completions.length) {
    const again = c.tabAgainFills ? [`(Tab again: ${c.input.trim()}'s arguments)`] : [];
    lines.push(...wrapText([...c.completions, ...again].join('  '), width).map((text) => ({ text, color: 'cyan' })));
  }
  return lines;
}

/** The reply pane's window: the newest lines unless the person scrolled back. */
export function consoleWindow(c: ConsoleState, width: number, height: number): { lines: ConsoleLine[]; window: ScrollWindow } {
  const lines = consoleLines(c, width);
  const rows = Math.max(0, height - 2);
  return { lines, window: c.scroll === null ? tailWindow(lines.length, rows, 0) : scrollWindow(lines.length, rows, c.scroll) };
}

/** The part of the input line that fits in `room` columns, keeping the cursor in view. */
export function inputWindow(input: string, cursor: number, room: number): { before: string; at: string; after: string } {
  const r = Math.max(1, room);
  // One column for the cursor when it sits past the last character.
  const start = Math.max(0, Math.min(cursor - Math.floor(r / 2), input.length + 1 - r));
  const shown = input.slice(start, start + r);
  const c = cursor - start;
  return { before: shown.slice(0, c), at: shown[c] ?? ' ', after: shown.slice(c + 1) };
}

/**
 * The QMP console: a command line aimed at one side, with the replies above it. It takes the
 * event log's place (grown, see layout.ts) while open.
 */
export function QmpConsole(props: { console: ConsoleState; width: number; height: number; virsh?: boolean }) {
  const { console: c, width, height } = props;
  const { lines, window: w } = consoleWindow(c, width, height);
  const prompt = `${c.side}> `;
  const field = inputWindow(c.input, c.cursor, width - prompt.length);
  return (
    <Panel
      // libvirt's console takes virsh lines first: "QMP console" there sent a newcomer to QMP.
      title={props.virsh ? 'Console (virsh, QMP)' : 'QMP console'}
      extra={
        <Text wrap="truncate">
          <Text dimColor>to </Text>
          <Text color="cyan" bold>
            {c.side}
          </Text>
          <Text dimColor> (Shift-Tab switches)</Text>
        </Text>
      }
      width={width}
      height={height}
    >
      <Box flexDirection="column" height={Math.max(0, height - 2)} overflowY="hidden">
        {w.above > 0 ? <Text color="cyan" wrap="truncate">{moreAbove(w.above)} · PgUp</Text> : null}
        {lines.slice(w.start, w.end).map((l, i) => (
          <Text key={w.start + i} wrap="truncate" color={l.color} dimColor={l.dim}>
            {l.text || ' '}
          </Text>
        ))}
        {w.below > 0 ? <Text color="cyan" wrap="truncate">{moreBelow(w.below)} · PgDn</Text> : null}
      </Box>
      <Text wrap="truncate">
        <Text color="cyan" bold>
          {prompt}
        </Text>
        {field.before}
        <Text inverse>{field.at}</Text>
        {field.after}
      </Text>
    </Panel>
  );
}
