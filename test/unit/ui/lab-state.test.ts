import { describe, expect, it } from 'vitest';
import { initialLabUiState, labUiReducer, LINK_MENU_ITEMS, MENU_DIRECTIONS, readingMs, selectedLinkFault, type LabUiAction, type LabUiState } from '../../../src/ui/lab-state.js';
import { describeFault, parseLinkFault } from '../../../src/link/fault-model.js';
import { withoutStepTitle } from '../../../src/ui/use-lab-keys.js';
import { complete, QMP_COMMANDS } from '../../../src/ui/qmp-commands.js';

const run = (actions: LabUiAction[], from: LabUiState = initialLabUiState()) => actions.reduce(labUiReducer, from);
const type = (text: string): LabUiAction => ({ type: 'console-type', text });

describe('QMP command completion', () => {
  it('lists the commands the brief names', () => {
    expect(QMP_COMMANDS).toContain('migrate-recover');
    expect(QMP_COMMANDS).toContain('x-query-pages');
    expect(QMP_COMMANDS).toContain('migrate_cancel');
  });
  it('finds matches and their common prefix', () => {
    expect(complete('query-')).toEqual({
      matches: ['query-status', 'query-migrate', 'query-migrate-capabilities', 'query-migrate-parameters'],
      common: 'query-',
    });
    expect(complete('migrate-r')).toEqual({ matches: ['migrate-recover'], common: 'migrate-recover' });
    expect(complete('zzz')).toEqual({ matches: [], common: 'zzz' });
  });
});

describe('console reducer', () => {
  it('completes a unique name and adds a space for the arguments', () => {
    const s = run([type('migrate-rec'), { type: 'console-tab' }]);
    expect(s.console.input).toBe('migrate-recover ');
    expect(s.console.side).toBe('destination');
  });

  it('extends to the common prefix and lists candidates when ambiguous', () => {
    const s = run([type('mig'), { type: 'console-tab' }]);
    expect(s.console.input).toBe('migrate');
    expect(s.console.completions).toEqual(expect.arrayContaining(['migrate', 'migrate-pause', 'migrate-recover', 'migrate-incoming']));
    const again = labUiReducer(s, { type: 'console-tab' });
    expect(again.console.input).toBe('migrate');
    expect(again.console.side).toBe('destination');
  });

  it('switches target only with Shift-Tab (console-toggle-side): Tab never does', () => {
    expect(run([{ type: 'console-tab' }]).console.side).toBe('destination');
    expect(run([type('migrate-recover {'), { type: 'console-tab' }]).console.side).toBe('destination');
    expect(run([type('query-status'), { type: 'console-tab' }]).console.side).toBe('destination');
    expect(run([{ type: 'console-toggle-side' }]).console.side).toBe('source');
    expect(run([type('query-status'), { type: 'console-toggle-side' }, { type: 'console-toggle-side' }]).console.side).toBe('destination');
  });

  it('keeps history, browses it with up/down and restores the draft', () => {
    let s = run([type('query-status'), { type: 'console-submit', id: 1 }, type('query-migrate'), { type: 'console-submit', id: 2 }, type('draft')]);
    expect(s.console.history).toEqual({ source: [], destination: ['query-status', 'query-migrate'] });
    s = labUiReducer(s, { type: 'console-history', delta: -1 });
    expect(s.console.input).toBe('query-migrate');
    s = labUiReducer(s, { type: 'console-history', delta: -1 });
    expect(s.console.input).toBe('query-status');
    s = labUiReducer(s, { type: 'console-history', delta: -1 });
    expect(s.console.input).toBe('query-status');
    s = labUiReducer(s, { type: 'console-history', delta: 1 });
    expect(s.console.input).toBe('query-migrate');
    s = labUiReducer(s, { type: 'console-history', delta: 1 });
    expect(s.console.input).toBe('draft');
  });

  it('does not repeat the same line twice in a row in history, and ignores blank lines', () => {
    const s = run([type('stop'), { type: 'console-submit', id: 1 }, type('stop'), { type: 'console-submit', id: 2 }, type('   '), { type: 'console-submit', id: 3 }]);
    expect(s.console.history.destination).toEqual(['stop']);
    expect(s.console.output.map((e) => e.id)).toEqual([1, 2]);
  });

  it('attaches replies to their line by id', () => {
    const s = run([
      type('query-status'),
      { type: 'console-submit', id: 7 },
      type('bogus'),
      { type: 'console-submit', id: 8 },
      { type: 'console-reply', id: 8, ok: false, text: "The command bogus has not been found" },
      { type: 'console-reply', id: 7, ok: true, text: '{"status": "running"}' },
    ]);
    expect(s.console.output).toEqual([
      { id: 7, side: 'destination', line: 'query-status', ok: true, text: '{"status": "running"}' },
      { id: 8, side: 'destination', line: 'bogus', ok: false, text: 'The command bogus has not been found' },
    ]);
  });

  it("keeps a history per side: up gives this side's lines first, then the other side's", () => {
    const cap = 'migrate-set-capabilities {"capabilities": [{"capability": "postcopy-preempt", "state": true}]}';
    // Set on the destination, then the source, which has typed nothing yet: up gives the line
    // that QEMU wants on both sides.
    let s = run([type(cap), { type: 'console-submit', id: 1 }, { type: 'console-toggle-side' }]);
    expect(s.console.side).toBe('source');
    expect(labUiReducer(s, { type: 'console-history', delta: -1 }).console.input).toBe(cap);
    s = run([type('migrate {}'), { type: 'console-submit', id: 2 }, { type: 'console-toggle-side' }, type('migrate-recover {}'), { type: 'console-submit', id: 3 }], s);
    expect(s.console.history).toEqual({ source: ['migrate {}'], destination: [cap, 'migrate-recover {}'] });
    // The destination's own, newest first; then, past its oldest, the source's.
    const up = (x: typeof s) => labUiReducer(x, { type: 'console-history', delta: -1 });
    s = up(s);
    expect(s.console.input).toBe('migrate-recover {}');
    s = up(s);
    expect(s.console.input).toBe(cap);
    s = up(s);
    expect(s.console.input).toBe('migrate {}');
    s = up(s);
    expect(s.console.input).toBe('migrate {}');
    s = labUiReducer(s, { type: 'console-history', delta: 1 });
    expect(s.console.input).toBe(cap);
    // A line both sides have is offered once, as this side's.
    s = run([{ type: 'console-history', delta: 1 }, { type: 'console-history', delta: 1 }, { type: 'console-toggle-side' }, type(cap), { type: 'console-submit', id: 4 }], s);
    expect(s.console.side).toBe('source');
    s = up(s);
    expect(s.console.input).toBe(cap);
    s = up(s);
    expect(s.console.input).toBe('migrate {}');
    s = up(s);
    expect(s.console.input).toBe('migrate-recover {}');
    expect(up(s).console.input).toBe('migrate-recover {}');
  });

  it('edits at the cursor: left/right/home/end, typing, backspace and delete in the middle', () => {
    let s = run([type('migrate {}'), { type: 'console-cursor', to: 'left' }]);
    expect(s.console.cursor).toBe(9);
    s = run([type('"uri": 1')], s);
    expect(s.console.input).toBe('migrate {"uri": 1}');
    expect(s.console.cursor).toBe(17);
    s = run([{ type: 'console-cursor', to: 'home' }, { type: 'console-delete-forward' }, { type: 'console-backspace' }], s);
    expect(s.console.input).toBe('igrate {"uri": 1}');
    expect(s.console.cursor).toBe(0);
    s = run([type('m'), { type: 'console-cursor', to: 'end' }, { type: 'console-cursor', to: 'right' }, { type: 'console-backspace' }], s);
    expect(s.console.input).toBe('migrate {"uri": 1');
    expect(s.console.cursor).toBe(17);
    // History and completion put the cursor at the end of what they wrote.
    s = run([type('query-st'), { type: 'console-cursor', to: 'home' }, { type: 'console-cursor', to: 'end' }, { type: 'console-tab' }]);
    expect(s.console.input).toBe('query-status ');
    expect(s.console.cursor).toBe(13);
  });

  it('fills the input from a hint, aimed at the side it names, and a submit scrolls back to the newest', () => {
    let s = run([{ type: 'console-scroll', row: 3 }, { type: 'console-fill', line: 'migrate {"uri": "tcp:127.0.0.1:1"}', side: 'source' }]);
    expect(s.console).toMatchObject({ input: 'migrate {"uri": "tcp:127.0.0.1:1"}', cursor: 34, side: 'source', scroll: 3 });
    s = run([{ type: 'console-fill', line: 'query-status' }], s);
    expect(s.console.side).toBe('source');
    s = run([{ type: 'console-submit', id: 1 }], s);
    expect(s.console.scroll).toBeNull();
  });

  it('edits: backspace, clear line, pasted newlines become spaces', () => {
    expect(run([type('stopx'), { type: 'console-backspace' }]).console.input).toBe('stop');
    expect(run([type('stop'), { type: 'console-clear-line' }]).console.input).toBe('');
    expect(run([type('migrate\n{}')]).console.input).toBe('migrate {}');
  });
});

describe('modes and the link menu', () => {
  it('returns from help to the mode it was opened from', () => {
    const s = run([{ type: 'mode', mode: 'console' }, { type: 'mode', mode: 'help' }, { type: 'close-help' }]);
    expect(s.mode).toBe('console');
  });

  it('wraps around items and directions and builds the fault', () => {
    let s = run([{ type: 'link-move', delta: -1 }]);
    expect(s.link.item).toBe(LINK_MENU_ITEMS.length - 1);
    expect(selectedLinkFault(s)).toEqual({ kind: 'loss', percent: 0, direction: 'both' });
    s = run([{ type: 'link-move', delta: 6 }, { type: 'link-direction', delta: 1 }]);
    expect(selectedLinkFault(s)).toEqual({ kind: 'latency', ms: 200, jitterMs: 50, direction: 'source-to-destination' });
    s = run([{ type: 'link-direction', delta: -1 }]);
    expect(selectedLinkFault(s).direction).toBe('destination-to-source');
    s = run([{ type: 'link-direction', delta: 3 }]);
    expect(selectedLinkFault(s).direction).toBe('both');
  });

  it('offers every fault kind by hand, on each direction (double-failure: blackhole destination→source only)', () => {
    const kinds = new Set(LINK_MENU_ITEMS.map((i) => i.fault.kind));
    expect([...kinds].sort()).toEqual(['bandwidth', 'blackhole', 'cut', 'down', 'latency', 'loss', 'up']);
    const blackhole = LINK_MENU_ITEMS.findIndex((i) => i.fault.kind === 'blackhole');
    const s = run([{ type: 'link-move', delta: blackhole }, { type: 'link-direction', delta: 2 }]);
    expect(selectedLinkFault(s)).toEqual({ kind: 'blackhole', direction: 'destination-to-source' });
    expect(describeFault(selectedLinkFault(s))).toBe('blackhole (destination→source)');
  });

  it('every item is a fault both links accept, on every direction (unlimited rate included)', () => {
    for (let item = 0; item < LINK_MENU_ITEMS.length; item++) {
      for (let direction = 0; direction < MENU_DIRECTIONS.length; direction++) {
        const f = selectedLinkFault({ ...initialLabUiState(), link: { item, direction } });
        expect(parseLinkFault(f)).toEqual(f);
      }
    }
    expect(LINK_MENU_ITEMS.some((i) => i.fault.kind === 'bandwidth' && i.fault.bytesPerSec === 0)).toBe(true);
  });
});

describe('reading state: steps, focus, log', () => {
  it('views a step from its top, scrolls per step, and follows the current step again with null', () => {
    let s = run([{ type: 'steps-scroll', step: 2, offset: 5 }]);
    expect(s.steps).toEqual({ viewing: null, offset: 5, offsetStep: 2 });
    s = run([{ type: 'steps-view', index: 1 }], s);
    expect(s.steps).toEqual({ viewing: 1, offset: 0, offsetStep: 1 });
    s = run([{ type: 'steps-view', index: null }, { type: 'focus', focus: 'log' }], s);
    expect(s.steps.viewing).toBeNull();
    expect(s.focus).toBe('log');
    const e = { t: 1, kind: 'info' as const, text: 'x' };
    expect(run([{ type: 'log-scroll', top: e }]).log.top).toBe(e);
  });

  it('halfway down the current step the panel keeps that step; at its top or end it follows the lab', () => {
    let s = run([{ type: 'steps-scroll', step: 5, offset: 4, pin: true }]);
    expect(s.steps).toEqual({ viewing: 5, offset: 4, offsetStep: 5 });
    s = run([{ type: 'steps-scroll', step: 5, offset: 9, pin: false }], s);
    expect(s.steps).toEqual({ viewing: null, offset: 9, offsetStep: 5 });
    // A step read with [ stays the one read, whatever its scroll.
    s = run([{ type: 'steps-view', index: 2 }, { type: 'steps-scroll', step: 2, offset: 0 }], s);
    expect(s.steps).toEqual({ viewing: 2, offset: 0, offsetStep: 2 });
  });
});

describe('a step that ends under a reader', () => {
  const text = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' '); // 30 s at 4 words a second

  it('reading takes 250 ms a word, between 5 s and a minute', () => {
    expect(readingMs(text)).toBe(30_000);
    expect(readingMs('two words')).toBe(5_000);
    expect(readingMs(`${text} ${text} ${text}`)).toBe(60_000);
  });

  it('stays on screen, marked done, when it ended by itself before it could be read', () => {
    const s = run([{ type: 'step-ended', step: 4, text, shownMs: 3_000 }]);
    expect(s.steps).toEqual({ viewing: 4, offset: 0, offsetStep: 4 });
    expect(s.notice?.text).toBe('step 5 ended while you read it: ] goes on');
  });

  it("keeps the reader's place in it", () => {
    const s = run([{ type: 'steps-scroll', step: 4, offset: 0, pin: false }, { type: 'step-ended', step: 4, text, shownMs: 3_000 }]);
    expect(s.steps.viewing).toBe(4);
  });

  it('follows the lab once read (the time passed, or scrolled to its end), after the person acted in it, or when another step is read', () => {
    expect(run([{ type: 'step-ended', step: 4, text, shownMs: 31_000 }]).steps.viewing).toBeNull();
    expect(run([{ type: 'steps-scroll', step: 4, offset: 9, pin: false }, { type: 'step-ended', step: 4, text, shownMs: 3_000 }]).steps.viewing).toBeNull();
    const acted = run([{ type: 'acted', step: 4 }, { type: 'step-ended', step: 4, text, shownMs: 3_000 }]);
    expect(acted.steps.viewing).toBeNull();
    expect(acted.notice).toBeNull();
    // Acting does not count as reading when part of the text never came into view.
    expect(run([{ type: 'acted', step: 4 }, { type: 'step-ended', step: 4, text, shownMs: 3_000, hiddenBelow: true }]).steps.viewing).toBe(4);
    // Acting in the step before does not count for this one.
    expect(run([{ type: 'acted', step: 3 }, { type: 'step-ended', step: 4, text, shownMs: 3_000 }]).steps.viewing).toBe(4);
    expect(run([{ type: 'steps-view', index: 1 }, { type: 'step-ended', step: 4, text, shownMs: 3_000 }]).steps.viewing).toBe(1);
  });

  it('goes to the current step when the person acts on it while another is on screen; a query does not move it', () => {
    // Step 4 kept on screen (it ended while read); step 5 is the lab's now.
    const kept = run([{ type: 'step-ended', step: 4, text, shownMs: 3_000 }]);
    expect(kept.steps.viewing).toBe(4);
    const moved = labUiReducer(kept, { type: 'acted', step: 5, follow: true });
    expect(moved.steps.viewing).toBeNull();
    expect(moved.steps.offsetStep).toBe(5);
    // Acted from step 4's text: step 5's was never on screen, so the act is no reading of it.
    expect(moved.actedStep).not.toBe(5);
    // Acted, but not on the run (a query): the reader keeps the step they are on.
    const stayed = labUiReducer(kept, { type: 'acted', step: 5, follow: false });
    expect(stayed.steps.viewing).toBe(4);
    expect(stayed.actedStep).toBe(5);
    // Step 5 then ends at once (u ends "Bring the network back"), all of its text in view but
    // unread: it is kept, so it is read after all.
    expect(labUiReducer(moved, { type: 'step-ended', step: 5, text, shownMs: 300 }).steps.viewing).toBe(5);
    // Acting again on it, now in view, counts as usual.
    const again = labUiReducer(moved, { type: 'acted', step: 5, follow: true });
    expect(again.actedStep).toBe(5);
    expect(labUiReducer(again, { type: 'step-ended', step: 5, text, shownMs: 300 }).steps.viewing).toBeNull();
  });
});

describe('console-aim: the console opens on the side the step starts with', () => {
  it('aims once per step, and never over a line being typed', () => {
    let s = initialLabUiState();
    expect(s.console.side).toBe('destination');
    s = labUiReducer(s, { type: 'console-aim', step: 2, side: 'source' });
    expect(s.console.side).toBe('source');
    // The person switched back: the same step does not take it away again.
    s = labUiReducer(s, { type: 'console-toggle-side' });
    s = labUiReducer(s, { type: 'console-aim', step: 2, side: 'source' });
    expect(s.console.side).toBe('destination');
    // A new step aims again, unless something is typed.
    s = labUiReducer(s, { type: 'console-type', text: 'query-mig' });
    s = labUiReducer(s, { type: 'console-aim', step: 3, side: 'source' });
    expect(s.console.side).toBe('destination');
    s = labUiReducer(s, { type: 'console-clear-line' });
    s = labUiReducer(s, { type: 'console-aim', step: 4, side: 'source' });
    expect(s.console.side).toBe('source');
    // A step with no command leaves the side alone.
    s = labUiReducer(s, { type: 'console-aim', step: 5, side: null });
    expect(s.console.side).toBe('source');
  });
});

describe('event log focus', () => {
  it('follows the newest events again once the focus leaves it (unfocused, no key scrolls it)', () => {
    const old = { t: 1, kind: 'info' as const, text: 'old' };
    let s = run([{ type: 'focus', focus: 'log' }, { type: 'log-scroll', top: old }]);
    expect(s.log.top).toBe(old);
    s = run([{ type: 'focus', focus: 'log' }], s);
    expect(s.log.top).toBe(old);
    s = run([{ type: 'focus', focus: 'steps' }], s);
    expect(s.log.top).toBeNull();
  });
});

describe('an error in the header', () => {
  it("names the step by its number, not its title, so the reason fits (a title with an apostrophe too)", () => {
    const steps = [
      { index: 1, title: 'Start a precopy migration and watch it not converge' },
      { index: 2, title: "Cut the link; save the paused source's RAM" },
    ];
    expect(withoutStepTitle("step 2 'Start a precopy migration and watch it not converge': wait-until timed out", steps)).toBe('step 2: wait-until timed out');
    expect(withoutStepTitle("step 3 'Cut the link; save the paused source's RAM': pmemsave refused", steps)).toBe('step 3: pmemsave refused');
    expect(withoutStepTitle('the link is cut: press u', steps)).toBe('the link is cut: press u');
  });
});
