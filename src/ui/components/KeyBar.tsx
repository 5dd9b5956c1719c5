import { Text } from 'ink';
import { fitKeyHints, type KeyHint } from '../key-bar.js';

/** The keys valid now, as many as fit; `?` always does. */
export function KeyBar(props: { hints: KeyHint[]; width: number }) {
  const shown = fitKeyHints(props.hints, props.width);
  return (
    <Text wrap="truncate">
      {shown.map((h, i) => (
        <Text key={h.key}>
          {i > 0 ? '  ' : ''}
          <Text bold color="cyan">
            {h.key}
          </Text>{' '}
          {h.label}
        </Text>
      ))}
    </Text>
  );
}
