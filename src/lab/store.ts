/**
 * The lab session's store, outside React: one immutable SessionState replaced on every change,
 * and two streams beside it — every event as it happens (the UI's list keeps only the recent
 * ones; the drill and the recorder need all of them) and every published snapshot. Listeners
 * are called synchronously, in the order things happened.
 */
import type { LabEvent, SessionState, Snapshot, StepView } from '../types.js';

/** The UI's event list keeps this many. */
export const MAX_EVENTS = 300;
/** The sparklines' window. */
const HISTORY_MS = 60_000;

export class SessionStore {
  private state: SessionState;
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(e: LabEvent) => void>();
  private readonly snapshotListeners = new Set<(s: Snapshot) => void>();

  /** @param now milliseconds since the run started, for events' `t`. */
  constructor(
    initial: SessionState,
    private readonly now: () => number,
  ) {
    this.state = initial;
  }

  getState(): SessionState {
    return this.state;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onEvent(listener: (e: LabEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onSnapshot(listener: (s: Snapshot) => void): () => void {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  }

  update(patch: Partial<SessionState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of [...this.listeners]) l();
  }

  setStep(index: number, patch: Partial<StepView>): void {
    const steps = this.state.steps.slice();
    steps[index] = { ...steps[index], ...patch };
    this.update({ steps });
  }

  /** Stamp, keep (bounded) and announce one event; returns it as stored. */
  emit(e: Omit<LabEvent, 't'>): LabEvent {
    const ev: LabEvent = { t: this.now(), ...e };
    for (const l of [...this.eventListeners]) l(ev);
    const events = this.state.events.length >= MAX_EVENTS ? this.state.events.slice(-MAX_EVENTS + 1) : this.state.events.slice();
    events.push(ev);
    this.update({ events });
    return ev;
  }

  /** Publish a snapshot: the state's `snapshot` and the last minute of `history`. */
  publishSnapshot(snap: Snapshot): void {
    const history = this.state.history.filter((h) => snap.t - h.t <= HISTORY_MS);
    const started = snap.source.status !== 'none' && snap.source.ram?.remaining !== undefined;
    history.push({ t: snap.t, mbps: snap.source.ram?.mbps ?? 0, remaining: started ? snap.source.ram!.remaining! : null });
    for (const l of [...this.snapshotListeners]) l(snap);
    this.update({ snapshot: snap, history });
  }
}
