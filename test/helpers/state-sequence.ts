/**
 * The state sequence of each side of a run, from what `drill --json` prints: one JSON object a
 * line, state changes as `{"type":"event","kind":"state","side":...,"data":{"from","to"}}`
 * (text "from -> to"). Only states: MIGRATION events that change nothing, snapshots, steps and
 * every other line are left out, and a state repeated back to back counts once. The fidelity
 * test compares these between a real QEMU and the sim emulating it.
 */
import type { Side } from '../../src/types.js';

export type StateSequences = Record<Side, string[]>;

interface JsonLine {
  type?: unknown;
  kind?: unknown;
  side?: unknown;
  text?: unknown;
  data?: unknown;
}

/** `["a", "a", "b", "a"]` -> `["a", "b", "a"]`. */
export function collapseRepeats(states: readonly string[]): string[] {
  return states.filter((s, i) => i === 0 || states[i - 1] !== s);
}

/** The `from` and `to` of a state line: its data, else its text ("a -> b", maybe "(error)" after). */
function transition(line: JsonLine, n: number): { from: string; to: string } {
  const d = line.data as { from?: unknown; to?: unknown } | undefined;
  if (typeof d?.from === 'string' && typeof d.to === 'string') return { from: d.from, to: d.to };
  const m = typeof line.text === 'string' ? /^(\S+) -> (\S+)/.exec(line.text) : null;
  if (!m) throw new Error(`line ${n}: a state event without data.from/data.to or a "from -> to" text: ${JSON.stringify(line)}`);
  return { from: m[1], to: m[2] };
}

/** Both sides' state sequences from a drill's `--json` stdout. Throws on a line that is not JSON. */
export function stateSequences(stdout: string): StateSequences {
  const seq: StateSequences = { source: [], destination: [] };
  stdout.split('\n').forEach((text, i) => {
    if (!text.trim()) return;
    let line: JsonLine;
    try {
      line = JSON.parse(text) as JsonLine;
    } catch {
      throw new Error(`line ${i + 1} of the drill's --json output is not JSON: ${text.slice(0, 120)}`);
    }
    if (line.type !== 'event' || line.kind !== 'state') return;
    if (line.side !== 'source' && line.side !== 'destination') {
      throw new Error(`line ${i + 1}: a state event without side source|destination: ${text.slice(0, 120)}`);
    }
    const { from, to } = transition(line, i + 1);
    // `from` too: a state change the log missed shows as a gap instead of being papered over.
    seq[line.side].push(from, to);
  });
  return { source: collapseRepeats(seq.source), destination: collapseRepeats(seq.destination) };
}
