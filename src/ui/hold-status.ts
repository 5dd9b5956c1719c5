/**
 * The status beside the key bar: while a hold is in effect, that the lab waits for the person;
 * otherwise, while the migration moves, how long it has left at the current rate, so nobody is
 * surprised by the end. Pure: a function of the session's state and the room there is.
 */
import { fmtRate } from '../util/format.js';
import type { SessionState } from '../types.js';

export interface HoldLine {
  text: string;
  /** held: shown as a pause; estimate: a plain note. */
  tone: 'held' | 'released' | 'estimate';
}

/** Seconds left at the recent rate, from the sparkline history (a few seconds' window). */
export function secondsLeft(state: SessionState): number | null {
  const snap = state.snapshot;
  const ram = snap?.source.ram;
  const status = snap?.source.status;
  if (!snap || !ram || ram.remaining === undefined || ram.remaining <= 0) return null;
  if (status !== 'active' && status !== 'postcopy-active') return null;
  // The rate over the last ~5 s of samples, so one fast or slow sample does not swing it.
  const recent = state.history.filter((h): h is typeof h & { remaining: number } => snap.t - h.t <= 5000 && h.remaining !== null);
  if (recent.length < 2) return null;
  const first = recent[0]!;
  const last = recent[recent.length - 1]!;
  const dt = (last.t - first.t) / 1000;
  const drained = first.remaining - last.remaining;
  // In precopy `remaining` refills with every pass: an estimate is only honest when it falls.
  if (dt <= 0 || drained <= 0) return null;
  return ram.remaining / (drained / dt);
}

/** The current step's hold is on: the lab waits for the person (what holdLine shows as held). */
export function isHeld(state: SessionState): boolean {
  return !state.finished && state.hold?.state === 'held' && state.hold.step === state.currentStep;
}

export function holdLine(state: SessionState, width: number): HoldLine | null {
  const h = state.hold;
  if (h && h.step === state.currentStep && !state.finished) {
    if (h.state === 'held') {
      // A rate where one paces the migration; else what is held (max-cpu-throttle 20%).
      const at = h.rate !== null ? ` at ${fmtRate(h.rate, { trim: true })}` : h.text ? ` (${h.text})` : '';
      const forms = [`⏸ held for you${at} — Space lets it run`, `⏸ held${at} · Space`, '⏸ held · Space', '⏸ held'];
      return { text: forms.find((f) => f.length <= width) ?? '⏸ held', tone: 'held' };
    }
    if (h.state === 'released') {
      const long = 'released: the migration runs at its own pace — Space holds it again';
      return { text: long.length <= width ? long : '▶ released · Space', tone: 'released' };
    }
  }
  if (state.finished) return null;
  const s = secondsLeft(state);
  if (s === null) return null;
  const secs = s >= 100 ? `${Math.round(s / 60)} min` : `${Math.max(1, Math.round(s))} s`;
  const long = `≈ ${secs} until the migration completes at this rate`;
  return { text: long.length <= width ? long : `≈ ${secs} left`, tone: 'estimate' };
}
