export { QMP_COMMANDS } from '../qmp/commands.js';
import { QMP_COMMANDS } from '../qmp/commands.js';

/** Commands starting with `prefix`, and the longest prefix they share. */
export function complete(prefix: string, commands: readonly string[] = QMP_COMMANDS): { matches: string[]; common: string } {
  const matches = commands.filter((c) => c.startsWith(prefix));
  if (matches.length === 0) return { matches, common: prefix };
  let common = matches[0];
  for (const m of matches.slice(1)) {
    let i = 0;
    while (i < common.length && i < m.length && common[i] === m[i]) i++;
    common = common.slice(0, i);
  }
  return { matches, common };
}
