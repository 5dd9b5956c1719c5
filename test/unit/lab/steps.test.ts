/**
 * The step engine against a scripted snapshot stream: no VMs, no link. What is checked is what
 * the engine decides — the order of steps, the commands it sends and how, the typed reason a run
 * ends with, and that a guest lost before the destination ran ends the run at once.
 */
import { describe, expect, it } from 'vitest';
import { loadLabText } from '../../../src/lab/load.js';
import { GuestWatch, RunFailure } from '../../../src/lab/failure.js';
import { SnapshotFeed } from '../../../src/lab/feed.js';
import { StepEngine, type StepPorts } from '../../../src/lab/steps.js';
import { SessionStore } from '../../../src/lab/store.js';
import type { QmpCommand } from '../../../src/lab/describe.js';
import type { LabEvent, MigrationStatus, PagesInfo, SessionState, Side, Snapshot } from '../../../src/types.js';
import { fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';

const LAB = `
id: scripted
title: Scripted
summary: A lab for the engine's tests.
backends: [sim]
setup:
  memory: 16M
steps:
  - title: Listen
    text: Listen.
    hints: [listen]
    do:
      - qmp: destination
        execute: migrate-incoming
        arguments: { uri: "\${incoming.listen}" }
    until: 'destination.status == "setup"'
    timeout: 5s
  - title: Pause
    text: Pause.
    hints: [pause]
    do:
      - qmp: source
        execute: migrate-pause
        oob: true
        expect-error: not in postcopy
    until: 'source.status == "active"'
    timeout: 5s
  - title: Wait for completion
    text: Wait.
    hints: [wait]
    until: 'destination.status == "completed"'
    timeout: 5s
expect:
  - 'destination.status == "completed"'
summary-text: Done.
`;

const lab = loadLabText(LAB, 'scripted.yaml');

function snap(source: MigrationStatus, destination: MigrationStatus): Snapshot {
  return fakeSnapshot({ source: fakeSide('source', { status: source }), destination: fakeSide('destination', { status: destination }) });
}

interface Sent {
  side: Side;
  cmd: QmpCommand;
  oob: boolean;
}

function setup(reply: (s: Sent) => unknown = () => ({})) {
  const initial: SessionState = {
    snapshot: null,
    steps: lab.steps.map((s) => ({ index: s.index, title: s.title, text: s.text, hints: s.hints, hintsShown: 0, status: 'pending', actions: [] })),
    currentStep: 0,
    events: [],
    history: [],
    finished: null,
  };
  const store = new SessionStore(initial, () => 0);
  const watch = new GuestWatch();
  const feed = new SnapshotFeed((s) => watch.observe(s));
  const sent: Sent[] = [];
  const events: LabEvent[] = [];
  store.onEvent((e) => events.push(e));
  const ports: StepPorts = {
    async sendQmp(side, cmd, { oob }) {
      const s = { side, cmd, oob };
      sent.push(s);
      const r = reply(s);
      if (r instanceof Error) throw r;
      return r;
    },
    applyLink: async () => {},
    restoreLink: async () => {},
    vm: async () => {},
    verify: async () => {},
    vars: () => ({ 'incoming.listen': 'tcp:127.0.0.1:4444' }),
  };
  const hookLog: string[] = [];
  const engine = new StepEngine(lab, store, feed, ports, {
    stepWaiting: (step, mode) => void hookLog.push(`waiting ${step.index} ${mode}`),
    stepEnded: (step, failure) => void hookLog.push(`ended ${step.index} ${failure ? failure.reason : 'done'}`),
  });
  return { store, feed, engine, sent, events, hookLog };
}

/** An engine for `l` on `t`'s store and feed, with ports that do nothing. */
function quietEngine(l: typeof lab, t: ReturnType<typeof setup>, vars: Record<string, string> = {}): StepEngine {
  return new StepEngine(l, t.store, t.feed, {
    sendQmp: async () => ({}),
    applyLink: async () => {},
    restoreLink: async () => {},
    vm: async () => {},
    verify: async () => {},
    vars: () => vars,
  });
}

/** Publishes `snaps` one per macrotask, so the engine sees each. */
async function play(feed: SnapshotFeed, snaps: Snapshot[]): Promise<void> {
  for (const s of snaps) {
    await new Promise((r) => setTimeout(r, 1));
    feed.publish(s);
  }
}

describe('StepEngine', () => {
  it('a drill runs each step’s do as written (templates filled, oob as the lab says), then waits for its until', async () => {
    const t = setup((s) => (s.cmd.execute === 'migrate-pause' ? new Error('migrate-pause: not in postcopy') : {}));
    const run = t.engine.runSteps('drill', 0, 2);
    await play(t.feed, [snap('none', 'setup'), snap('active', 'active')]);
    await run;
    expect(t.sent).toEqual([
      { side: 'destination', cmd: { execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:4444' } }, oob: false },
      { side: 'source', cmd: { execute: 'migrate-pause', arguments: {} }, oob: true },
    ]);
    expect(t.store.getState().steps.map((s) => s.status)).toEqual(['done', 'done', 'pending']);
    expect(t.hookLog).toEqual(['waiting 0 drill', 'ended 0 done', 'waiting 1 drill', 'ended 1 done']);
    // A range can be run again later (a rewind replays the steps before the one retried).
    const again = t.engine.runSteps('drill', 1, 2);
    await play(t.feed, [snap('active', 'active')]);
    await again;
    expect(t.sent).toHaveLength(3);
  });

  it('a command the lab expected to fail but that succeeded ends the run as refused', async () => {
    const t = setup();
    t.feed.publish(snap('none', 'setup'));
    const err = await t.engine.runSteps('drill', 1, 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFailure);
    expect((err as RunFailure).reason).toBe('refused');
    expect((err as RunFailure).message).toMatch(/accepted migrate-pause, but the lab expected an error containing 'not in postcopy'/);
    expect(t.store.getState().steps[1]!.status).toBe('failed');
  });

  it('an until that stays false ends as condition-timeout with the values seen', async () => {
    const short = loadLabText(LAB.replace(/timeout: 5s/g, 'timeout: 50ms'), 'scripted.yaml');
    const t = setup();
    const engine = quietEngine(short, t);
    const run = engine.runSteps('drill', 2, 3).catch((e: unknown) => e);
    const ticker = setInterval(() => t.feed.publish(snap('postcopy-active', 'postcopy-active')), 10);
    const err = (await run) as RunFailure;
    clearInterval(ticker);
    expect(err.reason).toBe('condition-timeout');
    expect(err.toSummary()).toMatchObject({ reason: 'condition-timeout', step: 3, condition: 'destination.status == "completed"', seen: { 'destination.status': 'postcopy-active' } });
  });

  it('source postcopy-paused with the destination failed before it ran: the run ends at once, saying the guest cannot be resumed', async () => {
    const t = setup();
    // Interactive: no timeout at all, so only the watch can end this wait.
    const run = t.engine.runSteps('interactive', 2, 3).catch((e: unknown) => e);
    await play(t.feed, [
      snap('active', 'active'),
      // The source switched to postcopy; the destination is still loading the device state.
      snap('postcopy-active', 'active'),
      snap('postcopy-paused', 'failed'),
    ]);
    const err = (await run) as RunFailure;
    expect(err).toBeInstanceOf(RunFailure);
    expect(err.reason).toBe('guest-lost');
    expect(err.message).toMatch(/cannot be resumed on either side/);
    expect(err.message).toMatch(/QEMU 7\.2 and 10\.0/);
    expect(err.message).toMatch(/postcopy-device/);
    expect(err.message).toMatch(/resumes the guest on the source/);
    expect(t.feed.aborted?.reason).toBe('guest-lost');
    expect(t.store.getState().steps[2]!.status).toBe('failed');
    expect(t.hookLog).toEqual(['waiting 2 interactive', 'ended 2 guest-lost']);
  });

  it('interactive: a precopy failure blocks the step with a reason instead of ending the run; retry replays the earlier steps on the same VMs', async () => {
    const t = setup();
    const run = t.engine.runSteps('interactive', 1, 2);
    const ticker = setInterval(() => t.feed.publish(snap('failed', 'failed')), 20);
    await expect.poll(() => t.store.getState().blocked, { timeout: 5000 }).toMatchObject({ cause: 'migration-failed', step: 2, retry: true });
    expect(t.store.getState().finished).toBeNull();
    expect(t.events.some((e) => e.kind === 'warning' && /step 2 can no longer happen/.test(e.text))).toBe(true);
    clearInterval(ticker);
    expect(t.engine.retry()).toBe(true);
    expect(t.engine.retry()).toBe(false); // one at a time
    // The replay runs step 1 as a drill (its migrate-incoming), then step 2 waits for the person again.
    await play(t.feed, [snap('failed', 'failed'), snap('none', 'setup')]);
    await expect.poll(() => t.sent.map((x) => x.cmd.execute)).toEqual(['migrate-incoming']);
    await play(t.feed, [snap('active', 'active')]);
    await run;
    expect(t.store.getState().blocked).toBeNull();
    expect(t.store.getState().steps.map((s) => s.status)).toEqual(['done', 'done', 'pending']);
  });

  it("interactive: a step's missed condition says its text (templates filled) while it holds, once in the log; a drill ignores it", async () => {
    const withMissed = loadLabText(
      LAB.replace(
        "    until: 'destination.status == \"completed\"'\n",
        "    until: 'destination.status == \"completed\"'\n    missed:\n      when: 'source.status == \"postcopy-paused\"'\n      text: 'Paused; listen on ${incoming.listen} again.'\n",
      ),
      'scripted.yaml',
    );
    expect(withMissed.steps[2]!.missed?.text).toBe('Paused; listen on ${incoming.listen} again.');
    const t = setup();
    const engine = quietEngine(withMissed, t, { 'incoming.listen': 'tcp:127.0.0.1:4444' });
    const run = engine.runSteps('interactive', 2, 3);
    await play(t.feed, [snap('postcopy-active', 'postcopy-active'), snap('postcopy-paused', 'postcopy-paused'), snap('postcopy-paused', 'postcopy-paused')]);
    await expect.poll(() => t.store.getState().missed).toEqual({ step: 3, text: 'Paused; listen on tcp:127.0.0.1:4444 again.' });
    await play(t.feed, [snap('postcopy-active', 'postcopy-active')]);
    await expect.poll(() => t.store.getState().missed).toBeNull();
    await play(t.feed, [snap('postcopy-paused', 'postcopy-paused'), snap('completed', 'completed')]);
    await run;
    expect(t.store.getState().missed).toBeNull();
    expect(t.events.filter((e) => e.kind === 'warning' && e.text === 'step 3: Paused; listen on tcp:127.0.0.1:4444 again.')).toHaveLength(2);
    // A drill: the step's own do is what runs; what a person might do otherwise is not its concern.
    const drill = engine.runSteps('drill', 2, 3);
    await play(t.feed, [snap('postcopy-paused', 'postcopy-paused'), snap('completed', 'completed')]);
    await drill;
    expect(t.store.getState().missed ?? null).toBeNull();
  });

  it("interactive: once the step can no longer happen, how it went another way (its missed) is kept as the reason", async () => {
    const withMissed = loadLabText(
      LAB.replace(
        "    until: 'destination.status == \"completed\"'\n",
        "    until: 'source.status == \"postcopy-paused\"'\n    missed:\n      when: 'source.status == \"postcopy-active\"'\n      text: 'One connection only.'\n",
      ),
      'scripted.yaml',
    );
    const t = setup();
    const engine = quietEngine(withMissed, t);
    const run = engine.runSteps('interactive', 2, 3);
    await play(t.feed, [snap('postcopy-active', 'postcopy-active'), snap('postcopy-active', 'postcopy-active')]);
    await expect.poll(() => t.store.getState().missed).toEqual({ step: 3, text: 'One connection only.' });
    // It completes: the step is blocked, and the missed (no longer true) stays as its reason.
    const ticker = setInterval(() => t.feed.publish(snap('completed', 'completed')), 20);
    await expect.poll(() => t.store.getState().blocked, { timeout: 5000 }).toMatchObject({ cause: 'migration-completed', step: 3 });
    expect(t.store.getState().missed).toEqual({ step: 3, text: 'One connection only.' });
    clearInterval(ticker);
    // Left by the step (here its until, in a test), both go.
    await play(t.feed, [snap('postcopy-paused', 'postcopy-paused')]);
    await run;
    expect(t.store.getState().missed).toBeNull();
    expect(t.store.getState().blocked).toBeNull();
  });

  it("this-step counters count from the step's start: a recovery made in an earlier step does not end a later recover step", async () => {
    const relative = loadLabText(LAB.replace("    until: 'destination.status == \"completed\"'\n", "    until: 'this-step.destination.pages.recoveries >= 1'\n"), 'scripted.yaml');
    const t = setup();
    const engine = quietEngine(relative, t);
    const recovered = (n: number, status: MigrationStatus = 'postcopy-paused') =>
      fakeSnapshot({ source: fakeSide('source', { status }), destination: fakeSide('destination', { status, pages: { ...fakeSide('destination').pages, recoveries: n } as PagesInfo }) });
    t.feed.publish(recovered(1)); // the person cut and recovered once before this step began
    let done = false;
    const run = engine.runSteps('interactive', 2, 3).then(() => (done = true));
    await play(t.feed, [recovered(1), recovered(1)]);
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    expect(t.events.find((e) => e.kind === 'step' && /step 3\/3/.test(e.text))?.data).toMatchObject({ untilAtStart: false });
    await play(t.feed, [recovered(2, 'postcopy-active')]);
    await run;
    expect(done).toBe(true);
  });

  it('a drill ends at once with step-unreachable when the migration failed under a step that needs it', async () => {
    const t = setup();
    const run = t.engine.runSteps('drill', 2, 3).catch((e: unknown) => e);
    const ticker = setInterval(() => t.feed.publish(snap('failed', 'failed')), 20);
    const err = (await run) as RunFailure;
    clearInterval(ticker);
    expect(err.reason).toBe('step-unreachable');
    expect(err.message).toMatch(/^step 3 'Wait for completion': The migration failed during precopy/);
  });

  it('the same split after the destination ran the guest says the guest is lost, without the device-state story', () => {
    const watch = new GuestWatch();
    expect(watch.observe(snap('postcopy-active', 'postcopy-active'))).toBeNull();
    expect(watch.observe(snap('postcopy-paused', 'postcopy-paused'))).toBeNull();
    const f = watch.observe(snap('postcopy-paused', 'failed'));
    expect(f?.reason).toBe('guest-lost');
    expect(f?.message).toMatch(/the guest ran there/);
    expect(f?.message).not.toMatch(/device state/);
  });

  it('a link-cut recovery never trips the watch', () => {
    const watch = new GuestWatch();
    const path: Array<[MigrationStatus, MigrationStatus]> = [
      ['active', 'active'],
      ['postcopy-active', 'active'],
      ['postcopy-active', 'postcopy-active'],
      ['postcopy-paused', 'postcopy-paused'],
      ['postcopy-recover', 'postcopy-recover'],
      ['postcopy-active', 'postcopy-active'],
      ['completed', 'completed'],
      ['failed', 'failed'],
    ];
    for (const [s, d] of path) expect(watch.observe(snap(s, d)), `${s}/${d}`).toBeNull();
  });
});
