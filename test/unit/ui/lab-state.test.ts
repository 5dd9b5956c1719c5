import { describe, expect, it } from 'vitest';
import { initialLabUiState, labUiReducer, LINK_MENU_ITEMS, MENU_DIRECTIONS, selectedLinkFault, type LabUiAction, type LabUiState } from '../../../src/ui/lab-state.js';
import { describeFault, parseLinkFault } from '../../../src/link/fault-model.js';
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
    expect(complete('query-')).toEqual({ matches: ['query-status', 'query-migrate'], common: 'query-' });
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

  it('switches target with Tab on an empty line, after the name, or on a complete name', () => {
    expect(run([{ type: 'console-tab' }]).console.side).toBe('source');
    expect(run([type('migrate-recover {'), { type: 'console-tab' }]).console.side).toBe('source');
    expect(run([type('query-status'), { type: 'console-tab' }]).console.side).toBe('source');
    expect(run([type('query-status'), { type: 'console-toggle-side' }, { type: 'console-toggle-side' }]).console.side).toBe('destination');
  });

  it('keeps history, browses it with up/down and restores the draft', () => {
    let s = run([type('query-status'), { type: 'console-submit', id: 1 }, type('query-migrate'), { type: 'console-submit', id: 2 }, type('draft')]);
    expect(s.console.history).toEqual(['query-status', 'query-migrate']);
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
    expect(s.console.history).toEqual(['stop']);
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
