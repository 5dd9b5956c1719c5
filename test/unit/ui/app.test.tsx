import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { render } from 'ink-testing-library';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LabSessionApi, RunSummary } from '../../../src/types.js';
import { App, EXIT, retryableStep, SessionLifecycle, SUMMARY_KEY_GRACE_MS } from '../../../src/ui/app.js';
import { FakeSession, fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';
import { KEYS, plain, settle, waitFor, waitForText } from './helpers.js';

const LABS = [
  { id: 'link-cut-recovery', title: 'Link cut recovery', summary: 'Cut the link mid-postcopy and recover.' },
  { id: 'blackhole', title: 'Blackhole', summary: 'Packets vanish; nobody notices.' },
];

let dir: string;
let progressPath: string;
let unmount: (() => void) | null = null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pcl-app-'));
  progressPath = join(dir, 'state', 'progress.json');
});
afterEach(() => {
  unmount?.();
  unmount = null;
  rmSync(dir, { recursive: true, force: true });
});

function mount(opts: { openLab?: (id: string) => Promise<LabSessionApi>; initialLab?: string } = {}) {
  const sessions: FakeSession[] = [];
  const openLab =
    opts.openLab ??
    (async (id: string) => {
      const lab = LABS.find((l) => l.id === id)!;
      const s = new FakeSession({}, lab.id, lab.title, lab.summary);
      sessions.push(s);
      return s;
    });
  const lifecycle = new SessionLifecycle();
  const onExit = vi.fn<(code: number) => void>();
  const r = render(
    <App labs={LABS} openLab={openLab} initialLab={opts.initialLab} progressPath={progressPath} lifecycle={lifecycle} onExit={onExit} sampleIntervalMs={20} />,
  );
  unmount = r.unmount;
  const type = async (...keys: string[]) => {
    for (const k of keys) {
      r.stdin.write(k);
      await settle(2);
    }
  };
  return { ...r, sessions, lifecycle, onExit, type, frame: () => plain(r.lastFrame()) };
}

const SUMMARY: RunSummary = { ok: true, labId: 'link-cut-recovery', durationMs: 61_000, verified: true, pagesResent: 9, duplicatesDiscarded: 4, blocktimeMs: 120, recoveries: 1 };

describe('App', () => {
  it('picker → lab → summary → progress saved → back to the picker with a ✓', async () => {
    const m = mount();
    await waitForText(m.lastFrame, '0/2 labs completed');
    await settle();
    await m.type(KEYS.enter);
    await waitForText(m.lastFrame, 'Steps 2/3');
    expect(m.sessions).toHaveLength(1);
    expect(m.lifecycle.get()).toBe(m.sessions[0]);
    m.sessions[0].set({ finished: SUMMARY });
    const out = await waitForText(m.lastFrame, '✓ Lab complete: Link cut recovery');
    expect(out).toMatch(/time\s+1m 01s/);
    // The session is stopped as soon as the run is over.
    await waitFor(() => m.sessions[0].callsOf('stop').length === 1, 'stop');
    expect(JSON.parse(readFileSync(progressPath, 'utf8')).completed['link-cut-recovery'].durationMs).toBe(61_000);
    // An Enter typed for the lab screen as it ended does not skip the end screen unread; Esc
    // (the console's close key, pressed whenever) never does.
    await m.type(KEYS.enter);
    await settle(60);
    expect(m.frame()).toContain('✓ Lab complete: Link cut recovery');
    await settle(SUMMARY_KEY_GRACE_MS);
    await m.type(KEYS.escape);
    await settle(60);
    expect(m.frame()).toContain('✓ Lab complete: Link cut recovery');
    await m.type(KEYS.enter);
    await waitForText(m.lastFrame, '1/2 labs completed');
    expect(m.frame()).toMatch(/✓ Link cut recovery/);
  });

  it('opened without the picker (lab <id>), a lab starts on a screen of its own, not the picker with a busy line', async () => {
    let release: () => void = () => {};
    const opened = new Promise<void>((r) => (release = r));
    const m = mount({
      initialLab: 'link-cut-recovery',
      openLab: async (id) => {
        await opened;
        const lab = LABS.find((l) => l.id === id)!;
        return new FakeSession({}, lab.id, lab.title, lab.summary);
      },
    });
    await waitForText(m.lastFrame, 'Starting link-cut-recovery: the VMs and the link…');
    expect(m.frame()).not.toContain('labs completed');
    release();
    await waitForText(m.lastFrame, 'Steps 2/3');
  });

  it('a summary taller than the terminal (24 rows) scrolls with the keys, its title and keys staying on screen', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    const long = Array.from({ length: 30 }, (_, i) => `Lesson line ${i}.`).join('\n\n');
    (m.sessions[0] as unknown as { summaryText: string }).summaryText = long;
    m.sessions[0].set({ finished: SUMMARY });
    await waitForText(m.lastFrame, '✓ Lab complete: Link cut recovery');
    expect(m.frame()).toMatch(/↑↓ scroll \(\d+ more below\)/);
    expect(m.frame()).not.toContain('Lesson line 29.');
    await settle(SUMMARY_KEY_GRACE_MS);
    await m.type(KEYS.end);
    await waitForText(m.lastFrame, 'Lesson line 29.');
    expect(m.frame()).not.toContain('✓ Lab complete');
    await m.type(KEYS.home);
    await waitForText(m.lastFrame, '✓ Lab complete: Link cut recovery');
    await m.type(KEYS.pageDown);
    await waitFor(() => !m.frame().includes('✓ Lab complete'), 'a page down');
    expect(m.frame()).toContain('Enter labs');
  });

  it('n on the summary opens the next lab', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    m.sessions[0].set({ finished: SUMMARY });
    await waitForText(m.lastFrame, 'n next lab');
    await settle();
    await m.type('n');
    await waitFor(() => m.sessions.length === 2, 'second lab');
    expect(m.sessions[1].labId).toBe('blackhole');
    await waitForText(m.lastFrame, 'Blackhole');
  });

  it('a failed run is not marked completed', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    m.sessions[0].set({ finished: { ...SUMMARY, ok: false, verified: false, failure: { message: 'pages lost' } } });
    await waitForText(m.lastFrame, '✗ Lab failed');
    expect(() => readFileSync(progressPath)).toThrow();
  });

  it('q (confirmed: the fake lab is in postcopy) asks the app to exit with 0; the app stops the lab through the lifecycle', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    await settle();
    await m.type('q');
    await waitForText(m.lastFrame, 'Quit?');
    await m.type('y');
    await waitFor(() => m.onExit.mock.calls.length === 1, 'onExit');
    expect(m.onExit).toHaveBeenCalledWith(EXIT.ok);
    await m.lifecycle.stopAll();
    expect(m.sessions[0].callsOf('stop')).toHaveLength(1);
  });

  it('q while paused asks first; Ctrl-C does not ask and exits with 130', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    m.sessions[0].setSnapshot({ destination: fakeSide('destination', { status: 'postcopy-paused' }) });
    await waitForText(m.lastFrame, 'postcopy-paused');
    await settle();
    await m.type('q');
    await waitForText(m.lastFrame, 'the guest is lost');
    expect(m.onExit).not.toHaveBeenCalled();
    await m.type(KEYS.ctrlC);
    await waitFor(() => m.onExit.mock.calls.length === 1, 'onExit');
    expect(m.onExit).toHaveBeenCalledWith(EXIT.interrupted);
  });

  it('a lab that fails to open returns to the picker and says why', async () => {
    const m = mount({ openLab: async () => Promise.reject(new Error('qemu-system-x86_64 not found')) });
    await waitForText(m.lastFrame, 'labs completed');
    await settle();
    // Typed without waiting for a frame in between: Enter must open the row ↓ moved to.
    m.stdin.write(KEYS.down);
    m.stdin.write(KEYS.enter);
    await waitForText(m.lastFrame, 'Could not open blackhole: qemu-system-x86_64 not found');
  });

  it('reports a corrupt progress file and starts fresh', async () => {
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(progressPath, 'not json');
    const m = mount();
    await waitForText(m.lastFrame, 'is corrupt');
    expect(m.frame()).toContain('0/2 labs completed');
  });

  it('r resets the selected lab after a confirmation; n keeps it', async () => {
    mkdirSync(join(dir, 'state'), { recursive: true });
    const entry = { completedAt: '2025-01-01T00:00:00.000Z', durationMs: 1000, bestMs: 1000, count: 1 };
    writeFileSync(progressPath, JSON.stringify({ version: 1, completed: { 'link-cut-recovery': entry, blackhole: entry } }));
    const m = mount();
    await waitForText(m.lastFrame, '2/2 labs completed');
    await settle();
    await m.type('r');
    await waitForText(m.lastFrame, 'Reset progress for Link cut recovery? y/n');
    await m.type('n');
    await waitFor(() => !m.frame().includes('y/n'), 'confirmation gone');
    expect(m.frame()).toContain('2/2 labs completed');
    await m.type('r', 'y');
    await waitForText(m.lastFrame, '1/2 labs completed');
    expect(Object.keys(JSON.parse(readFileSync(progressPath, 'utf8')).completed)).toEqual(['blackhole']);
  });

  it('says the terminal is too small, keeps the lab, and comes back on resize', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    const setColumns = (n: number) => {
      Object.defineProperty(m.stdout, 'columns', { value: n, configurable: true });
      m.stdout.emit('resize');
    };
    setColumns(70);
    const small = await waitForText(m.lastFrame, 'Terminal too small: need 80x24, have 70x24');
    expect(small).not.toContain('Steps 2/3');
    // Keys other than Ctrl-C wait: c does nothing while the lab is hidden.
    await m.type('c');
    await settle(20);
    expect(m.sessions[0].callsOf('applyLink')).toEqual([]);
    setColumns(100);
    await waitForText(m.lastFrame, 'Steps 2/3');
    expect(m.frame()).not.toContain('too small');
  });

  it('shows live state of the lab while it runs', async () => {
    const m = mount({ initialLab: 'link-cut-recovery' });
    await waitForText(m.lastFrame, 'Steps 2/3');
    m.sessions[0].setSnapshot({ ...fakeSnapshot(), t: 42_000 });
    await waitForText(m.lastFrame, 't=42.0s');
  });
});

describe('retryableStep', () => {
  const base: RunSummary = { ok: false, labId: 'x', durationMs: 1, verified: false, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0 };
  it('a failed step is retried where it failed; a VM death at the step the run was on; setup starts over', () => {
    expect(retryableStep({ ...base, failure: { reason: 'step-unreachable', step: 4, message: 'm' } }, 1)).toBe(3);
    expect(retryableStep({ ...base, failure: { reason: 'vm-died', message: 'm' } }, 2)).toBe(2);
    expect(retryableStep({ ...base, failure: { reason: 'setup', message: 'm' } }, 2)).toBe(0);
  });
  it('no retry for a success or a run someone stopped', () => {
    expect(retryableStep({ ...base, ok: true, verified: true }, 3)).toBeNull();
    expect(retryableStep({ ...base, failure: { reason: 'stopped', message: 'm' } }, 3)).toBeNull();
  });
});
