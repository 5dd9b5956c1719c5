import { describe, expect, it } from 'vitest';
import { collapseRepeats, stateSequences } from '../../helpers/state-sequence.js';

const state = (side: string, from: string, to: string, withData = true): string =>
  JSON.stringify({ type: 'event', t: 1, kind: 'state', side, text: `${from} -> ${to}`, ...(withData ? { data: { from, to } } : {}) });

describe('stateSequences', () => {
  it('keeps only state changes, per side, in order, from data or from the text', () => {
    const out = [
      JSON.stringify({ type: 'snapshot', t: 0, source: { status: 'none' }, destination: { status: 'none' } }),
      state('destination', 'none', 'setup'),
      JSON.stringify({ type: 'event', t: 2, kind: 'qmp', side: 'source', text: 'migrate {} -> {}' }),
      state('source', 'none', 'setup', false),
      state('source', 'setup', 'active'),
      state('destination', 'setup', 'active'),
      state('source', 'active', 'postcopy-active'),
      state('destination', 'active', 'postcopy-active'),
      state('destination', 'postcopy-active', 'postcopy-paused'),
      JSON.stringify({ type: 'event', t: 3, kind: 'event', side: 'destination', text: 'MIGRATION event: setup (not a state change: destination stays postcopy-paused)' }),
      JSON.stringify({ type: 'event', t: 4, kind: 'state', side: 'destination', text: 'postcopy-paused -> postcopy-recover (a reason)' }),
      state('destination', 'postcopy-recover', 'postcopy-active'),
      JSON.stringify({ type: 'summary', ok: true }),
      '',
    ].join('\n');
    expect(stateSequences(out)).toEqual({
      source: ['none', 'setup', 'active', 'postcopy-active'],
      destination: ['none', 'setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active'],
    });
  });

  it('shows a gap in the log instead of hiding it', () => {
    const out = [state('source', 'none', 'setup'), state('source', 'active', 'completed')].join('\n');
    expect(stateSequences(out).source).toEqual(['none', 'setup', 'active', 'completed']);
  });

  it('says which line is not JSON, or is a state event it cannot read', () => {
    expect(() => stateSequences(`${state('source', 'none', 'setup')}\nwarning: something`)).toThrow(/line 2 .*not JSON: warning: something/);
    expect(() => stateSequences(JSON.stringify({ type: 'event', kind: 'state', side: 'source', text: 'moved' }))).toThrow(/line 1: a state event without/);
    expect(() => stateSequences(JSON.stringify({ type: 'event', kind: 'state', text: 'a -> b' }))).toThrow(/without side/);
  });
});

describe('collapseRepeats', () => {
  it('counts a state repeated back to back once, and keeps a return to it', () => {
    expect(collapseRepeats(['a', 'a', 'b', 'b', 'a'])).toEqual(['a', 'b', 'a']);
    expect(collapseRepeats([])).toEqual([]);
  });
});
