import { describe, expect, it } from 'vitest';
import { holdLine, secondsLeft } from '../../../src/ui/hold-status.js';
import { keyHints, normalKeys } from '../../../src/ui/key-bar.js';
import { fakeSide, fakeSnapshot, fakeState } from '../../helpers/fake-session.js';

const held = { step: 1, state: 'held' as const, text: 'max-postcopy-bandwidth 64 KiB/s', rate: 65536 };

describe('the hold status line', () => {
  it('says the lab waits, at what rate, and which key lets it run', () => {
    expect(holdLine(fakeState({ hold: held }), 60)!.text).toBe('⏸ held for you at 64 KiB/s — Space lets it run');
    expect(holdLine(fakeState({ hold: held }), 30)!.text).toBe('⏸ held at 64 KiB/s · Space');
    expect(holdLine(fakeState({ hold: { ...held, state: 'released' } }), 80)!.text).toContain('Space holds it again');
    // No rate paces it (the throttle's ceiling): what is held, in its words.
    const throttle = { ...held, text: 'max-cpu-throttle 20%', rate: null };
    expect(holdLine(fakeState({ hold: throttle }), 60)!.text).toBe('⏸ held for you (max-cpu-throttle 20%) — Space lets it run');
  });

  it("offers Space only while the current step's hold is held or released", () => {
    expect(normalKeys(fakeState({ hold: held })).hold).toBe(true);
    expect(keyHints('normal', fakeState({ hold: held })).find((h) => h.key === 'Space')?.label).toBe('let it run');
    expect(normalKeys(fakeState({ hold: { ...held, state: 'idle' } })).hold).toBe(false);
    expect(normalKeys(fakeState({ hold: { ...held, step: 0 } })).hold).toBe(false);
    expect(normalKeys(fakeState()).hold).toBe(false);
  });

  it('without a hold, estimates the time left from the recent drain rate', () => {
    const snapshot = fakeSnapshot({ t: 10_000, source: fakeSide('source', { ram: { remaining: 40 << 20, mbps: 8 } as never }) });
    // 4 MiB drained per second over the last 4 s: 40 MiB left is 10 s.
    const history = [0, 1, 2, 3, 4].map((i) => ({ t: 6000 + i * 1000, mbps: 8, remaining: (56 - 4 * i) << 20 }));
    const state = fakeState({ snapshot, history });
    expect(secondsLeft(state)).toBeCloseTo(10, 5);
    expect(holdLine(state, 80)!.text).toBe('≈ 10 s until the migration completes at this rate');
    // Remaining that grows (precopy refilling) gives no estimate rather than a wrong one.
    expect(holdLine(fakeState({ snapshot, history: history.slice().reverse().map((h, i) => ({ ...h, t: 6000 + i * 1000 })) }), 80)).toBeNull();
  });
});
