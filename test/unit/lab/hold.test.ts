/**
 * The hold controller against a fake session: which migrate-set-parameters it sends, to which
 * side, when, and what it logs. No VMs: snapshots are scripted.
 */
import { describe, expect, it } from 'vitest';
import { parseCondition } from '../../../src/lab/condition.js';
import { describeHold, HoldController, type LabHold } from '../../../src/lab/hold.js';
import { loadLabText, LabError } from '../../../src/lab/load.js';
import type { HoldStatus, LabEvent, MigrationStatus, Side, Snapshot } from '../../../src/types.js';
import { fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';

function snap(status: MigrationStatus, received = 100): Snapshot {
  return fakeSnapshot({
    source: fakeSide('source', { status }),
    destination: fakeSide('destination', { status, pages: { ...fakeSide('destination').pages!, received } }),
  });
}

function setup() {
  const sent: { side: Side; args: Record<string, unknown> }[] = [];
  const events: Omit<LabEvent, 't'>[] = [];
  const statuses: (HoldStatus | null)[] = [];
  const hold = new HoldController({
    sendQmp: async (side, cmd) => {
      expect(cmd.execute).toBe('migrate-set-parameters');
      sent.push({ side, args: cmd.arguments ?? {} });
      return {};
    },
    emit: (e) => events.push(e),
    baseline: () => ({ 'max-bandwidth': 16 << 20, 'max-postcopy-bandwidth': 4 << 20, 'x-walk-window': 4 }),
    status: (s) => statuses.push(s),
  });
  return { hold, sent, events, statuses };
}

const WHILE_POSTCOPY: LabHold = { while: parseCondition('source.status == "postcopy-active"'), parameters: { 'max-postcopy-bandwidth': 65536 } };
const UNTIL_PAUSED = parseCondition('source.status == "postcopy-paused"');

describe('HoldController', () => {
  it('applies while `while` holds and restores the previous value when it turns false', async () => {
    const { hold, sent, events, statuses } = setup();
    await hold.observe(snap('active'));
    await hold.begin(3, WHILE_POSTCOPY, parseCondition('destination.pages.received > 999999'));
    expect(sent).toEqual([]);
    expect(statuses.at(-1)).toMatchObject({ step: 3, state: 'idle' });
    await hold.observe(snap('postcopy-active'));
    expect(sent).toEqual([{ side: 'source', args: { 'max-postcopy-bandwidth': 65536 } }]);
    expect(statuses.at(-1)).toMatchObject({ state: 'held', rate: 65536 });
    await hold.observe(snap('postcopy-active'));
    expect(sent).toHaveLength(1);
    await hold.observe(snap('completed'));
    expect(sent[1]).toEqual({ side: 'source', args: { 'max-postcopy-bandwidth': 4 << 20 } });
    expect(events.map((e) => e.text)).toEqual([
      'hold: max-postcopy-bandwidth 64 KiB/s while source.status == "postcopy-active" (so you can read at your own pace)',
      'hold released: max-postcopy-bandwidth 4 MiB/s again',
    ]);
  });

  it("releases as soon as the step's until holds, before the step ends", async () => {
    const { hold, sent } = setup();
    await hold.observe(snap('postcopy-active'));
    await hold.begin(0, WHILE_POSTCOPY, UNTIL_PAUSED);
    expect(sent).toHaveLength(1);
    await hold.observe(fakeSnapshot({ source: fakeSide('source', { status: 'postcopy-paused' }) }));
    expect(sent.at(-1)!.args).toEqual({ 'max-postcopy-bandwidth': 4 << 20 });
  });

  it("releaseIfHeld: Space for a drill's waiting learner, only on that step's hold while it holds", async () => {
    const { hold, sent } = setup();
    await hold.observe(snap('active'));
    await hold.begin(2, WHILE_POSTCOPY, UNTIL_PAUSED);
    // Not held yet (precopy): nothing to release.
    expect(hold.releaseIfHeld(2)).toBe(false);
    await hold.observe(snap('postcopy-active'));
    // Another step's: no.
    expect(hold.releaseIfHeld(1)).toBe(false);
    expect(hold.releaseIfHeld(2)).toBe(true);
    await hold.settled();
    expect(sent.map((x) => x.args['max-postcopy-bandwidth'])).toEqual([65536, 4 << 20]);
    // Released already: a second call does not hold it again.
    expect(hold.releaseIfHeld(2)).toBe(false);
    await hold.settled();
    expect(sent).toHaveLength(2);
  });

  it('Space releases and holds again; the event says who released it', async () => {
    const { hold, sent, events, statuses } = setup();
    await hold.observe(snap('postcopy-active'));
    await hold.begin(1, WHILE_POSTCOPY, UNTIL_PAUSED);
    expect(hold.toggle()).toBe(true);
    await hold.settled();
    expect(sent.map((s) => s.args['max-postcopy-bandwidth'])).toEqual([65536, 4 << 20]);
    expect(statuses.at(-1)).toMatchObject({ state: 'released' });
    expect(events.some((e) => e.text.includes('(you released it)'))).toBe(true);
    // A released hold stays released however the snapshots go, until Space again.
    await hold.observe(snap('postcopy-active'));
    expect(sent).toHaveLength(2);
    hold.toggle();
    await hold.settled();
    expect(sent.map((s) => s.args['max-postcopy-bandwidth'])).toEqual([65536, 4 << 20, 65536]);
  });

  it('restores when the step ends or another step begins, and sends each parameter to its side', async () => {
    const { hold, sent } = setup();
    const walk: LabHold = { while: null, parameters: { 'max-postcopy-bandwidth': 32768, 'x-walk-window': 1 } };
    await hold.begin(0, walk, UNTIL_PAUSED);
    expect(sent).toEqual([
      { side: 'source', args: { 'max-postcopy-bandwidth': 32768 } },
      { side: 'destination', args: { 'x-walk-window': 1 } },
    ]);
    await hold.begin(1, undefined, UNTIL_PAUSED);
    expect(sent.slice(2)).toEqual([
      { side: 'source', args: { 'max-postcopy-bandwidth': 4 << 20 } },
      { side: 'destination', args: { 'x-walk-window': 4 } },
    ]);
    expect(hold.toggle()).toBe(false);
    await hold.begin(2, walk, UNTIL_PAUSED);
    await hold.end(2);
    expect(sent).toHaveLength(8);
    expect(sent.at(-1)!.args).toEqual({ 'x-walk-window': 4 });
  });

  it('a refused command is logged, and the next one is still sent', async () => {
    const events: Omit<LabEvent, 't'>[] = [];
    let n = 0;
    const hold = new HoldController({
      sendQmp: async () => {
        if (n++ === 0) throw new Error('source: Parameter is invalid');
        return {};
      },
      emit: (e) => events.push(e),
      baseline: () => ({ 'max-postcopy-bandwidth': 1 }),
      status: () => {},
    });
    await hold.begin(0, { while: null, parameters: { 'max-postcopy-bandwidth': 2 } }, UNTIL_PAUSED);
    await hold.end(0);
    expect(events.map((e) => e.kind)).toEqual(['error', 'hold']);
    expect(n).toBe(2);
  });
});

const LAB = (hold: string, params = '{ max-postcopy-bandwidth: 4M }') => `
id: held
title: Held
summary: A hold.
setup:
  memory: 16M
  parameters: ${params}
steps:
  - title: One
    text: One.
    hints: [one]
    until: 'destination.status == "completed"'
    hold:
${hold}
expect: ['destination.status == "completed"']
summary-text: Done.
`;

describe('the hold field', () => {
  it('normalizes sizes and the while condition', () => {
    const lab = loadLabText(LAB(`      while: 'source.status == "postcopy-active"'\n      max-postcopy-bandwidth: 64K`), 'held.yaml');
    expect(lab.steps[0]!.hold!.parameters).toEqual({ 'max-postcopy-bandwidth': 65536 });
    expect(lab.steps[0]!.hold!.while!.source).toBe('source.status == "postcopy-active"');
  });

  it('refuses an unknown parameter, naming the known ones, at its line and column', () => {
    expect(() => loadLabText(LAB(`      max-postcopy-bandwith: 64K`), 'held.yaml')).toThrow(LabError);
    try {
      loadLabText(LAB(`      max-postcopy-bandwith: 64K`), 'held.yaml');
    } catch (e) {
      const m = (e as Error).message;
      expect(m).toMatch(/held\.yaml:14:7/);
      expect(m).toContain("did you mean 'max-postcopy-bandwidth'");
      expect(m).toContain('max-bandwidth, max-postcopy-bandwidth, x-walk-window, max-cpu-throttle, x-walk-rate');
    }
  });

  it('takes max-cpu-throttle as a percentage in QEMU\'s range, 1 to 99', () => {
    const lab = loadLabText(LAB(`      max-cpu-throttle: 20`, '{ max-cpu-throttle: 99 }'), 'held.yaml');
    expect(lab.steps[0]!.hold!.parameters).toEqual({ 'max-cpu-throttle': 20 });
    expect(describeHold(lab.steps[0]!.hold!.parameters)).toBe('max-cpu-throttle 20%');
    expect(() => loadLabText(LAB(`      max-cpu-throttle: 0`, '{ max-cpu-throttle: 99 }'), 'held.yaml')).toThrow(/a percentage from 1 to 99/);
    expect(() => loadLabText(LAB(`      max-cpu-throttle: 20%`, '{ max-cpu-throttle: 99 }'), 'held.yaml')).toThrow(/a percentage from 1 to 99/);
    expect(() => loadLabText(LAB(`      max-cpu-throttle: 20`), 'held.yaml')).toThrow(/a hold on max-cpu-throttle needs the value it restores/);
  });

  it('refuses a hold whose value to restore the lab does not set', () => {
    expect(() => loadLabText(LAB(`      max-bandwidth: 1M`), 'held.yaml')).toThrow(/a hold on max-bandwidth needs the value it restores/);
  });

  it('refuses a bad size and a hold with nothing to hold', () => {
    expect(() => loadLabText(LAB(`      max-postcopy-bandwidth: lots`), 'held.yaml')).toThrow(/max-postcopy-bandwidth/);
    expect(() => loadLabText(LAB(`      while: 'link.up'`), 'held.yaml')).toThrow(/at least one parameter/);
  });
});

describe('the rate the status names', () => {
  it('is the precopy cap during precopy and the postcopy cap after the switch', async () => {
    const { hold, statuses } = setup();
    const both: LabHold = { while: null, parameters: { 'max-bandwidth': 2 << 20, 'max-postcopy-bandwidth': 65536 } };
    await hold.observe(snap('active'));
    await hold.begin(0, both, UNTIL_PAUSED);
    expect(statuses.at(-1)).toMatchObject({ state: 'held', rate: 2 << 20 });
    await hold.observe(snap('postcopy-active'));
    expect(statuses.at(-1)).toMatchObject({ state: 'held', rate: 65536 });
  });
});
