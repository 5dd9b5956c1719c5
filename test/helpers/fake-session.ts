/**
 * An in-memory LabSessionApi for UI tests: set its state, see what the UI asked of it.
 */
import type { LabEvent, LabSessionApi, LinkDirectionSnapshot, LinkFault, PagesInfo, SessionState, Side, SideSnapshot, Snapshot, StepView } from '../../src/types.js';

export type FakeCall =
  | { method: 'qmp'; side: Side; execute: string; args?: Record<string, unknown> }
  | { method: 'qmpLine'; side: Side; line: string }
  | { method: 'applyLink'; fault: LinkFault }
  | { method: 'restoreLink' }
  | { method: 'showMe' }
  | { method: 'nextHint' }
  | { method: 'retry' }
  | { method: 'toggleHold' }
  | { method: 'stop' };

export function fakeDirection(over: Partial<LinkDirectionSnapshot> = {}): LinkDirectionSnapshot {
  return { state: 'up', latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0, ...over };
}

export function fakePages(over: Partial<PagesInfo> = {}): PagesInfo {
  return {
    'page-size': 4096,
    total: 1000,
    sent: 400,
    received: 400,
    requested: 3,
    'in-flight': 7,
    missing: 590,
    'duplicates-discarded': 2,
    resent: 5,
    'blocked-vcpus': 1,
    'fault-latency-us': { p50: 420, p99: 2100, count: 12 },
    'blocktime-ms': 35,
    'blocktime-worst-vcpu-ms': 20,
    'wire-bytes': 1638400,
    walker: { active: true, position: 250, total: 1000, done: false },
    guest: { progress: 1234, 'ops-per-second': 5000, 'window-ms': 2000 },
    recoveries: 0,
    'recovery-attempts': 0,
    verified: null,
    ...over,
  } as PagesInfo;
}

export function fakeSide(side: Side, over: Partial<SideSnapshot> = {}): SideSnapshot {
  return {
    side,
    alive: true,
    runState: side === 'source' ? 'postmigrate' : 'running',
    status: 'postcopy-active',
    stalledMs: 0,
    ram: { mbps: 800, total: 4096000, remaining: 2416640, transferred: 1638400 },
    pages: fakePages(side === 'source' ? { requested: 0, 'in-flight': 0, 'blocked-vcpus': 0, 'duplicates-discarded': 0 } : {}),
    ...over,
  } as SideSnapshot;
}

export function fakeSnapshot(over: Partial<Snapshot> = {}): Snapshot {
  return {
    t: 12_300,
    source: fakeSide('source'),
    destination: fakeSide('destination'),
    link: {
      kind: 'relay',
      up: true,
      flapping: false,
      connections: 2,
      'source-to-destination': fakeDirection({ bytesForwarded: 5 * 1024 * 1024 }),
      'destination-to-source': fakeDirection({ bytesForwarded: 12 * 1024 }),
    },
    ...over,
  };
}

/** A snapshot with both sides postcopy-paused (a cut, a pause), the rest as fakeSnapshot's. */
export function pausedSnapshot(over: Partial<Snapshot> = {}): Snapshot {
  return fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-paused' }), destination: fakeSide('destination', { status: 'postcopy-paused' }), ...over });
}

export function fakeSteps(): StepView[] {
  return [
    { index: 0, title: 'Start postcopy', text: 'Start the migration.', hints: ['Use migrate'], hintsShown: 0, status: 'done', actions: ['migrate'] },
    {
      index: 1,
      title: 'Cut the link',
      text: 'Cut the link while postcopy runs and watch both sides pause.',
      hints: ['Press c', 'Or use the l menu'],
      hintsShown: 1,
      status: 'active',
      actions: ['link cut'],
      until: "destination.status == 'postcopy-paused'",
    },
    { index: 2, title: 'Recover', text: 'Recover.', hints: ['migrate-recover'], hintsShown: 0, status: 'pending', actions: ['migrate-recover'] },
  ];
}

export function fakeState(over: Partial<SessionState> = {}): SessionState {
  return { snapshot: fakeSnapshot(), steps: fakeSteps(), currentStep: 1, events: [], history: [], finished: null, ...over };
}

export class FakeSession implements LabSessionApi {
  readonly calls: FakeCall[] = [];
  private state: SessionState;
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(e: LabEvent) => void>();
  readonly summaryText = 'You cut the link mid-postcopy and recovered it.';
  /** What qmpLine answers; replace to script replies. */
  qmpLineReply: (side: Side, line: string) => Promise<{ ok: boolean; text: string }> = async (side, line) => ({
    ok: true,
    text: `{"return": {}} from ${side} for ${line}`,
  });
  /** Makes applyLink reject, to test error notices. */
  applyLinkError: Error | null = null;

  constructor(
    state: Partial<SessionState> = {},
    readonly labId = 'link-cut-recovery',
    readonly title = 'Link cut recovery',
    readonly summary = 'Cut the link mid-postcopy and recover.',
  ) {
    this.state = fakeState(state);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  getState(): SessionState {
    return this.state;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Replace part of the state (a new object, as a real store publishes) and notify. */
  set(over: Partial<SessionState>): void {
    this.state = { ...this.state, ...over };
    for (const l of [...this.listeners]) l();
  }

  setSnapshot(over: Partial<Snapshot>): void {
    this.set({ snapshot: { ...(this.state.snapshot ?? fakeSnapshot()), ...over } });
  }

  onEvent(listener: (e: LabEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  pushEvent(e: Omit<LabEvent, 't'> & { t?: number }): void {
    const ev: LabEvent = { t: e.t ?? this.state.snapshot?.t ?? 0, ...e };
    for (const l of [...this.eventListeners]) l(ev);
    this.set({ events: [...this.state.events, ev].slice(-200) });
  }

  retry(): boolean {
    this.calls.push({ method: 'retry' });
    return this.state.blocked?.retry === true;
  }

  async qmp(side: Side, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    this.calls.push({ method: 'qmp', side, execute, args });
    return {};
  }

  qmpLine(side: Side, line: string): Promise<{ ok: boolean; text: string }> {
    this.calls.push({ method: 'qmpLine', side, line });
    return this.qmpLineReply(side, line);
  }

  async applyLink(fault: LinkFault): Promise<void> {
    this.calls.push({ method: 'applyLink', fault });
    if (this.applyLinkError) throw this.applyLinkError;
  }

  async restoreLink(): Promise<void> {
    this.calls.push({ method: 'restoreLink' });
  }

  async showMe(): Promise<void> {
    this.calls.push({ method: 'showMe' });
  }

  toggleHold(): void {
    this.calls.push({ method: 'toggleHold' });
  }

  nextHint(): void {
    this.calls.push({ method: 'nextHint' });
  }

  async stop(): Promise<void> {
    this.calls.push({ method: 'stop' });
  }

  callsOf<M extends FakeCall['method']>(method: M): Extract<FakeCall, { method: M }>[] {
    return this.calls.filter((c): c is Extract<FakeCall, { method: M }> => c.method === method);
  }
}
