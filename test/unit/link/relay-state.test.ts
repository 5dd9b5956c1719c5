import { describe, expect, it } from 'vitest';
import { handleControlLine } from '../../../src/link/relay-control.js';
import { parseRelayArgs, UsageError } from '../../../src/link/relay-args.js';
import { LinkState } from '../../../src/link/relay-state.js';
import { ManualClock } from './helpers.js';

function state() {
  const clock = new ManualClock();
  let cuts = 0;
  const link = new LinkState({ clock, onCut: () => cuts++ });
  return { link, clock, cuts: () => cuts };
}

describe('LinkState', () => {
  it('applies to both directions by default, or to the one named', () => {
    const { link } = state();
    link.apply({ kind: 'latency', ms: 50, jitterMs: 5 });
    link.apply({ kind: 'blackhole', direction: 'destination-to-source' });
    const snap = link.snapshot(0);
    expect(snap['source-to-destination']).toMatchObject({ state: 'up', latencyMs: 50, jitterMs: 5 });
    expect(snap['destination-to-source']).toMatchObject({ state: 'blackhole', latencyMs: 50 });
    expect(snap.up).toBe(false);
  });

  it('`up` clears the cable faults but keeps shaping; `restore` clears everything', () => {
    const { link } = state();
    link.apply({ kind: 'bandwidth', bytesPerSec: 1000 });
    link.apply({ kind: 'loss', percent: 2 });
    link.apply({ kind: 'down' });
    link.apply({ kind: 'up' });
    let snap = link.snapshot(0);
    expect(snap.up).toBe(true);
    expect(snap['source-to-destination']).toMatchObject({ state: 'up', rateBytesPerSec: 1000, lossPercent: 2 });
    link.restore();
    snap = link.snapshot(0);
    expect(snap['source-to-destination']).toMatchObject({ state: 'up', rateBytesPerSec: 0, lossPercent: 0, latencyMs: 0 });
  });

  it('a cut in either direction resets connections and refuses new ones until up', () => {
    const { link, cuts } = state();
    link.apply({ kind: 'cut', direction: 'destination-to-source' });
    expect(cuts()).toBe(1);
    expect(link.refuseNew).toBe(true);
    link.apply({ kind: 'up' });
    expect(link.refuseNew).toBe(false);
  });

  it('flap shows as flapping while it runs; up stops it', async () => {
    const { link, clock, cuts } = state();
    link.apply({ kind: 'flap', upMs: 100, downMs: 50 });
    expect(link.snapshot(0)).toMatchObject({ flapping: true, up: false });
    await clock.advance(60);
    expect(link.snapshot(0)).toMatchObject({ flapping: true, up: true });
    await clock.advance(100);
    expect(cuts()).toBeGreaterThanOrEqual(2);
    link.apply({ kind: 'up' });
    expect(link.snapshot(0)).toMatchObject({ flapping: false, up: true });
    expect(clock.pending).toBe(0);
  });

  it('bandwidth 0 lifts the cap (the TUI\'s unlimited-rate preset), through the control socket too', () => {
    const { link } = state();
    link.apply({ kind: 'bandwidth', bytesPerSec: 1000 });
    expect(link.directions['source-to-destination'].bucket.bytesPerSec).toBe(1000);
    const r = handleControlLine('{"cmd":"apply","fault":{"kind":"bandwidth","bytesPerSec":0,"direction":"both"}}', {
      apply: (f) => link.apply(f),
      restore: () => link.restore(),
      snapshot: () => link.snapshot(0),
      quit: () => {},
    });
    expect(r.response).toEqual({ ok: true });
    expect(link.snapshot(0)['source-to-destination'].rateBytesPerSec).toBe(0);
    expect(link.directions['destination-to-source'].bucket.bytesPerSec).toBe(0);
  });

  it('a counted flap ends up and stops flapping', async () => {
    const { link, clock } = state();
    link.apply({ kind: 'flap', upMs: 10, downMs: 10, mode: 'blackhole', count: 2 });
    await clock.advance(100);
    expect(link.snapshot(0)).toMatchObject({ flapping: false, up: true });
  });
});

describe('control lines', () => {
  const target = () => {
    const applied: unknown[] = [];
    return {
      applied,
      apply: (f: unknown) => applied.push(f),
      restore: () => {},
      snapshot: () => ({ kind: 'relay' }) as never,
      quit: () => {},
    };
  };

  it('answers each command', () => {
    const t = target();
    expect(handleControlLine('{"cmd":"apply","fault":{"kind":"cut"}}', t).response).toEqual({ ok: true });
    expect(t.applied).toEqual([{ kind: 'cut' }]);
    expect(handleControlLine('{"cmd":"snapshot","id":7}', t).response).toEqual({ id: 7, kind: 'relay' });
    expect(handleControlLine('{"cmd":"quit"}', t)).toEqual({ response: { ok: true }, quit: true });
  });

  it('turns every bad request into an error naming the right form', () => {
    const t = target();
    const err = (line: string): string => (handleControlLine(line, t).response as { error: string }).error;
    expect(err('not json')).toMatch(/one line of JSON/);
    expect(err('[1]')).toMatch(/must be a JSON object/);
    expect(err('{"cmd":"jump"}')).toMatch(/unknown cmd "jump"; expected .*"cmd":"snapshot"/);
    expect(err('{"cmd":"apply"}')).toMatch(/"apply" needs a "fault"/);
    expect(err('{"cmd":"apply","fault":{"kind":"latency","ms":-5}}')).toMatch(/latency ms must be from 0 to 60000 milliseconds, got -5/);
    expect(t.applied).toEqual([]);
  });
});

describe('relay arguments', () => {
  it('parses routes and options', () => {
    expect(parseRelayArgs(['--control', '/r/relay.sock', '--route', '127.0.0.1:0=127.0.0.1:4444', '--parent-pid', '12', '--seed', '3'])).toEqual({
      control: '/r/relay.sock',
      routes: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: 4444 } }],
      parentPid: 12,
      seed: 3,
    });
  });

  it('refuses non-loopback addresses and malformed routes', () => {
    expect(() => parseRelayArgs(['--control', 'x', '--route', '0.0.0.0:1=127.0.0.1:2'])).toThrow(/only uses loopback/);
    expect(() => parseRelayArgs(['--control', 'x', '--route', '127.0.0.1:1'])).toThrow(/<listen>=<target>/);
    expect(() => parseRelayArgs(['--route', '127.0.0.1:1=127.0.0.1:2'])).toThrow(UsageError);
    expect(() => parseRelayArgs(['--control', 'x'])).toThrow(/at least one --route/);
  });
});
