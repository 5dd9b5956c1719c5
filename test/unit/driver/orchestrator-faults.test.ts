/**
 * Link faults against destination guest reads that touch pages (QEMU's `xp`): a fault that can
 * stop pages waits for a read in flight and holds new ones until the link is restored; a fault
 * that only slows pages (latency) does neither. A scripted backend and link: nothing starts.
 */
import { describe, expect, it } from 'vitest';
import type { GuestWork, VmBackend } from '../../../src/driver/backend.js';
import { Orchestrator } from '../../../src/driver/orchestrator.js';
import type { QmpClient } from '../../../src/qmp/client.js';
import type { Link, LinkFault, Side } from '../../../src/types.js';

const work: GuestWork = { ops: 1, opsPerSecond: 1, nominalOpsPerSecond: 1, runningMs: 1, throttlePercentage: 0, worstStallMs: 0 };

function setup() {
  const reads: Array<{ side: Side; release: () => void }> = [];
  const linkCalls: string[] = [];
  const backend = {
    kind: 'qemu',
    qemuVersion: '10.0',
    readyTimeoutMs: 1000,
    guestReadTouchesPages: true,
    readGuest: (side: Side) => new Promise<GuestWork>((resolve) => reads.push({ side, release: () => resolve(work) })),
  } as unknown as VmBackend;
  const link = {
    apply: async (f: LinkFault) => void linkCalls.push(`apply ${f.kind}`),
    restore: async () => void linkCalls.push('restore'),
  } as unknown as Link;
  const orch = new Orchestrator({ guest: {} as never, makeLink: () => link, onEvent: () => {}, backend });
  orch.link = link;
  const readGuest = (side: Side) => (orch as unknown as { readGuest(s: Side, q: QmpClient): Promise<unknown> }).readGuest(side, {} as QmpClient);
  return { orch, reads, linkCalls, readGuest };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('Orchestrator.applyLinkFault with a backend whose guest reads touch pages', () => {
  it('lets a destination read in flight finish before a cut, then holds destination reads until the restore', async () => {
    const { orch, reads, linkCalls, readGuest } = setup();
    const inFlight = readGuest('destination');
    const cut = orch.applyLinkFault({ kind: 'cut' });
    await tick();
    expect(linkCalls).toEqual([]); // still waiting for the read
    reads[0].release();
    await inFlight;
    await cut;
    expect(linkCalls).toEqual(['apply cut']);
    // Held: no read reaches the backend for the destination; the source is read as before.
    expect(await readGuest('destination')).toBeNull();
    const src = readGuest('source');
    expect(reads.map((r) => r.side)).toEqual(['destination', 'source']);
    reads[1].release();
    expect(await src).not.toBeNull();
    await orch.restoreLink();
    const again = readGuest('destination');
    expect(reads.at(-1)?.side).toBe('destination');
    reads.at(-1)!.release();
    expect(await again).not.toBeNull();
  });

  it('does not wait for or hold reads for a fault that only slows pages (latency), and an up both ways releases the hold', async () => {
    const { orch, reads, linkCalls, readGuest } = setup();
    void readGuest('destination');
    await orch.applyLinkFault({ kind: 'latency', ms: 20 });
    expect(linkCalls).toEqual(['apply latency']);
    void readGuest('destination');
    expect(reads).toHaveLength(2);
    reads.forEach((r) => r.release());
    await orch.applyLinkFault({ kind: 'blackhole' });
    expect(await readGuest('destination')).toBeNull();
    await orch.applyLinkFault({ kind: 'up' });
    void readGuest('destination');
    expect(reads).toHaveLength(3);
    reads[2].release();
  });
});

describe('Orchestrator: connections the destination refused behind the relay', () => {
  it('says so once per new refusal, naming the command that listens (the source itself saw only a reset)', () => {
    const events: Array<{ kind: string; text: string }> = [];
    const orch = new Orchestrator({ guest: {} as never, makeLink: () => ({}) as Link, onEvent: (e) => void events.push(e), backend: {} as VmBackend });
    const note = (refused: number | undefined, refusedSecond?: number) =>
      (orch as unknown as { noteRefused(l: { refused?: number; refusedSecond?: number }): void }).noteRefused({ refused, refusedSecond });
    note(undefined); // the kernel link: the source is refused itself
    note(0);
    expect(events).toEqual([]);
    note(1);
    note(1);
    expect(events).toHaveLength(1);
    expect(events[0].kind).toBe('warning');
    expect(events[0].text).toMatch(/^link: nothing listened on the destination: .*migrate-recover in a recovery\)$/);
    note(3);
    expect(events[1].text).toMatch(/^link: nothing listened on the destination \(2 times\):/);
    // Beside an open connection to the same address: the preempt channel nobody expected.
    note(4, 1);
    expect(events).toHaveLength(3);
    expect(events[2].text).toMatch(/^link: the destination refused the source's second connection: .*postcopy-preempt set on the destination too/);
  });
});

describe('Orchestrator.snapshot', () => {
  it('reads the link only once both sides have answered: the cause (a fault) is never older than its effect (both sides paused)', async () => {
    const { orch } = setup();
    (orch as unknown as { backend: { combine(): void } }).backend.combine = () => {};
    const log: string[] = [];
    const gates: Array<() => void> = [];
    const o = orch as unknown as { readSide(side: Side): Promise<null>; linkSnapshot(): Promise<unknown> };
    o.readSide = (side) =>
      new Promise((resolve) => {
        log.push(`read ${side}`);
        gates.push(() => {
          log.push(`${side} answered`);
          resolve(null);
        });
      });
    o.linkSnapshot = async () => {
      log.push('link');
      return { kind: 'relay', up: false };
    };
    const snap = orch.snapshot();
    await tick();
    expect(log).toEqual(['read source', 'read destination']);
    gates[0]!();
    await tick();
    expect(log).not.toContain('link');
    gates[1]!();
    expect((await snap).link).toMatchObject({ up: false });
    expect(log).toEqual(['read source', 'read destination', 'source answered', 'destination answered', 'link']);
  });
});
