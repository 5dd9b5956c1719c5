/** The drill's live counters line: what it claims about the destination's pages. */
import { describe, expect, it } from 'vitest';
import { counterLineDue, countersLine } from '../../../src/commands/drill.js';
import { fakePages, fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';

describe('countersLine', () => {
  it('names the destination’s received pages where they are counted', () => {
    const s = fakeSnapshot({ destination: fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ received: 100, total: 400 }) }) });
    expect(countersLine(s)).toContain('dst postcopy-active received 100/400 pages');
  });
  it('QEMU without postcopy-blocktime: blocktime not measured, no "0 vCPUs blocked"; no fault p99 without faults measured', () => {
    const s = fakeSnapshot({ destination: fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ received: 100, total: 400, 'blocktime-unknown': true, 'fault-latency-us': { p50: 0, p99: 0, count: 0 } }) }) });
    const line = countersLine(s);
    expect(line).toContain('blocktime not measured, fault p99 –');
    expect(line).not.toMatch(/vCPUs? blocked/);
  });
  it('one vCPU blocked is one vCPU', () => {
    const one = fakeSnapshot({ destination: fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocked-vcpus': 1 }) }) });
    expect(countersLine(one)).toMatch(/ 1 vCPU blocked, /);
    const two = fakeSnapshot({ destination: fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocked-vcpus': 2 }) }) });
    expect(countersLine(two)).toMatch(/ 2 vCPUs blocked, /);
  });
  it('libvirt (counts-unknown): the state alone, not "received 0/N"', () => {
    const s = fakeSnapshot({ destination: fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ received: 0, total: 400, 'counts-unknown': true }) }) });
    const line = countersLine(s);
    expect(line).toContain('dst postcopy-active (page counts not reported)');
    expect(line).not.toMatch(/received 0\//);
  });
});

describe('counterLineDue', () => {
  it('once a second', () => {
    expect(counterLineDue(1500, 1000, -Infinity)).toBe(false);
    expect(counterLineDue(2000, 1000, -Infinity)).toBe(true);
  });
  it('not for a snapshot taken before a link change already printed (it would say the old link)', () => {
    expect(counterLineDue(14100, 13000, 14300)).toBe(false);
    expect(counterLineDue(14400, 13000, 14300)).toBe(true);
  });
});
