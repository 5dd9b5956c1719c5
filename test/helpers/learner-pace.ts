/**
 * A lab at a person's pace, from a drill's JSON lines (`--learner-delay`): while each step waits
 * for the learner, the migration must not end, and in postcopy what remains must outlast a
 * person's minute at the rate it drained meanwhile. Used by the sim's slow-learner test and the
 * libvirt lab drills. Generous bounds, no timing asserted.
 */
import { expect } from 'vitest';

type Line = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What the labs promise a person: this long before each action. */
export const LEARNER_MS = 60_000;

/**
 * Checks each step's wait of `delayMs` (the last step's excepted: nothing follows it). `drainWhen`
 * says which postcopy windows the drain bound applies to (the sim: under a hold; libvirt, which
 * has none: all). Returns how many windows the drain bound was checked on.
 */
export function expectLearnerPace(lab: string, lines: readonly Line[], delayMs: number, drainWhen: (last: Line) => boolean = () => true): number {
  const snaps = lines.filter((l) => l.type === 'snapshot');
  const starts = lines.filter((l) => l.type === 'event' && l.kind === 'step' && !l.data?.done);
  let checked = 0;
  for (const start of starts.slice(0, -1)) {
    const from = start.t as number;
    const window = snaps.filter((s) => s.t >= from && s.t <= from + delayMs);
    if (window.length < 2) continue;
    const first = window[0]!;
    const last = window[window.length - 1]!;
    // A step that begins after the migration completed (it starts a fresh one, as
    // postcopy-preempt's second run does) has nothing left to miss.
    if (first.source.status === 'completed') continue;
    // The step's action is still to come: the migration must not have ended meanwhile.
    expect(last.source.status, `${lab} ${start.text}: the migration ended while the learner read`).not.toBe('completed');
    if (first.source.status !== 'postcopy-active' || last.source.status !== 'postcopy-active' || !drainWhen(last)) continue;
    if (last.source.ram?.remaining === undefined || first.source.ram?.remaining === undefined) continue;
    const remaining = last.source.ram.remaining as number;
    const drained = (first.source.ram.remaining as number) - remaining;
    const perMs = Math.max(drained, 0) / Math.max(last.t - first.t, 1);
    // At this rate, what remains takes longer than a person's minute.
    expect(remaining, `${lab} ${start.text}: ${remaining} bytes left, draining ${Math.round(perMs * 1000)} B/s`).toBeGreaterThan(perMs * LEARNER_MS);
    checked++;
  }
  return checked;
}
