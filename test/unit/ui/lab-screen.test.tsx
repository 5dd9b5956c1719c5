import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RunSummary } from '../../../src/types.js';
import { headerTitle, LabScreen } from '../../../src/ui/screens/LabScreen.js';
import { refusalFix } from '../../../src/ui/use-lab-keys.js';
import { fakeDirection, FakeSession, fakeSide, fakeSnapshot, pausedSnapshot } from '../../helpers/fake-session.js';
import { KEYS, plain, settle, waitFor, waitForText } from './helpers.js';

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

async function mount(session = new FakeSession(), columns = 100, rows = 30) {
  const onQuit = vi.fn();
  const onFinished = vi.fn<(s: RunSummary) => void>();
  const r = render(<LabScreen session={session} columns={columns} rows={rows} onQuit={onQuit} onFinished={onFinished} sampleIntervalMs={20} />);
  cleanup = r.unmount;
  await waitForText(r.lastFrame, 'Steps 2/3');
  await settle();
  const type = async (...keys: string[]) => {
    for (const k of keys) {
      r.stdin.write(k);
      await settle(2);
    }
  };
  return { ...r, session, onQuit, onFinished, type, frame: () => plain(r.lastFrame()) };
}

describe('LabScreen keys', () => {
  it('s while another step is read runs the current step and brings it into view, saying which', async () => {
    const m = await mount();
    await m.type('[');
    await waitForText(m.lastFrame, /step 1(\/| of )3/);
    await m.type('s');
    await waitFor(() => m.session.callsOf('showMe').length === 1, 'show me');
    await waitForText(m.lastFrame, 'show me: ran step 2’s commands (the current step)');
    expect(m.frame()).toMatch(/step 2(\/| of )3 \(current\)/);
  });

  it('c cuts, b blackholes, u restores, h asks for a hint, s shows me', async () => {
    const s = new FakeSession({
      snapshot: fakeSnapshot({ link: { ...fakeSnapshot().link, 'source-to-destination': { ...fakeSnapshot().link['source-to-destination'], latencyMs: 50 } } }),
    });
    const m = await mount(s);
    await m.type('c');
    await waitFor(() => s.callsOf('applyLink').length === 1, 'applyLink');
    expect(s.callsOf('applyLink')[0].fault).toEqual({ kind: 'cut' });
    await waitForText(m.lastFrame, 'link cut (both directions)');
    await m.type('b', 'u', 'h', 's');
    await waitFor(() => s.calls.length === 5, 'five calls');
    expect(s.calls.map((c) => c.method)).toEqual(['applyLink', 'applyLink', 'restoreLink', 'nextHint', 'showMe']);
    expect(s.callsOf('applyLink')[1].fault).toEqual({ kind: 'blackhole' });
  });

  it('c during a step that does not break the link asks first, naming the consequence; n cancels, y cuts', async () => {
    const steps = new FakeSession().getState().steps.map((st) => ({ ...st, breaksLink: false }));
    const s = new FakeSession({ steps, snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'active' }), destination: fakeSide('destination', { status: 'active' }) }) });
    const m = await mount(s);
    await m.type('c');
    await waitForText(m.lastFrame, 'This step does not break the link; a cut now fails the migration (precopy)');
    expect(m.frame()).toMatch(/y apply anyway/);
    await m.type('n');
    await settle(10);
    expect(s.callsOf('applyLink')).toEqual([]);
    expect(m.frame()).not.toContain('This step does not break the link');
    await m.type('c', 'y');
    await waitFor(() => s.callsOf('applyLink').length === 1, 'applyLink after y');
    expect(s.callsOf('applyLink')[0].fault).toEqual({ kind: 'cut' });
  });

  it('any other key answers the question no and does what it does (u, : typed while it was up vanished)', async () => {
    const steps = new FakeSession().getState().steps.map((st) => ({ ...st, breaksLink: false }));
    const s = new FakeSession({ steps, snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'active' }), destination: fakeSide('destination', { status: 'active' }) }) });
    const m = await mount(s, 100, 30);
    await m.type('c');
    await waitForText(m.lastFrame, 'This step does not break the link');
    // Reading keys leave the question up.
    await m.type(KEYS.pageDown, ']');
    await settle(20);
    expect(m.frame()).toContain('This step does not break the link');
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to');
    expect(m.frame()).toContain('not applied: cut (both directions)');
    expect(m.frame()).not.toContain('This step does not break the link');
    expect(s.callsOf('applyLink')).toEqual([]);
  });

  it('a question asked in a step that does not break the link, when the next step calls for that fault, says so instead of warning', async () => {
    const base = new FakeSession().getState().steps;
    const s = new FakeSession({ steps: base.map((st) => ({ ...st, breaksLink: false })), snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-active' }), destination: fakeSide('destination', { status: 'postcopy-active' }) }) });
    const m = await mount(s);
    await m.type('c');
    await waitForText(m.lastFrame, 'This step does not break the link; a cut now pauses both sides');
    // The step that cuts begins while the question is up.
    s.set({ steps: base.map((st) => ({ ...st, breaksLink: true, linkFaults: ['cut' as const] })) });
    await waitForText(m.lastFrame, `Step ${s.getState().currentStep + 1} calls for this: y applies the cut (both directions) now, n/Esc not yet`);
    expect(m.frame()).not.toContain('anyway?');
    await m.type('y');
    await waitFor(() => s.callsOf('applyLink').length === 1, 'applyLink after y');
  });

  it("c during precopy in a step that cuts once postcopy runs asks first: the step's own cut would fail the migration now", async () => {
    const steps = new FakeSession().getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['cut' as const], until: 'source.status == "postcopy-paused" && destination.status == "postcopy-paused"' }));
    const precopy = fakeSnapshot({ source: fakeSide('source', { status: 'active' }), destination: fakeSide('destination', { status: 'active' }) });
    const s = new FakeSession({ steps, snapshot: precopy });
    const m = await mount(s, 120, 30);
    await m.type('c');
    await waitForText(m.lastFrame, 'This step calls for a cut (c) once postcopy runs; a cut now fails the migration (precopy) — cut (both directions)');
    await m.type('n');
    await settle(10);
    expect(s.callsOf('applyLink')).toEqual([]);
    // In postcopy the step's cut is what it asks for: no question.
    s.setSnapshot({ source: fakeSide('source', { status: 'postcopy-active' }), destination: fakeSide('destination', { status: 'postcopy-active' }) });
    await settle(40);
    await m.type('c');
    await waitFor(() => s.callsOf('applyLink').length === 1, 'applyLink in postcopy');
  });

  it('c during a step that blackholes the link asks first (a cut is not the step\'s fault); b does not ask', async () => {
    const steps = new FakeSession().getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['blackhole' as const] }));
    const postcopy = fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-active' }), destination: fakeSide('destination', { status: 'postcopy-active' }) });
    const s = new FakeSession({ steps, snapshot: postcopy });
    const m = await mount(s);
    await m.type('c');
    await waitForText(m.lastFrame, 'This step calls for a blackhole (b); a cut now pauses both sides (postcopy-paused)');
    await m.type('n');
    await settle(10);
    expect(s.callsOf('applyLink')).toEqual([]);
    await m.type('b');
    await waitFor(() => s.callsOf('applyLink').length === 1, 'applyLink for b');
    expect(s.callsOf('applyLink')[0].fault).toEqual({ kind: 'blackhole' });
  });

  it('a step that can no longer happen is explained with r and w; r asks the session to retry, w rewinds to this step', async () => {
    const blocked = { cause: 'migration-failed' as const, step: 2, retry: true, message: 'The cut came during precopy: the migration failed — nothing was lost, but this step needs a migration in postcopy.' };
    const s = new FakeSession({ blocked });
    const onRewind = vi.fn<(step: number) => void>();
    const r = render(<LabScreen session={s} columns={100} rows={30} onQuit={vi.fn()} onFinished={vi.fn()} onRewind={onRewind} sampleIntervalMs={20} />);
    cleanup = r.unmount;
    await waitForText(r.lastFrame, 'Step 2 can no longer happen. The cut came during precopy');
    expect(plain(r.lastFrame())).toMatch(/r retry step {2}w rewind/);
    r.stdin.write('r');
    await waitFor(() => s.callsOf('retry').length === 1, 'retry');
    r.stdin.write('w');
    await waitFor(() => onRewind.mock.calls.length === 1, 'rewind');
    expect(onRewind).toHaveBeenCalledWith(1);
  });

  it('step 1 blocked: w starts again, with no earlier step to replay', async () => {
    const blocked = { cause: 'migration-failed' as const, step: 1, retry: false, message: 'The cut came during precopy: the migration failed.' };
    const m = await mount(new FakeSession({ blocked }));
    const flat = () => m.frame().replace(/\s+/g, ' ');
    await waitFor(() => flat().includes('Step 1 can no longer happen. The cut came during precopy: the migration failed. w starts again on fresh VMs (same seed).'), 'the advice');
    expect(m.frame()).not.toContain('replayed for you');
  });

  it("a step blocked after it went another way gives the lab's reason, not the generic one", async () => {
    const blocked = { cause: 'migration-completed' as const, step: 2, retry: false, message: 'The migration completed before this step could happen: nothing was lost, but this step needs a migration in postcopy.' };
    const missed = { step: 2, text: 'Postcopy runs on one connection: postcopy-preempt is not on the source. w rewinds to try again.' };
    const m = await mount(new FakeSession({ blocked, missed }));
    const flat = () => m.frame().replace(/\s+/g, ' ');
    await waitFor(() => flat().includes('Step 2 can no longer happen. Postcopy runs on one connection: postcopy-preempt is not on the source. w rewinds to try again.'), 'the reason');
    expect(flat()).not.toContain('this step needs');
    // A missed of another step is no reason for this one.
    const m2 = await mount(new FakeSession({ blocked, missed: { ...missed, step: 1 } }));
    await waitFor(() => m2.frame().replace(/\s+/g, ' ').includes('this step needs a migration in postcopy'), 'the generic message');
  });

  it("a step that went another way (the lab's missed) says so and offers w, which rewinds to it; not once the lab is past it", async () => {
    const s = new FakeSession({ missed: { step: 2, text: 'The recovery went through: the destination was already listening.' } });
    const onRewind = vi.fn<(step: number) => void>();
    const r = render(<LabScreen session={s} columns={100} rows={30} onQuit={vi.fn()} onFinished={vi.fn()} onRewind={onRewind} sampleIntervalMs={20} />);
    cleanup = r.unmount;
    await waitForText(r.lastFrame, 'Step 2: The recovery went through: the destination was already listening.');
    expect(plain(r.lastFrame())).toMatch(/w rewind/);
    r.stdin.write('w');
    await waitFor(() => onRewind.mock.calls.length === 1, 'rewind');
    expect(onRewind).toHaveBeenCalledWith(1);
    // A stale one (the lab is on another step) is neither said nor offered.
    s.set({ currentStep: 2 });
    await waitFor(() => !plain(r.lastFrame()).includes('went through'), 'the missed line gone');
    expect(plain(r.lastFrame())).not.toMatch(/w rewind/);
  });

  it('both sides postcopy-paused: the recovery commands with the real addresses, whatever the step', async () => {
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      snapshot: pausedSnapshot(),
    });
    const m = await mount(s, 80, 24);
    expect(m.frame()).toContain('paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    expect(m.frame()).toContain('paused · source: migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}');
    expect(m.frame()).not.toContain('u restores it');
    // A step that resumes the source alone (double-failure's "Reconnect too early") is not contradicted.
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, recoverySides: ['source' as const] })) });
    await waitFor(() => !m.frame().includes('migrate-recover'), 'the destination line gone in a source-only step');
    expect(m.frame()).toContain('paused · source: migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}');
  });

  it("a recovery command wider than the screen (libvirt's virsh line) wraps under itself, its URI whole", async () => {
    const s = new FakeSession({
      addresses: { 'libvirt.domain': 'pcl-guest', 'libvirt.dest-uri': 'qemu+tcp://10.213.0.2/system' },
      snapshot: pausedSnapshot(),
    });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, 'paused · source: virsh migrate');
    const lines = m.frame().split('\n');
    const at = lines.findIndex((l) => l.includes('paused · source: virsh migrate'));
    expect(`${lines[at]} ${lines[at + 1]}`.replace(/\s+/g, ' ')).toContain('pcl-guest qemu+tcp://10.213.0.2/system');
    expect(lines[at + 1]!.startsWith(' '.repeat('paused · source: '.length))).toBe(true);
    expect(m.frame()).not.toContain('qe…');
  });

  it('at 80×24 under three advice lines, the row left shows the newest event instead of nothing', async () => {
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      events: [{ t: 86_900, kind: 'fault', text: 'link: cut (both directions)' }],
      snapshot: pausedSnapshot({
        link: { ...fakeSnapshot().link, up: false, 'source-to-destination': fakeDirection({ state: 'cut' }), 'destination-to-source': fakeDirection({ state: 'cut' }) },
      }),
    });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, 'paused · source: migrate');
    const lines = m.frame().split('\n');
    const bar = lines.length - 1;
    expect(lines[bar - 2]).toContain('paused · source: migrate');
    // No "Events" panel title fits; the one row is the newest event, not blank.
    expect(lines[bar - 1]).toContain('link: cut (both directions)');
    expect(lines.some((l) => l.trim() === '')).toBe(false);
  });

  it('a lab that ended as it expects, both sides still paused: how it ended, not recovery commands', async () => {
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      snapshot: pausedSnapshot(),
    });
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, text: `LAST-${st.index} ${words}` })) });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, 'paused · destination: migrate-recover');
    const message = `recovery cannot be complete: the destination lacks 1572 pages the recovery file does not hold (${Array.from({ length: 40 }, (_, i) => 1405 + i).join(', ')}, …)`;
    const summary: RunSummary = { ok: true, labId: 'recovery-file-window', durationMs: 1000, verified: false, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0, expectedFailure: { reason: 'recovery-incomplete', message } };
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, status: 'done' })), finished: summary });
    await waitForText(m.lastFrame, 'Ended as the lab expects: recovery cannot be complete');
    expect(m.frame()).not.toContain('paused · ');
    // Marked as cut (Enter shows the summary, whole), and the log keeps its title and a line.
    const lines = m.frame().split('\n');
    const last = lines.findIndex((l) => l.startsWith('Events'));
    expect(lines[last - 1]).toMatch(/…\s*$/);
    expect(lines.length - last).toBeGreaterThanOrEqual(3);
  });

  it("a step whose own fault comes before its recovery (a blackholed return path) says so between u and the commands, until it is in place", async () => {
    const link = fakeSnapshot().link;
    const paused = (l: typeof link) =>
      pausedSnapshot({ link: l });
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      snapshot: paused({ ...link, 'source-to-destination': fakeDirection({ state: 'cut' }), 'destination-to-source': fakeDirection({ state: 'cut' }) }),
    });
    const hole = { kind: 'blackhole' as const, direction: 'destination-to-source' as const };
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['blackhole' as const], faultsBeforeRecovery: [hole], recoverySides: ['destination' as const, 'source' as const] })) });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, "paused · this step's blackhole (destination→source): l, the link menu; then:");
    const lines = m.frame().split('\n');
    const u = lines.findIndex((l) => l.includes('paused · the link is cut: u restores it; then:'));
    expect(u).toBeGreaterThan(-1);
    expect(lines[u + 1]).toContain("this step's blackhole");
    expect(lines[u + 2]).toContain('paused · destination: migrate-recover');
    // Restored: the blackhole still comes first.
    s.set({ snapshot: paused(link) });
    await waitFor(() => !m.frame().includes('u restores it'), 'u advice gone once restored');
    expect(m.frame()).toContain("paused · this step's blackhole (destination→source)");
    // In place: only the recovery commands.
    s.set({ snapshot: paused({ ...link, 'destination-to-source': fakeDirection({ state: 'blackhole' }) }) });
    await waitFor(() => !m.frame().includes("this step's blackhole"), 'the step fault line gone once in place');
    expect(m.frame()).toContain('paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
  });

  it('both sides paused over a cut link: "press u" comes before the recovery commands (a resume would not get through)', async () => {
    const link = fakeSnapshot().link;
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      snapshot: pausedSnapshot({ link: { ...link, 'source-to-destination': fakeDirection({ state: 'cut' }), 'destination-to-source': fakeDirection({ state: 'cut' }) } }),
    });
    const m = await mount(s, 80, 24);
    const lines = m.frame().split('\n');
    const u = lines.findIndex((l) => l.includes('paused · the link is cut: u restores it; then:'));
    expect(u).toBeGreaterThan(-1);
    expect(lines[u + 1]).toContain('paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    // With the console open too: all three lines (with two, the resume was lost).
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to');
    expect(m.frame()).toContain('paused · the link is cut: u restores it; then:');
    expect(m.frame()).toContain('paused · source: migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}');
    await m.type(KEYS.escape);
    await waitFor(() => !m.frame().includes('QMP console to'), 'the console closed');
    // A step that breaks the link itself and recovers over it (double-failure's stalled
    // handshake) means the recovery to meet it: no "press u" there.
    const both = ['destination' as const, 'source' as const];
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['cut' as const], recoverySides: both })) });
    await waitFor(() => !m.frame().includes('u restores it'), 'no u advice in a step that cuts');
    expect(m.frame()).toContain('paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    // One that breaks it for another purpose and recovers nothing (qemu-recovery-file's cut and
    // save) shows no recovery commands: they would end its lesson.
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, recoverySides: [] })) });
    await waitFor(() => !m.frame().includes('paused · '), 'no recovery commands in a step that cuts to save the RAM');
    // Nor one that kills the source ("Lose the source host"), whoever broke the link.
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, breaksLink: false, linkFaults: [] })) });
    await waitForText(m.lastFrame, 'paused · destination: migrate-recover');
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, actsOnVm: true })) });
    await waitFor(() => !m.frame().includes('paused · '), 'no recovery commands in a step that kills the source');
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, actsOnVm: false })) });
    // A cut in a step that blackholes is the person's doing: u first again, and the commands
    // (blackhole's "Pull the cable" recovers nothing itself).
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['blackhole' as const], recoverySides: [] })) });
    await waitForText(m.lastFrame, 'paused · the link is cut: u restores it; then:');
    expect(m.frame()).toContain('paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    // Its own blackhole, pressed after that cut and before the recovery, is in the way too: a
    // resume over it sat in postcopy-recover (a newcomer's walk).
    s.setSnapshot({ link: { ...link, 'source-to-destination': fakeDirection({ state: 'blackhole' }), 'destination-to-source': fakeDirection({ state: 'blackhole' }) } });
    await waitForText(m.lastFrame, 'paused · the link is blackholed: u restores it; then:');
    // And once u has restored it: a blackhole pauses nobody, so the pause is still the person's.
    s.setSnapshot({ link });
    await waitFor(() => !m.frame().includes('u restores it'), 'the link restored');
    expect(m.frame()).toContain('paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
  });

  it('both sides paused: once the destination took migrate-recover, the paused lines show the resume alone', async () => {
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      snapshot: pausedSnapshot(),
    });
    const m = await mount(s, 100, 30);
    await waitForText(m.lastFrame, 'paused · destination: migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    s.set({ recoverListening: true });
    await waitFor(() => !m.frame().includes('paused · destination: migrate-recover'), 'the done command gone');
    expect(m.frame()).toContain('paused · source: migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}');
  });

  it("both sides paused by a refused preempt channel: the reason and w, not recovery commands that would be refused again", async () => {
    const base = pausedSnapshot();
    const s = new FakeSession({
      addresses: { 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' },
      snapshot: { ...base, link: { ...base.link, refusedSecond: 1 } },
    });
    s.set({ stepStart: { step: s.getState().currentStep, refusedSecond: 0 } });
    const m = await mount(s, 100, 30);
    const flat = () => m.frame().replace(/\s+/g, ' ');
    await waitFor(() => flat().includes("the destination refused the source's second connection, so postcopy-preempt is on the source only"), 'the reason');
    expect(flat()).toContain('w rewinds (fresh VMs), then set it on both sides before migrate');
    expect(m.frame()).not.toContain('paused · destination: migrate-recover');
    expect(m.frame()).toMatch(/w rewind/);
  });

  it('s reports a refused show-me as an error, not as done', async () => {
    const s = new FakeSession();
    s.showMe = async () => {
      throw new Error('source refused migrate-start-postcopy');
    };
    const m = await mount(s);
    await m.type('s');
    await waitForText(m.lastFrame, 'show me failed: source refused migrate-start-postcopy');
    expect(m.frame()).not.toMatch(/ran this step/);
  });

  it('shows the hold above the keys and Space releases it; no Space without a hold', async () => {
    const s = new FakeSession({ hold: { step: 1, state: 'held', text: 'max-postcopy-bandwidth 64 KiB/s', rate: 65536 } });
    const wide = await mount(s, 200, 30);
    await waitForText(wide.lastFrame, '⏸ held for you at 64 KiB/s — Space lets it run');
    // Narrower, the status takes what the keys leave: the keys the step needs stay.
    const m = await mount(s);
    await waitForText(m.lastFrame, 'c cut');
    expect(m.frame()).toContain('c cut');
    expect(m.frame()).toContain('b blackhole');
    expect(m.frame()).toContain('⏸ held');
    await m.type(' ');
    await waitFor(() => s.callsOf('toggleHold').length === 1, 'toggleHold');
    // With the keys filling the bar at 80 columns (both paused, a blackholed link: u, p, l …),
    // "⏸ held" keeps its six cells; it was the first thing dropped (played in blackhole).
    const full = new FakeSession({
      hold: { step: 1, state: 'held', text: 'max-postcopy-bandwidth 64 KiB/s', rate: 65536 },
      snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-active' }), destination: fakeSide('destination', { status: 'postcopy-active' }) }),
    });
    full.set({ steps: full.getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['blackhole' as const] })) });
    const crowded = await mount(full, 80, 24);
    await waitForText(crowded.lastFrame, 'b blackhole');
    expect(crowded.frame().split('\n').at(-1)).toMatch(/^⏸ held · Space {2}b blackhole {2}h hint {2}s show me/);
    const none = await mount();
    await none.type(' ');
    await settle(30);
    expect(none.frame()).not.toContain('Space');
    expect(none.session.calls).toEqual([]);
  });

  it('does nothing for a key the bar does not show (u with the link healthy)', async () => {
    const m = await mount();
    expect(m.frame()).not.toMatch(/u restore/);
    await m.type('u', 'x', 'n');
    await settle(30);
    expect(m.session.calls).toEqual([]);
  });

  it('Esc then h read in one chunk closes the console and asks a hint (Ink alone reads Alt-h)', async () => {
    const m = await mount();
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to destination');
    await m.type('\u001bh');
    await waitFor(() => m.session.callsOf('nextHint').length === 1, 'nextHint');
    expect(m.frame()).not.toContain('QMP console to destination');
  });

  it('p sends migrate-pause to the source, then the destination', async () => {
    const m = await mount();
    await m.type('p');
    await waitFor(() => m.session.callsOf('qmp').length === 2, 'two qmp calls');
    expect(m.session.callsOf('qmp').map((c) => [c.side, c.execute])).toEqual([
      ['source', 'migrate-pause'],
      ['destination', 'migrate-pause'],
    ]);
  });

  it('b where the step blackholes one direction asks first, naming that direction and the link menu (double-failure: both ways, the reconnect never arrived)', async () => {
    const s = new FakeSession({ snapshot: pausedSnapshot() });
    const oneWay = { kind: 'blackhole' as const, direction: 'destination-to-source' as const };
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, breaksLink: true, linkFaults: ['blackhole' as const], faultsBeforeRecovery: [oneWay], recoverySides: ['destination' as const, 'source' as const] })) });
    const m = await mount(s, 120, 30);
    await m.type('b');
    const flat = () => m.frame().replace(/\s+/g, ' ');
    await waitFor(() => flat().includes('Step 2 calls for a blackhole (destination→source) only (l, the link menu, sets one direction); both ways, what goes source→destination is lost too — blackhole (both directions) anyway? y/N'), 'the question');
    expect(s.callsOf('applyLink')).toHaveLength(0);
  });

  it("p: a destination that paused by itself once the source's pause closed the connection is said so, not reported as a failure", async () => {
    const s = new FakeSession();
    s.qmp = async (side, execute) => {
      s.calls.push({ method: 'qmp', side, execute });
      if (side === 'destination') throw new Error('migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
      return {};
    };
    const m = await mount(s, 120, 30);
    await m.type('p');
    await waitForText(m.lastFrame, 'migrate-pause sent to source (the destination had paused by itself as the connection closed)');
    expect(m.frame()).not.toContain('failed');
  });

  it('p leaves a side that is paused already alone, and says so (QEMU would refuse it, after the pause that worked)', async () => {
    const s = new FakeSession({ snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-recover' }), destination: fakeSide('destination', { status: 'postcopy-paused' }) }) });
    const m = await mount(s);
    await m.type('p');
    await waitForText(m.lastFrame, 'migrate-pause sent to source (the destination is postcopy-paused)');
    expect(s.callsOf('qmp').map((c) => [c.side, c.execute])).toEqual([['source', 'migrate-pause']]);
  });

  it('p on libvirt pauses the source alone (libvirt refuses the destination; it follows as the connection closes)', async () => {
    const s = new FakeSession({ addresses: { 'libvirt.domain': 'pcl-guest', 'libvirt.dest-uri': 'qemu+tcp://10.213.0.2/system' } });
    const m = await mount(s, 160, 30);
    await m.type('p');
    await waitForText(m.lastFrame, 'migrate-pause sent to source (libvirt: source only)');
    expect(s.callsOf('qmp').map((c) => [c.side, c.execute])).toEqual([['source', 'migrate-pause']]);
    // Source paused already, destination still in postcopy (a blackhole): nothing to send, and the way out named.
    s.set({ snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-paused' }), destination: fakeSide('destination', { status: 'postcopy-active' }) }) });
    await m.type('p');
    await waitForText(m.lastFrame, 'libvirt: x-extra-monitor exec-oob migrate-pause pauses the destination');
    expect(s.callsOf('qmp')).toHaveLength(1);
    // Its console takes virsh lines first, and says so.
    await m.type(':');
    await waitForText(m.lastFrame, 'Console (virsh, QMP) to');
  });

  it('shows an action that failed in the header', async () => {
    const s = new FakeSession();
    s.applyLinkError = new Error('relay is not running');
    const m = await mount(s);
    await m.type('c');
    await waitForText(m.lastFrame, 'link cut (both directions) failed: relay is not');
  });

  it("console: : opens, typing + Enter sends to the target side, Shift-Tab switches side, Up recalls the other side's line", async () => {
    const m = await mount();
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to destination');
    await m.type('query-status', KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 1, 'qmpLine');
    expect(m.session.callsOf('qmpLine')[0]).toEqual({ method: 'qmpLine', side: 'destination', line: 'query-status' });
    await waitForText(m.lastFrame, '{"return": {}} from destination for query-status');
    await waitForText(m.lastFrame, 'destination › {"return": {}}');
    // Tab on an empty line does nothing; Shift-Tab switches the target.
    await m.type(KEYS.tab);
    await settle(20);
    expect(m.frame()).toContain('QMP console to destination');
    await m.type(KEYS.shiftTab);
    await waitForText(m.lastFrame, 'QMP console to source');
    // The source has no history of its own yet: Up recalls the destination's line.
    await m.type(KEYS.up);
    await waitForText(m.lastFrame, 'source> query-status');
    await m.type(KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 2, 'second qmpLine');
    expect(m.session.callsOf('qmpLine')[1]).toEqual({ method: 'qmpLine', side: 'source', line: 'query-status' });
    // Keys that mean something outside the console are typed inside it.
    await m.type('cq');
    await waitForText(m.lastFrame, 'source> cq');
    expect(m.onQuit).not.toHaveBeenCalled();
    expect(m.session.callsOf('applyLink')).toEqual([]);
    await m.type(KEYS.escape);
    await waitForText(m.lastFrame, 'Events');
  });

  it('console: a command QEMU refused on the side it is not for comes back on the right side, Enter away', async () => {
    const m = await mount();
    m.session.qmpLineReply = async (side, line) =>
      side === 'destination' && line.startsWith('migrate {') ? { ok: false, text: 'Error: Cannot resume if there is no paused migration' } : { ok: true, text: '{"return": {}}' };
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to destination');
    await m.type('migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}', KEYS.enter);
    await waitForText(m.lastFrame, 'QMP console to source');
    await waitForText(m.lastFrame, 'source> migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}');
    expect(m.frame()).toContain('the console turned to the source with your line');
    await m.type(KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 2, 'the resume sent again');
    expect(m.session.callsOf('qmpLine')[1]).toEqual({ method: 'qmpLine', side: 'source', line: 'migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}' });
    // A command for either side (query-migrate) that fails stays where it was.
    m.session.qmpLineReply = async () => ({ ok: false, text: 'Error: x' });
    await m.type('query-migrate', KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 3, 'query-migrate');
    await settle(40);
    expect(m.frame()).toContain('QMP console to source');
    expect(m.frame()).toMatch(/source> *\n/);
  });

  it('a long title is cut, not the clock (80 columns)', () => {
    const title = 'A recovery whose own channel dies (QEMU before 8.2 hangs)';
    const clock = 'qemu-recover-hang · t=31.7s';
    const t = headerTitle(title, clock, 80);
    expect(t.endsWith('…')).toBe(true);
    expect(`${t}  ${clock}`.length).toBeLessThanOrEqual(80);
    expect(headerTitle('Short', clock, 80)).toBe('Short');
    expect(headerTitle(title, clock, 40)).toBe('');
  });

  it('a notice the clock would leave no room for takes the clock\'s place too (80 columns)', async () => {
    const m = await mount(new FakeSession(), 80, 24);
    m.session.qmpLineReply = async (side) => (side === 'destination' ? { ok: false, text: 'Error: Cannot resume if there is no paused migration' } : { ok: true, text: '{"return": {}}' });
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to destination');
    await m.type('migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}', KEYS.enter);
    await waitForText(m.lastFrame, 'QMP console to source');
    const header = m.frame().split('\n')[0];
    expect(header).toContain('the console turned to the source with your line: Enter sends it there');
    expect(header).not.toContain('t=');
  });

  it('console: a setting the side took but does nothing with comes back on the side it acts on', async () => {
    const m = await mount();
    m.session.qmpLineReply = async () => ({ ok: true, text: '{"return": {}}' });
    await m.type(':');
    await waitForText(m.lastFrame, 'QMP console to destination');
    const line = 'migrate-set-capabilities {"capabilities":[{"capability":"auto-converge","state":true}]}';
    await m.type(line, KEYS.enter);
    await waitForText(m.lastFrame, 'QMP console to source');
    expect(m.frame()).toContain('the console turned to the source with your line');
    await m.type(KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 2, 'the setting sent again');
    expect(m.session.callsOf('qmpLine')[1]).toEqual({ method: 'qmpLine', side: 'source', line });
    // On its own side it stays.
    await settle(40);
    expect(m.frame()).toContain('QMP console to source');
    expect(m.frame()).toMatch(/source> *\n/);
  });

  it('console: keys typed faster than renders still land in order', async () => {
    const m = await mount();
    for (const k of [':', 'query-', 'status', KEYS.enter, KEYS.shiftTab, 'stop', KEYS.enter]) m.stdin.write(k);
    await waitFor(() => m.session.callsOf('qmpLine').length === 2, 'two qmpLine calls');
    expect(m.session.callsOf('qmpLine').map((c) => [c.side, c.line])).toEqual([
      ['destination', 'query-status'],
      ['source', 'stop'],
    ]);
  });

  it('console: Tab completes a command name, and errors show as QEMU words them', async () => {
    const s = new FakeSession();
    s.qmpLineReply = async (_side, line) => ({ ok: false, text: `The command ${line.split(' ')[0]} has not been found` });
    const m = await mount(s);
    await m.type(':', 'migrate-rec', KEYS.tab);
    await waitForText(m.lastFrame, 'destination> migrate-recover');
    await m.type('{"uri": "tcp:127.0.0.1:4445"}', KEYS.enter);
    await waitFor(() => s.callsOf('qmpLine').length === 1, 'qmpLine');
    expect(s.callsOf('qmpLine')[0].line).toBe('migrate-recover {"uri": "tcp:127.0.0.1:4445"}');
    await waitForText(m.lastFrame, 'The command migrate-recover has not been found');
    await m.type('x-q', KEYS.tab);
    await waitForText(m.lastFrame, 'destination> x-query-pages');
  });

  it("console: Tab after a command name and a space fills in this run's address for it (resume once the source is paused)", async () => {
    const addresses = { 'incoming.listen': 'tcp:127.0.0.1:7001', 'incoming.connect': 'tcp:127.0.0.1:7002', 'recover.listen': 'tcp:127.0.0.1:7003', 'recover.connect': 'tcp:127.0.0.1:7004' };
    const s = new FakeSession({ addresses });
    const m = await mount(s, 100, 30);
    await m.type(':', 'migrate-incoming ', KEYS.tab);
    await waitForText(m.lastFrame, 'destination> migrate-incoming {"uri": "tcp:127.0.0.1:7001"}');
    await m.type(KEYS.enter, KEYS.shiftTab, 'migrate ', KEYS.tab);
    await waitForText(m.lastFrame, 'source> migrate {"uri": "tcp:127.0.0.1:7002"}');
    await m.type(KEYS.enter);
    await waitFor(() => s.callsOf('qmpLine').length === 2, 'two qmpLine calls');
    s.set({ snapshot: pausedSnapshot() });
    await m.type('migrate ', KEYS.tab);
    await waitForText(m.lastFrame, 'source> migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}');
    // A whole name no other command extends needs no space first; "migrate" still lists its completions.
    await m.type(KEYS.enter, KEYS.shiftTab, 'migrate-recover', KEYS.tab);
    await waitForText(m.lastFrame, 'destination> migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    await m.type(KEYS.enter, KEYS.shiftTab);
    // No address for a command that takes none: Tab leaves the line as it is.
    await m.type(KEYS.enter, 'query-status ', KEYS.tab);
    await waitForText(m.lastFrame, 'source> query-status');
    expect(m.frame()).not.toContain('query-status {');
    // A command for the other side: Tab turns the console there, with the address.
    await m.type(KEYS.enter, 'migrate-recover ', KEYS.tab);
    await waitForText(m.lastFrame, 'destination> migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    expect(m.frame()).toContain('console → destination: migrate-recover is its command');
  });

  it('console: "migrate" and Tab lists the migrate-* commands and says a second Tab fills its arguments; on the wrong side it turns there', async () => {
    const addresses = { 'incoming.listen': 'tcp:127.0.0.1:7001', 'incoming.connect': 'tcp:127.0.0.1:7002' };
    const s = new FakeSession({ addresses });
    const m = await mount(s, 100, 30);
    // The console opens on the destination; a learner types the source's command there.
    await m.type(':', 'migrate', KEYS.tab);
    await waitForText(m.lastFrame, "(Tab again: migrate's arguments)");
    expect(m.frame()).toContain('migrate-incoming');
    await m.type(KEYS.tab);
    await waitForText(m.lastFrame, 'source> migrate {"uri": "tcp:127.0.0.1:7002"}');
    expect(m.frame()).toContain('console → source: migrate is its command');
    // On its own side, a second Tab fills at once; a name with nothing to fill says nothing more.
    await m.type(KEYS.ctrlU, 'migrate', KEYS.tab);
    await waitForText(m.lastFrame, "(Tab again: migrate's arguments)");
    await m.type(KEYS.tab);
    await waitForText(m.lastFrame, 'source> migrate {"uri": "tcp:127.0.0.1:7002"}');
    await m.type(KEYS.ctrlU, 'query-migrate', KEYS.tab);
    await waitForText(m.lastFrame, 'query-migrate-parameters');
    expect(m.frame()).not.toContain('Tab again');
  });

  it("console: a line the lab refuses, naming the command to send instead, leaves that command in the console on its side", async () => {
    const s = new FakeSession();
    const early =
      'Error: refused by the lab: the destination is not listening for the recovery yet, and a QEMU 7.2 source whose resume finds no listener stays in postcopy-recover for good: first, on the destination, migrate-recover {"uri": "tcp:127.0.0.1:7003"}';
    const past = "Error: refused by the lab: that address is the destination's own listener, so no fault of the lab would reach the migration; the lab's link is at tcp:127.0.0.1:7002: use migrate {\"uri\": \"tcp:127.0.0.1:7002\"}";
    s.qmpLineReply = async (_side, line) => ({ ok: false, text: line.includes('resume') ? early : line.includes('7001') ? past : 'Error: refused by the lab: the link is cut, so the resume would not get through: press u to restore the link, then resume' });
    const m = await mount(s, 120, 30);
    await m.type(':', KEYS.shiftTab, 'migrate {"uri": "tcp:127.0.0.1:7004", "resume": true}', KEYS.enter);
    await waitForText(m.lastFrame, 'destination> migrate-recover {"uri": "tcp:127.0.0.1:7003"}');
    expect(m.frame()).toContain("Enter sends the lab's command to the destination");
    await m.type(KEYS.enter, KEYS.shiftTab, 'migrate {"uri": "tcp:127.0.0.1:7001"}', KEYS.enter);
    await waitForText(m.lastFrame, 'source> migrate {"uri": "tcp:127.0.0.1:7002"}');
    // A refusal that names no command to send instead (press u) leaves the console empty.
    expect(refusalFix('Error: refused by the lab: the link is cut, so the resume would not get through: press u to restore the link, then resume', 'migrate {}')).toBeNull();
    // QEMU's own errors are not read for commands.
    expect(refusalFix("Error: Parameter 'uri' is missing; try migrate-recover {\"uri\": \"tcp:x:1\"}", 'migrate-recover')).toBeNull();
    // The stand-in source's wording names the command once, with its address.
    expect(refusalFix('Error: refused by the lab: the destination is not listening for the recovery yet, and the resume needs a listener: first, on the destination, migrate-recover {"uri": "tcp:127.0.0.1:7003"}', 'migrate {}')).toEqual({ line: 'migrate-recover {"uri": "tcp:127.0.0.1:7003"}', side: 'destination' });
  });

  it('console: a rejected qmpLine shows as an error line', async () => {
    const s = new FakeSession();
    s.qmpLineReply = async () => {
      throw new Error('QMP connection closed');
    };
    const m = await mount(s);
    await m.type(':', 'stop', KEYS.enter);
    await waitForText(m.lastFrame, 'Error: QMP connection closed');
  });

  it('console: left/right move a visible cursor and typing inserts there', async () => {
    const m = await mount();
    await m.type(':', 'migrate {}', KEYS.left, '"uri": "tcp:h:1"', KEYS.home, KEYS.right, KEYS.backspace, 'M', KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 1, 'qmpLine');
    expect(m.session.callsOf('qmpLine')[0].line).toBe('Migrate {"uri": "tcp:h:1"}');
  });

  it('console: PgUp scrolls a long reply back to its first line, PgDn to its end', async () => {
    const s = new FakeSession();
    const reply = Array.from({ length: 40 }, (_, i) => `line ${i}`).join('\n');
    s.qmpLineReply = async () => ({ ok: true, text: reply });
    const m = await mount(s, 80, 24);
    await m.type(':', 'query-migrate', KEYS.enter);
    await waitForText(m.lastFrame, 'destination › line 39');
    expect(m.frame()).not.toContain('destination> query-migrate');
    for (let i = 0; i < 8 && !m.frame().includes('destination> query-migrate'); i++) await m.type(KEYS.pageUp);
    expect(m.frame()).toContain('destination› line 0'.replace('›', ' ›'));
    expect(m.frame()).toMatch(/↓ more \(\d+ lines\)/);
    for (let i = 0; i < 8 && m.frame().includes('↓ more'); i++) await m.type(KEYS.pageDown);
    expect(m.frame()).toContain('destination › line 39');
  });

  it('[ re-reads the step before, ] comes back, and the panel says which step it shows', async () => {
    const m = await mount();
    await waitForText(m.lastFrame, 'step 2 of 3 (current)');
    await m.type('[');
    await waitForText(m.lastFrame, 'step 1 of 3 (done) — ] next');
    expect(m.frame()).toContain('Start the migration.');
    await m.type('[');
    await settle(20);
    expect(m.frame()).toContain('step 1 of 3 (done)');
    await m.type(']');
    await waitForText(m.lastFrame, 'step 2 of 3 (current)');
    // The current step is the last one that can be read.
    await m.type(']');
    await settle(20);
    expect(m.frame()).toContain('step 2 of 3 (current)');
  });

  it('j/k and PgDn scroll a long step text; Tab moves the scroll keys to the event log', async () => {
    const s = new FakeSession();
    const steps = s.getState().steps.map((st) =>
      st.index === 1 ? { ...st, text: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ') + ' LAST-WORD' } : st,
    );
    s.set({ steps });
    for (let i = 0; i < 12; i++) s.pushEvent({ kind: 'info', text: `event number ${i}` });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, /↓ more \(\d+ lines\)/);
    expect(m.frame()).not.toContain('LAST-WORD');
    for (let i = 0; i < 10 && m.frame().includes('↓ more'); i++) await m.type(KEYS.pageDown);
    expect(m.frame()).toContain('LAST-WORD');
    expect(m.frame()).toContain('Hint 1/2: Press c');
    await m.type('k');
    await waitForText(m.lastFrame, /↓ more \(2 lines\)/);
    // The log: back to its first event.
    expect(m.frame()).not.toContain('event number 0');
    await m.type(KEYS.tab);
    await waitForText(m.lastFrame, 'scroll here');
    await m.type(KEYS.home);
    await waitForText(m.lastFrame, 'event number 0');
    s.pushEvent({ kind: 'info', text: 'a newer event' });
    await settle(60);
    expect(m.frame()).toContain('event number 0');
    await m.type(KEYS.end);
    await waitForText(m.lastFrame, 'a newer event');
  });

  it('a step that ends while its text is read halfway stays on screen; ] goes on; read to its end, the panel follows', async () => {
    const long = (tag: string) => Array.from({ length: 300 }, (_, i) => `${tag}${i}`).join(' ');
    const s = new FakeSession();
    const steps = s.getState().steps.map((st) => (st.index === 1 ? { ...st, text: long('w') } : st.index === 2 ? { ...st, text: `NEXT-STEP ${long('n')}` } : st));
    s.set({ steps });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, /↓ more \(\d+ lines\)/);
    await m.type(KEYS.pageDown);
    await waitForText(m.lastFrame, /↑ \d+ more lines? above/);
    const midway = m.frame();
    // The lab moves on by itself (a step that ends by the clock).
    s.set({ currentStep: 2, steps: s.getState().steps.map((st) => (st.index === 1 ? { ...st, status: 'done' } : st.index === 2 ? { ...st, status: 'active' } : st)) });
    await waitForText(m.lastFrame, 'Steps 3/3');
    expect(m.frame()).not.toContain('NEXT-STEP');
    expect(m.frame()).toMatch(/step 2(\/| of )3 \(done\) — \[ prev {2}\] next/);
    const words = (f: string) => f.match(/\bw\d+\b/g);
    expect(words(m.frame())).toEqual(words(midway));
    await m.type(']');
    await waitForText(m.lastFrame, 'NEXT-STEP');
    expect(m.frame()).toContain('(current)');
    // Read to its end, the step is let go: what comes next shows when it comes.
    for (let i = 0; i < 20 && m.frame().includes('↓ more'); i++) await m.type(KEYS.pageDown);
    s.set({ currentStep: -1, steps: s.getState().steps.map((st) => ({ ...st, status: 'done' })) });
    await waitForText(m.lastFrame, 'All steps done');
  });

  it('a step that ends by itself before it could be read stays on screen unscrolled; one the person acted in does not', async () => {
    const s = new FakeSession();
    const text = (tag: string) => `${tag} ${Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ')}`;
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, text: text(`TEXT-${st.index}`) })) });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, 'TEXT-1');
    const advance = (to: number) =>
      s.set({ currentStep: to, steps: s.getState().steps.map((st) => ({ ...st, status: st.index < to ? 'done' : st.index === to ? 'active' : 'pending' })) });
    // The lab's clock ends step 2 a moment after it appeared: it stays, with a word on why.
    advance(2);
    await waitForText(m.lastFrame, 'step 2 ended while you read it: ] goes on');
    expect(m.frame()).toContain('TEXT-1');
    // The key bar leads with the way on (at 80 columns "[] steps" had no room).
    expect(m.frame().split('\n').at(-1)).toContain('] next step');
    expect(m.frame()).toMatch(/step 2(\/| of )3 \(done\)/);
    await m.type(']');
    await waitForText(m.lastFrame, 'TEXT-2');
    // Here the person acts (show me) with the whole text in view: when the step ends, the panel
    // follows the lab.
    s.set({ steps: s.getState().steps.map((st) => (st.index === 2 ? { ...st, text: 'TEXT-2 short.' } : st)) });
    await m.type('s');
    await waitFor(() => m.session.callsOf('showMe').length === 1, 'show me');
    s.set({ currentStep: -1, steps: s.getState().steps.map((st) => ({ ...st, status: 'done' })) });
    await waitForText(m.lastFrame, 'All steps done');
  });

  it('a step the lab passed without ever showing it (done at its start) stays on screen, though the step before was acted in', async () => {
    const s = new FakeSession();
    const m = await mount(s, 80, 24);
    s.set({
      currentStep: 0,
      steps: s.getState().steps.map((st) => ({ ...st, status: st.index === 0 ? 'active' : 'pending', text: `TEXT-${st.index} short.` })),
    });
    await waitForText(m.lastFrame, 'TEXT-0');
    await m.type('s');
    await waitFor(() => m.session.callsOf('showMe').length === 1, 'show me');
    // Step 2's condition held when it began (u pressed during step 1): the lab went from 1 to 3.
    s.set({ currentStep: 2, steps: s.getState().steps.map((st) => ({ ...st, status: st.index < 2 ? 'done' : 'active' })) });
    await waitForText(m.lastFrame, 'step 2 ended while you read it: ] goes on');
    expect(m.frame()).toContain('TEXT-1');
    await m.type(']');
    await waitForText(m.lastFrame, 'TEXT-2');
  });

  it('a step acted in from the console, whose text fitted the panel before the console shrank it, is let go', async () => {
    const s = new FakeSession();
    const text = `FITS-1 ${Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ')}`;
    s.set({ steps: s.getState().steps.map((st) => (st.index === 1 ? { ...st, text } : st.index === 2 ? { ...st, text: 'NEXT-2 short.' } : st)) });
    const m = await mount(s, 100, 30);
    await waitForText(m.lastFrame, 'FITS-1');
    expect(m.frame()).not.toMatch(/↓ more/);
    await m.type(':', 'query-status', KEYS.enter);
    await waitFor(() => m.session.callsOf('qmpLine').length === 1, 'the console line');
    s.set({ currentStep: 2, steps: s.getState().steps.map((st) => ({ ...st, status: st.index < 2 ? 'done' : 'active' })) });
    await waitForText(m.lastFrame, 'NEXT-2');
    expect(m.frame()).not.toContain('ended while you read it');
  });

  it('steps replayed for the person (a rewind) are not kept when they end', async () => {
    const s = new FakeSession();
    const text = (tag: string) => `${tag} ${Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ')}`;
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, text: text(`TEXT-${st.index}`) })), replaying: { why: 'rewind', step: 2, to: 2 } });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, 'TEXT-1');
    s.set({ currentStep: 2, replaying: null, steps: s.getState().steps.map((st) => ({ ...st, status: st.index < 2 ? 'done' : 'active' })) });
    await waitForText(m.lastFrame, 'TEXT-2');
    expect(m.frame()).not.toContain('ended while you read it');
  });

  it('a step the person acted in stays too when part of its text never came into view', async () => {
    const s = new FakeSession();
    const long = `LONG-1 ${Array.from({ length: 120 }, (_, i) => `w${i}`).join(' ')}`;
    s.set({ steps: s.getState().steps.map((st) => (st.index === 1 ? { ...st, text: long } : st)) });
    const m = await mount(s, 80, 24);
    await waitForText(m.lastFrame, /↓ more \(\d+ lines\)/);
    await m.type('s');
    await waitFor(() => m.session.callsOf('showMe').length === 1, 'show me');
    s.set({ currentStep: 2, steps: s.getState().steps.map((st) => ({ ...st, status: st.index < 2 ? 'done' : 'active' })) });
    await waitForText(m.lastFrame, 'step 2 ended while you read it: ] goes on');
    expect(m.frame()).toContain('LONG-1');
  });

  it('y puts the command of the last hint shown into the console, aimed at the side it names', async () => {
    const s = new FakeSession();
    const steps = s.getState().steps.map((st) =>
      st.index === 1 ? { ...st, hints: ['Press c', 'On the source: migrate {"uri": "tcp:127.0.0.1:9"}'], hintsShown: 1 } : st,
    );
    s.set({ steps });
    const m = await mount(s);
    await m.type('y');
    await waitForText(m.lastFrame, 'no QMP command');
    s.set({ steps: steps.map((st) => (st.index === 1 ? { ...st, hintsShown: 2 } : st)) });
    await waitForText(m.lastFrame, 'Hint 2/2');
    await m.type('y');
    await waitForText(m.lastFrame, 'QMP console to source');
    expect(m.frame()).toContain('source> migrate {"uri": "tcp:127.0.0.1:9"}');
    await m.type(KEYS.enter);
    await waitFor(() => s.callsOf('qmpLine').length === 1, 'qmpLine');
    expect(s.callsOf('qmpLine')[0]).toMatchObject({ side: 'source', line: 'migrate {"uri": "tcp:127.0.0.1:9"}' });
  });

  it('h past the last hint says they are all shown and what s does, instead of nothing', async () => {
    const s = new FakeSession();
    s.set({ steps: s.getState().steps.map((st) => (st.index === 1 ? { ...st, hints: ['Press c'], hintsShown: 1 } : st)) });
    const m = await mount(s, 100, 30);
    await waitForText(m.lastFrame, 'Hint 1/1');
    await m.type('h');
    await waitForText(m.lastFrame, "the step's one hint is shown, under its text; s (show me) does the step");
    expect(s.callsOf('nextHint')).toHaveLength(0);
  });

  it('q while postcopy-paused asks first and says what happens to the guest', async () => {
    const s = new FakeSession({
      snapshot: pausedSnapshot(),
    });
    const m = await mount(s);
    await m.type('q');
    const out = await waitForText(m.lastFrame, 'Quit?');
    expect(out).toContain('postcopy-paused (source and destination)');
    expect(out).toContain("The guest's memory is split between the two hosts: quitting stops both VMs and the guest is lost.");
    // No wrapped line begins with the blank it broke at.
    const quitLines = out.split('\n').slice(out.split('\n').findIndex((l) => l.startsWith('Quit?')) + 1);
    expect(quitLines.filter((l) => /^ \S/.test(l))).toEqual([]);
    expect(m.onQuit).not.toHaveBeenCalled();
    await m.type('n');
    await waitForText(m.lastFrame, 'Events');
    expect(m.onQuit).not.toHaveBeenCalled();
    await m.type('q');
    await waitForText(m.lastFrame, 'Quit?');
    await m.type('y');
    await waitFor(() => m.onQuit.mock.calls.length === 1, 'onQuit');
  });

  it('q during postcopy-active asks too: the guest is lost just as when paused', async () => {
    const s = new FakeSession({
      snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-active' }), destination: fakeSide('destination', { status: 'postcopy-recover' }) }),
    });
    const m = await mount(s);
    await m.type('q');
    const out = await waitForText(m.lastFrame, 'Quit?');
    expect(out).toContain('postcopy-active (source), postcopy-recover (destination)');
    expect(out).toContain('Letting the migration complete first keeps it.');
    expect(m.onQuit).not.toHaveBeenCalled();
    await m.type('y');
    await waitFor(() => m.onQuit.mock.calls.length === 1, 'onQuit');
  });

  it('q in precopy quits at once: the guest still runs whole on the source', async () => {
    const s = new FakeSession({
      snapshot: fakeSnapshot({ source: fakeSide('source', { status: 'active' }), destination: fakeSide('destination', { status: 'active' }) }),
    });
    const m = await mount(s);
    await m.type('q');
    await waitFor(() => m.onQuit.mock.calls.length === 1, 'onQuit');
  });

  it('? opens help and Esc closes it; l opens the link menu and Enter applies the preset', async () => {
    const m = await mount();
    await m.type('?');
    await waitForText(m.lastFrame, 'cut the link both ways');
    // The help scrolls to its end on a short terminal.
    await m.type(KEYS.end);
    await waitForText(m.lastFrame, 'no key to skip one');
    await m.type(KEYS.escape);
    await waitForText(m.lastFrame, 'Events');
    await m.type('l');
    await waitForText(m.lastFrame, 'Link: fault and direction');
    await m.type(...Array<string>(5).fill(KEYS.down), KEYS.right, KEYS.enter);
    await waitFor(() => m.session.callsOf('applyLink').length === 1, 'applyLink');
    expect(m.session.callsOf('applyLink')[0].fault).toEqual({ kind: 'latency', ms: 100, jitterMs: 0, direction: 'source-to-destination' });
    await waitForText(m.lastFrame, 'Events');
    await waitForText(m.lastFrame, 'link latency 100 ms (source→destination)');
  });

  it('the link menu blackholes one direction only, and the notice says which', async () => {
    const m = await mount();
    await m.type('l');
    await waitForText(m.lastFrame, 'Link: fault and direction');
    // d cycles the direction: both → source→destination → destination→source.
    await m.type(KEYS.down, 'd', 'd');
    await waitForText(m.lastFrame, '›destination→source');
    expect(m.frame()).toContain('› blackhole');
    await m.type(KEYS.enter);
    await waitFor(() => m.session.callsOf('applyLink').length === 1, 'applyLink');
    expect(m.session.callsOf('applyLink')[0].fault).toEqual({ kind: 'blackhole', direction: 'destination-to-source' });
    await waitForText(m.lastFrame, 'link blackhole (destination→source)');
  });

  it('the link menu applies the unlimited rate, and Esc closes it without applying', async () => {
    const m = await mount();
    await m.type('l');
    await waitForText(m.lastFrame, 'Link: fault and direction');
    await m.type(KEYS.escape);
    await waitForText(m.lastFrame, 'Events');
    expect(m.session.callsOf('applyLink')).toEqual([]);
    await m.type('l');
    await waitForText(m.lastFrame, 'Link: fault and direction');
    await m.type(...Array<string>(12).fill(KEYS.down));
    await waitForText(m.lastFrame, '› no rate cap');
    await m.type(KEYS.enter);
    await waitFor(() => m.session.callsOf('applyLink').length === 1, 'applyLink');
    expect(m.session.callsOf('applyLink')[0].fault).toEqual({ kind: 'bandwidth', bytesPerSec: 0, direction: 'both' });
    await waitForText(m.lastFrame, 'link no rate cap (both directions)');
  });

  it('live panels follow the session, and a finished run is reported once', async () => {
    const m = await mount();
    m.session.setSnapshot({ destination: fakeSide('destination', { status: 'postcopy-recover' }) });
    m.session.pushEvent({ kind: 'state', side: 'destination', text: 'postcopy-paused -> postcopy-recover' });
    await waitForText(m.lastFrame, 'postcopy-paused -> postcopy-recover');
    expect(m.frame()).toMatch(/state\s+postcopy-active\s+postcopy-recover/);
    const summary: RunSummary = { ok: true, labId: 'link-cut-recovery', durationMs: 1000, verified: true, pagesResent: 1, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 1 };
    m.session.set({ finished: summary });
    await waitFor(() => m.onFinished.mock.calls.length === 1, 'onFinished');
    expect(m.onFinished).toHaveBeenCalledWith(summary);
  });

  it('a lab whose last step ended before it could be read keeps its screen until Enter; a failure or a step acted in does not', async () => {
    const summary: RunSummary = { ok: true, labId: 'link-cut-recovery', durationMs: 1000, verified: true, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0 };
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    // The runner leaves its last step current when the lab finishes.
    const finish = (s: FakeSession, finished: RunSummary) => s.set({ steps: s.getState().steps.map((st) => ({ ...st, status: 'done' })), finished });
    const s = new FakeSession();
    s.set({ steps: s.getState().steps.map((st) => ({ ...st, text: `LAST-${st.index} ${words}` })) });
    const m = await mount(s);
    s.set({ currentStep: 2, steps: s.getState().steps.map((st) => ({ ...st, status: st.index < 2 ? 'done' : 'active' })) });
    await waitForText(m.lastFrame, 'step 2 ended while you read it');
    await m.type(']');
    await waitForText(m.lastFrame, 'LAST-2');
    finish(s, summary);
    await waitForText(m.lastFrame, 'lab complete: Enter shows the summary');
    expect(m.frame()).toContain('LAST-2');
    expect(m.frame()).toContain('Enter summary');
    expect(m.onFinished).not.toHaveBeenCalled();
    await m.type(KEYS.enter);
    await waitFor(() => m.onFinished.mock.calls.length === 1, 'onFinished on Enter');
    expect(m.onFinished).toHaveBeenCalledWith(summary);
    cleanup?.();

    // One whose last step was read, while the person reads an earlier step ([), is held too.
    const r = new FakeSession();
    const reader = await mount(r);
    await reader.type('[');
    await waitForText(reader.lastFrame, /step 1(\/| of )3/);
    finish(r, summary);
    await waitForText(reader.lastFrame, 'lab complete: Enter shows the summary');
    expect(reader.onFinished).not.toHaveBeenCalled();
    await reader.type(KEYS.enter);
    await waitFor(() => reader.onFinished.mock.calls.length === 1, 'onFinished on Enter, reader');
    cleanup?.();

    // A failed run goes to its end screen at once: the failure is what there is to read.
    const f = new FakeSession();
    const failed = await mount(f);
    finish(f, { ...summary, ok: false });
    await waitFor(() => failed.onFinished.mock.calls.length === 1, 'onFinished, failed');
    cleanup?.();

    // So does a lab whose last step the person acted in (show me).
    const a = new FakeSession();
    const acted = await mount(a);
    await acted.type('s');
    await waitFor(() => acted.session.callsOf('showMe').length === 1, 'show me');
    finish(a, summary);
    await waitFor(() => acted.onFinished.mock.calls.length === 1, 'onFinished, acted');
  });

  it('fits 80x24 exactly one line short of the terminal, with ? on the key bar', async () => {
    const m = await mount(new FakeSession(), 80, 24);
    const lines = m.frame().split('\n');
    expect(lines).toHaveLength(23);
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(lines.at(-1)).toContain('? help');
    expect(m.frame()).toContain('Counters');
    expect(m.frame()).toContain('Pages');
    expect(m.frame()).toContain('Link relay');
  });
});
