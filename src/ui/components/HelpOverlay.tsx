import { Text } from 'ink';
import { wrapWords } from '../format.js';
import { moreAbove, moreBelow, scrollWindow } from '../scroll.js';
import { Panel } from './Panel.js';

export const HELP_KEYS: [string, string][] = [
  ['c', 'cut the link both ways (connections reset: both sides notice at once)'],
  ['b', 'blackhole the link both ways (packets vanish: nothing fails, postcopy stalls until you pause it; TCP gives up only after minutes)'],
  ['l', 'link menu: any fault (↑↓), both ways or one (d), Enter applies'],
  ['u', 'restore the link: both directions up, no latency, no cap'],
  ['p', 'migrate-pause on the source, then the destination (postcopy only; a side already paused is left alone; on libvirt the source alone)'],
  ['h', 'show the next hint for this step'],
  ['s', 'show me: run this step’s commands for you'],
  ['Space', 'let the migration run at its own pace, or hold it for you again (when the step holds it)'],
  ['r', 'when the step can no longer happen: replay the earlier steps on the same VMs (a precopy failure)'],
  ['w', 'when the step can no longer happen: rewind (fresh VMs, same seed, earlier steps replayed)'],
  [':', 'QMP console: type a command to the source or destination'],
  ['y', 'put the command of the last hint shown into the console, aimed at the side it names'],
  ['[ ]', 're-read the step before / come back towards the current step'],
  ['PgUp PgDn', 'scroll the step text (or the event log: Tab); ↑↓ or k/j a line, Home/End. A step that ends while you read it (halfway down its text, or sooner than it could be read) stays on screen until ] (or until you act on the current step: a key, a command)'],
  ['Tab', 'the event log, taller, each event whole (the scroll keys move it); Tab again: the steps'],
  ['?', 'this help (in the console: on an empty line)'],
  // As README's key table says it; sidesAtRisk (src/ui/use-lab-keys.ts) decides.
  ['q', 'quit (asks first during postcopy, paused or recovering: quitting then loses the guest)'],
  ['Ctrl-C', 'quit now: stops both VMs'],
];

export const CONSOLE_HELP: [string, string][] = [
  ['Tab', 'complete a command name; after migrate, migrate-incoming or migrate-recover and a space: this run\'s address'],
  ['S-Tab', 'switch target: source or destination (each keeps its own history)'],
  ['↑ ↓', 'history: this side\'s lines, then the other side\'s'],
  ['← →', 'move the cursor; Home/End or Ctrl-A/Ctrl-E: start/end; Ctrl-D deletes under it'],
  ['PgUp PgDn', 'scroll the replies (each line says which side answered)'],
  ['Enter', 'send, e.g. migrate-recover {"uri": "tcp:127.0.0.1:4445"}'],
  ['Ctrl-U', 'clear the line'],
  ['Esc', 'close the console'],
];

const NOTE = 'A step completes by itself when its condition becomes true; there is no key to skip one. Esc or ? closes this help.';
const KEY_WIDTH = 10;

/**
 * The help as rows of `width` columns: each key, then what it does, wrapped under itself so
 * no description is cut.
 */
export function helpLines(width: number): { key: string; text: string; heading?: boolean }[] {
  const room = Math.max(10, width - KEY_WIDTH);
  const rows = (list: [string, string][]) =>
    list.flatMap(([k, d]) => wrapWords(d, room).map((text, i) => ({ key: i === 0 ? k : '', text })));
  return [
    ...rows(HELP_KEYS),
    { key: '', text: 'Console', heading: true },
    ...rows(CONSOLE_HELP),
    { key: '', text: '' },
    ...wrapWords(NOTE, room).map((text) => ({ key: '', text })),
  ];
}

/** Every key, what it does, and how steps advance; scrolls when the terminal is short. */
export function HelpOverlay(props: { width: number; height: number; offset?: number }) {
  const lines = helpLines(props.width);
  const w = scrollWindow(lines.length, Math.max(0, props.height - 1), props.offset ?? 0);
  return (
    <Panel title="Help" width={props.width} height={props.height}>
      {w.above > 0 ? <Text color="cyan">{moreAbove(w.above)} · PgUp</Text> : null}
      {lines.slice(w.start, w.end).map((l, i) =>
        l.heading ? (
          <Text key={w.start + i} bold>
            {l.text}
          </Text>
        ) : (
          <Text key={w.start + i} wrap="truncate">
            <Text bold color="cyan">
              {l.key.padEnd(l.key || l.text ? KEY_WIDTH : 0)}
            </Text>
            {l.text || ' '}
          </Text>
        ),
      )}
      {w.below > 0 ? <Text color="cyan">{moreBelow(w.below)} · PgDn</Text> : null}
    </Panel>
  );
}

/** The help's scroll window, for the keys that move it. */
export const helpWindow = (width: number, height: number, offset: number) => scrollWindow(helpLines(width).length, Math.max(0, height - 1), offset);
