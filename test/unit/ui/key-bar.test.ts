import { describe, expect, it } from 'vitest';
import { fitKeyHints, keyHints, normalKeys } from '../../../src/ui/key-bar.js';
import { fakeDirection, fakeSide, fakeSnapshot, fakeState, fakeSteps } from '../../helpers/fake-session.js';

const keys = (hints: { key: string }[]) => hints.map((h) => h.key).join(' ');
/** The fake steps with a first hint that gives a command (y copies it); the default's "Press c" gives none. */
const copyable = () => fakeSteps().map((st) => (st.index === 1 ? { ...st, hints: ['Press p, or on the source: migrate-pause', ...st.hints.slice(1)] } : st));

describe('key bar', () => {
  it('offers only the keys valid now', () => {
    const state = fakeState({ steps: copyable() });
    expect(keys(keyHints('normal', state))).toBe('c b l p h s [] PgUp/Dn Tab y : ? q');
    // A hint shown that gives no command to copy ("Press c"): no y.
    expect(keys(keyHints('normal', fakeState()))).toBe('c b l p h s [] PgUp/Dn Tab : ? q');
    // Link cut: c no longer applies, u does.
    const cut = fakeState({
      steps: copyable(),
      snapshot: fakeSnapshot({
        link: { ...fakeSnapshot().link, up: false, 'source-to-destination': fakeDirection({ state: 'cut' }), 'destination-to-source': fakeDirection({ state: 'cut' }) },
        source: fakeSide('source', { status: 'postcopy-paused' }),
        destination: fakeSide('destination', { status: 'postcopy-paused' }),
      }),
    });
    expect(keys(keyHints('normal', cut))).toBe('b l u h s [] PgUp/Dn Tab y : ? q');
    // All hints shown: no h.
    const steps = fakeSteps();
    steps[1] = { ...steps[1], hintsShown: 2 };
    expect(normalKeys(fakeState({ steps })).hint).toBe(false);
    // No snapshot yet (VMs starting): only the console, help and quit.
    expect(keys(keyHints('normal', fakeState({ snapshot: null, steps: [] })))).toBe('[] PgUp/Dn Tab : ? q');
    // y only once a hint is shown.
    const noHint = copyable();
    noHint[1] = { ...noHint[1], hintsShown: 0 };
    expect(keys(keyHints('normal', fakeState({ steps: noHint })))).not.toContain('y');
  });

  it('treats latency or a rate cap as a fault that u can restore', () => {
    const slow = fakeState({ snapshot: fakeSnapshot({ link: { ...fakeSnapshot().link, 'source-to-destination': fakeDirection({ latencyMs: 100 }) } }) });
    expect(normalKeys(slow).restore).toBe(true);
    expect(normalKeys(fakeState()).restore).toBe(false);
  });

  it('keeps Space (let it run) at 80 columns while a hold is on, and leads with ] while another step is read', () => {
    const held = fakeState({ hold: { step: 1, state: 'held', text: 'max-postcopy-bandwidth 64 KiB/s', rate: 65536 } });
    expect(keys(fitKeyHints(keyHints('normal', held), 80))).toContain('Space');
    expect(keyHints('normal', held).find((h) => h.key === 'Space')?.label).toBe('let it run');
    expect(keys(keyHints('normal', fakeState(), true)).split(' ')[0]).toBe(']');
    expect(keys(fitKeyHints(keyHints('normal', held, true), 80)).split(' ')[0]).toBe(']');
    // In a step with nothing to type, Space is the step's key: it outlasts show me and the faults.
    const watch = fakeState({ hold: held.hold, steps: fakeSteps().map((st) => (st.index === 1 ? { ...st, actions: [] } : { ...st, actions: ['source: migrate'] })) });
    expect(keys(fitKeyHints(keyHints('normal', watch), 50)).split(' ')).toContain('Space');
    // In a step that blackholes, b stays beside Space (blackhole's "Pull the cable").
    const pull = fakeState({ hold: held.hold, steps: fakeSteps().map((st) => (st.index === 1 ? { ...st, linkFaults: ['blackhole' as const] } : st)) });
    const bar = keys(fitKeyHints(keyHints('normal', pull), 80)).split(' ');
    expect(bar).toContain('b');
    expect(bar).toContain('Space');
  });

  it('names s by what it does in a step of VM actions alone, and keeps it on a narrow bar', () => {
    const fresh = fakeState({ steps: fakeSteps().map((st) => (st.index === 1 ? { ...st, hintsShown: 1, vmOnly: 'restart both VMs' } : st)) });
    const s = keyHints('normal', fresh).find((h) => h.key === 's');
    expect(s?.label).toBe('restart both VMs');
    expect(keys(fitKeyHints(keyHints('normal', fresh), 50)).split(' ')).toContain('s');
    // Any other step: show me, which gives way to the console and the hint key at 40 columns.
    expect(keyHints('normal', fakeState()).find((h) => h.key === 's')?.label).toBe('show me');
    expect(keys(fitKeyHints(keyHints('normal', fakeState()), 40)).split(' ')).not.toContain('s');
    expect(keys(fitKeyHints(keyHints('normal', fresh), 40)).split(' ')).toContain('s');
  });

  it('drops low-priority keys first when narrow and always keeps ?', () => {
    const hints = keyHints('normal', fakeState({ steps: copyable() }));
    expect(keys(fitKeyHints(hints, 200))).toBe('c b l p h s [] PgUp/Dn Tab y : ? q');
    expect(keys(fitKeyHints(hints, 80))).toBe('c b h s y : ? q');
    expect(keys(fitKeyHints(hints, 64))).toBe('c b h s : ? q');
    expect(keys(fitKeyHints(hints, 50))).toBe('h s : ? q');
    expect(keys(fitKeyHints(hints, 33))).toBe('h : ? q');
    expect(keys(fitKeyHints(hints, 30))).toBe(': ? q');
    expect(keys(fitKeyHints(hints, 5))).toBe('?');
    expect(keys(fitKeyHints(keyHints('console', fakeState()), 10))).toBe('?');
  });
});
