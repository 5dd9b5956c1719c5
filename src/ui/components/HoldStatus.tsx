import { Text } from 'ink';
import type { HoldLine } from '../hold-status.js';

/** The hold (or the time left) in one line; the key bar takes the rest of the row. */
export function HoldStatus(props: { line: HoldLine }) {
  const { line } = props;
  return (
    <Text wrap="truncate" bold={line.tone === 'held'} color={line.tone === 'held' ? 'yellow' : undefined} dimColor={line.tone === 'estimate'}>
      {line.text}
    </Text>
  );
}
