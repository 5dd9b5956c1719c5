import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LinkFaultError, parseLinkFault } from '../../../src/link/fault-schema.js';
import type { LinkFault } from '../../../src/types.js';

const error = (input: unknown): string => {
  try {
    parseLinkFault(input);
  } catch (err) {
    expect(err).toBeInstanceOf(LinkFaultError);
    return (err as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
};

describe('parseLinkFault', () => {
  it('accepts every kind of fault as is', () => {
    const faults: LinkFault[] = [
      { kind: 'up' },
      { kind: 'cut', direction: 'source-to-destination' },
      { kind: 'blackhole', direction: 'both' },
      { kind: 'down', direction: 'destination-to-source' },
      { kind: 'latency', ms: 100, jitterMs: 10 },
      { kind: 'latency', ms: 0 },
      { kind: 'loss', percent: 100 },
      { kind: 'bandwidth', bytesPerSec: 1 },
      { kind: 'flap', upMs: 100, downMs: 50, mode: 'blackhole', count: 3 },
    ];
    for (const f of faults) expect(parseLinkFault(f)).toEqual(f);
  });

  it('names the field, the rule and the value', () => {
    expect(error({ kind: 'latency', ms: -5 })).toMatch(/^latency ms must be ≥ 0, got -5/);
    expect(error({ kind: 'latency', ms: 5, jitterMs: -1 })).toMatch(/latency jitterMs must be ≥ 0, got -1/);
    expect(error({ kind: 'bandwidth', bytesPerSec: 0 })).toMatch(/^bandwidth bytesPerSec must be > 0, got 0/);
    expect(error({ kind: 'loss', percent: 101 })).toMatch(/loss percent must be between 0 and 100, got 101/);
    expect(error({ kind: 'latency', ms: '5' })).toMatch(/latency ms must be a finite number, got "5"/);
    expect(error({ kind: 'latency' })).toMatch(/latency ms is required/);
    expect(error({ kind: 'flap', upMs: 10, downMs: 10, count: 0.5 })).toMatch(/flap count must be a whole number, got 0.5/);
    expect(error({ kind: 'flap', upMs: 10, downMs: 10, mode: 'down' })).toMatch(/flap mode must be "cut" or "blackhole", got "down"/);
    expect(error({ kind: 'cut', direction: 'left' })).toMatch(/direction must be .* got "left"/);
  });

  it('shows the right form', () => {
    expect(error({ kind: 'bandwidth', bytesPerSec: -1 })).toContain('the right form: {"kind":"bandwidth","bytesPerSec":1048576}');
  });

  it('rejects unknown kinds, unknown fields and non-objects', () => {
    expect(error({ kind: 'jam' })).toMatch(/unknown fault kind "jam"; expected one of up, cut, blackhole, down, latency, loss, bandwidth, flap/);
    expect(error({})).toMatch(/a fault needs a "kind"/);
    expect(error({ kind: 'cut', ms: 5 })).toMatch(/unknown field "ms" in a cut fault/);
    expect(error(null)).toMatch(/a fault must be an object/);
    expect(error([])).toMatch(/a fault must be an object/);
    expect(error('cut')).toMatch(/a fault must be an object/);
  });

  it('never throws anything but a LinkFaultError, whatever the input (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.record({ kind: fc.constantFrom('latency', 'loss', 'flap', 'bandwidth', 'cut'), ms: fc.jsonValue(), percent: fc.jsonValue(), upMs: fc.jsonValue() }, { requiredKeys: ['kind'] })), (input) => {
        try {
          parseLinkFault(input);
        } catch (err) {
          expect(err).toBeInstanceOf(LinkFaultError);
        }
      }),
      { numRuns: 200 },
    );
  });
});
