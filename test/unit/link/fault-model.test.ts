import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CLEAR_CONFIG,
  describeFault,
  FAULT_DIRECTIONS,
  faultTargets,
  isCableFault,
  LinkFaultError,
  nextConfig,
  parseLinkFault,
  type DirectionConfig,
} from '../../../src/link/fault-model.js';
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
      { kind: 'bandwidth', bytesPerSec: 0 },
      { kind: 'loss', percent: 0 },
      { kind: 'flap', upMs: 100, downMs: 50, mode: 'blackhole', count: 3 },
    ];
    for (const f of faults) expect(parseLinkFault(f)).toEqual(f);
  });

  it('names the field, the rule and the value', () => {
    expect(error({ kind: 'latency', ms: -5 })).toMatch(/^latency ms must be from 0 to 60000 milliseconds, got -5/);
    expect(error({ kind: 'latency', ms: 60_001 })).toMatch(/^latency ms must be from 0 to 60000 milliseconds, got 60001/);
    expect(error({ kind: 'latency', ms: 5, jitterMs: -1 })).toMatch(/latency jitterMs must be from 0 to 60000 milliseconds, got -1/);
    expect(error({ kind: 'bandwidth', bytesPerSec: -1 })).toMatch(/^bandwidth bytesPerSec must be 0 \(no cap\) or from 1 to 125000000000 bytes per second, got -1/);
    expect(error({ kind: 'bandwidth', bytesPerSec: 0.5 })).toMatch(/^bandwidth bytesPerSec must be 0 \(no cap\) or from 1/);
    expect(error({ kind: 'bandwidth', bytesPerSec: 2e11 })).toMatch(/^bandwidth bytesPerSec must be 0 \(no cap\) or from 1/);
    expect(error({ kind: 'loss', percent: 101 })).toMatch(/loss percent must be from 0 to 100 percent, got 101/);
    expect(error({ kind: 'flap', upMs: 0, downMs: 10 })).toMatch(/flap upMs must be > 0 and at most 3600000 milliseconds, got 0/);
    expect(error({ kind: 'flap', upMs: 10, downMs: 10, count: 0 })).toMatch(/flap count must be > 0, got 0/);
    expect(error({ kind: 'latency', ms: '5' })).toMatch(/latency ms must be a finite number, got "5"/);
    expect(error({ kind: 'latency' })).toMatch(/latency ms is required/);
    expect(error({ kind: 'flap', upMs: 10, downMs: 10, count: 0.5 })).toMatch(/flap count must be a whole number, got 0.5/);
    expect(error({ kind: 'flap', upMs: 10, downMs: 10, mode: 'down' })).toMatch(/flap mode must be "cut" or "blackhole", got "down"/);
    expect(error({ kind: 'cut', direction: 'left' })).toMatch(/direction must be .* got "left"/);
  });

  it('names the one field at fault, so a lab file can point at it', () => {
    const field = (input: unknown) => {
      try {
        parseLinkFault(input);
      } catch (err) {
        return (err as LinkFaultError).field;
      }
      return 'accepted';
    };
    expect(field({ kind: 'latency', ms: -5 })).toBe('ms');
    expect(field({ kind: 'cut', direction: 'up' })).toBe('direction');
    expect(field({ kind: 'jam' })).toBe('kind');
    expect(field({ kind: 'latency', ms: -5, jitterMs: -1 })).toBeUndefined();
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

const CONFIG: DirectionConfig = { state: 'up', latencyMs: 10, jitterMs: 2, lossPercent: 1, rateBytesPerSec: 5000 };

describe('nextConfig and faultTargets', () => {
  // What each kind does to a direction already shaped (CONFIG): the expected change, all else kept.
  const CASES: Array<[LinkFault, Partial<DirectionConfig>]> = [
    [{ kind: 'up' }, { state: 'up' }],
    [{ kind: 'cut' }, { state: 'cut' }],
    [{ kind: 'blackhole' }, { state: 'blackhole' }],
    [{ kind: 'down' }, { state: 'down' }],
    [{ kind: 'latency', ms: 200, jitterMs: 50 }, { latencyMs: 200, jitterMs: 50 }],
    [{ kind: 'latency', ms: 100 }, { latencyMs: 100, jitterMs: 0 }],
    [{ kind: 'latency', ms: 0 }, { latencyMs: 0, jitterMs: 0 }],
    [{ kind: 'loss', percent: 5 }, { lossPercent: 5 }],
    [{ kind: 'loss', percent: 0 }, { lossPercent: 0 }],
    [{ kind: 'bandwidth', bytesPerSec: 1 << 20 }, { rateBytesPerSec: 1 << 20 }],
    [{ kind: 'bandwidth', bytesPerSec: 0 }, { rateBytesPerSec: 0 }],
    [{ kind: 'flap', upMs: 10, downMs: 10 }, { state: 'cut' }],
    [{ kind: 'flap', upMs: 10, downMs: 10, mode: 'blackhole' }, { state: 'blackhole' }],
  ];
  const TARGETS: Record<string, string[]> = {
    both: ['source-to-destination', 'destination-to-source'],
    'source-to-destination': ['source-to-destination'],
    'destination-to-source': ['destination-to-source'],
  };

  for (const [fault, change] of CASES) {
    for (const direction of FAULT_DIRECTIONS) {
      it(`${JSON.stringify(fault)} on ${direction}`, () => {
        const f = { ...fault, direction } as LinkFault;
        expect(parseLinkFault(f)).toEqual(f);
        expect(faultTargets(f)).toEqual(TARGETS[direction]);
        expect(nextConfig(CONFIG, f)).toEqual({ ...CONFIG, ...change });
      });
    }
  }

  it('no direction means both', () => {
    expect(faultTargets({ kind: 'cut' })).toEqual(TARGETS.both);
  });

  it('a cable fault keeps the shaping; a shaping fault keeps the cable state', () => {
    const cut = nextConfig(CONFIG, { kind: 'cut' });
    expect(nextConfig(cut, { kind: 'latency', ms: 1 })).toMatchObject({ state: 'cut', latencyMs: 1, rateBytesPerSec: 5000 });
    expect(nextConfig(cut, { kind: 'up' })).toEqual(CONFIG);
  });

  it('says which faults set the cable state (and so replace a flap)', () => {
    expect(['up', 'cut', 'blackhole', 'down', 'flap'].every((kind) => isCableFault({ kind, upMs: 1, downMs: 1 } as LinkFault))).toBe(true);
    expect(isCableFault({ kind: 'latency', ms: 1 })).toBe(false);
    expect(isCableFault({ kind: 'bandwidth', bytesPerSec: 0 })).toBe(false);
    expect(CLEAR_CONFIG).toEqual({ state: 'up', latencyMs: 0, jitterMs: 0, lossPercent: 0, rateBytesPerSec: 0 });
  });
});

describe('describeFault', () => {
  it('says what the fault does and which directions it affects', () => {
    expect(describeFault({ kind: 'cut' })).toBe('cut (both directions)');
    expect(describeFault({ kind: 'blackhole', direction: 'destination-to-source' })).toBe('blackhole (destination→source)');
    expect(describeFault({ kind: 'down', direction: 'source-to-destination' })).toBe('down (source→destination)');
    expect(describeFault({ kind: 'up', direction: 'both' })).toBe('up (both directions)');
    expect(describeFault({ kind: 'latency', ms: 200, jitterMs: 50 })).toBe('latency 200 ms ± 50 ms (both directions)');
    expect(describeFault({ kind: 'latency', ms: 0, jitterMs: 0, direction: 'source-to-destination' })).toBe('no added latency (source→destination)');
    expect(describeFault({ kind: 'bandwidth', bytesPerSec: 10 * 1024 * 1024 })).toBe('rate 10 MiB/s (both directions)');
    expect(describeFault({ kind: 'bandwidth', bytesPerSec: 1536 })).toBe('rate 1.5 KiB/s (both directions)');
    expect(describeFault({ kind: 'bandwidth', bytesPerSec: 0 })).toBe('no rate cap (both directions)');
    expect(describeFault({ kind: 'loss', percent: 5 })).toBe('loss 5% (both directions)');
    expect(describeFault({ kind: 'loss', percent: 0 })).toBe('no loss (both directions)');
    expect(describeFault({ kind: 'flap', upMs: 2000, downMs: 500, count: 3 })).toBe('flap: cut 500 ms every 2500 ms, 3× (both directions)');
  });
});
