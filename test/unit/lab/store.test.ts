/**
 * The session store's two streams and the recorder that subscribes to them: the event stream
 * carries every event even where the state keeps only the recent ones, and the record holds
 * the header, every event, snapshots twice a second without the page map, and one summary.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Recorder } from '../../../src/lab/recorder.js';
import { MAX_EVENTS, SessionStore } from '../../../src/lab/store.js';
import type { LabEvent, RunSummary, SessionState } from '../../../src/types.js';
import { fakeSnapshot } from '../../helpers/fake-session.js';

const dir = mkdtempSync(join(tmpdir(), 'pcl-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function emptyState(): SessionState {
  return { snapshot: null, steps: [], currentStep: 0, events: [], history: [], finished: null };
}

describe('SessionStore', () => {
  it('the event stream carries every event; the state keeps the most recent MAX_EVENTS', () => {
    let t = 0;
    const store = new SessionStore(emptyState(), () => t++);
    const seen: LabEvent[] = [];
    store.onEvent((e) => seen.push(e));
    let notified = 0;
    store.subscribe(() => notified++);
    const n = MAX_EVENTS + 50;
    for (let i = 0; i < n; i++) store.emit({ kind: 'info', text: `e${i}` });
    expect(seen.map((e) => e.text)).toEqual(Array.from({ length: n }, (_, i) => `e${i}`));
    expect(seen[10]!.t).toBe(10);
    const kept = store.getState().events;
    expect(kept).toHaveLength(MAX_EVENTS);
    expect(kept[kept.length - 1]!.text).toBe(`e${n - 1}`);
    expect(notified).toBe(n);
  });

  it('publishing a snapshot updates the state and the history, and reaches snapshot listeners', () => {
    const store = new SessionStore(emptyState(), () => 0);
    const ts: number[] = [];
    store.onSnapshot((s) => ts.push(s.t));
    store.publishSnapshot(fakeSnapshot({ t: 100 }));
    store.publishSnapshot(fakeSnapshot({ t: 70_000 }));
    expect(ts).toEqual([100, 70_000]);
    expect(store.getState().snapshot?.t).toBe(70_000);
    // The first point is more than a minute older than the second: gone from the history.
    expect(store.getState().history.map((h) => h.t)).toEqual([70_000]);
  });

  it("records no remaining before the source's migration starts (query-migrate's 0 then is not what is left)", () => {
    const store = new SessionStore(emptyState(), () => 0);
    const side = fakeSnapshot().source;
    store.publishSnapshot(fakeSnapshot({ t: 100, source: { ...side, status: 'none', ram: { ...side.ram, remaining: 0 } } }));
    store.publishSnapshot(fakeSnapshot({ t: 200, source: { ...side, status: 'active' } }));
    expect(store.getState().history.map((h) => h.remaining)).toEqual([null, side.ram!.remaining]);
  });
});

describe('Recorder', () => {
  it('writes the header, every event, snapshots at most twice a second without the map, and the summary once', () => {
    const file = join(dir, 'run.jsonl');
    const store = new SessionStore(emptyState(), () => 5);
    new Recorder(file, { lab: 'x', seed: 3 }).attach(store);
    store.emit({ kind: 'step', text: 'step 1/1: go' });
    store.publishSnapshot(fakeSnapshot({ t: 1000 }));
    store.publishSnapshot(fakeSnapshot({ t: 1200 }));
    store.publishSnapshot(fakeSnapshot({ t: 1600 }));
    const summary: RunSummary = { ok: true, labId: 'x', durationMs: 9, verified: true, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0, summaryText: 'Done.' };
    store.update({ finished: summary });
    store.update({ currentStep: 0 });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type)).toEqual(['run', 'event', 'snapshot', 'snapshot', 'summary']);
    expect(lines[0]).toMatchObject({ type: 'run', lab: 'x', seed: 3 });
    expect(lines[1]).toMatchObject({ type: 'event', t: 5, kind: 'step', text: 'step 1/1: go' });
    expect(lines.filter((l) => l.type === 'snapshot').map((l) => l.t)).toEqual([1000, 1600]);
    expect((lines[2]!.destination as { pages: Record<string, unknown> }).pages).not.toHaveProperty('map');
    expect(lines[4]).toMatchObject({ type: 'summary', ok: true, summaryText: 'Done.' });
  });
});
