import { describe, expect, it } from 'vitest';
import { formatCompareTable, resultCell } from '../../../src/compare/table.js';
import type { StrategyResult } from '../../../src/compare/run.js';

const row = (o: Partial<StrategyResult>): StrategyResult => ({
  strategy: 'precopy',
  completed: true,
  reason: null,
  bound: null,
  totalMs: 12_345,
  downtimeMs: 240,
  bytesSent: 300 * 1024 * 1024,
  passes: 3,
  throttlePct: 0,
  guestWorkLostPct: 12.34,
  guestWorkLostS: 1.5,
  worstStallMs: 380,
  recoverTo90Ms: 2500,
  ...o,
});

describe('formatCompareTable', () => {
  it('prints one row per strategy with every column, numbers in their units', () => {
    const t = formatCompareTable([row({}), row({ strategy: 'postcopy', downtimeMs: 3 })]);
    const lines = t.split('\n');
    expect(lines[0]).toMatch(/^strategy\s+result\s+total s\s+downtime ms\s+sent MiB\s+work lost\s+worst stall ms\s+to 90% s$/);
    expect(lines[2]).toMatch(/^precopy\s+completed\s+12\.3\s+240\s+300\s+12\.3% \(1\.5 s\)\s+380\s+2\.5$/);
    expect(lines[3]).toMatch(/^postcopy\s/);
  });
  it('shows a dash for what was not measured, and says why under the table', () => {
    const t = formatCompareTable([row({ guestWorkLostPct: null, guestWorkLostS: null, worstStallMs: null, recoverTo90Ms: null, guestNote: 'the qemu backend does not read the guest' })]);
    expect(t).toMatch(/completed\s+12\.3\s+240\s+300\s+—\s+—\s+—/);
    expect(t).toContain('precopy: guest columns: the qemu backend does not read the guest');
  });
  it('says why a strategy did not complete, with its bound and throttle', () => {
    expect(resultCell(row({ completed: false, reason: 'did not converge', bound: '30 s', downtimeMs: null }))).toBe('did not converge in 30 s');
    expect(resultCell(row({ completed: false, reason: 'did not converge', bound: '30 s', throttlePct: 60 }))).toBe('did not converge in 30 s (throttle 60%)');
    expect(resultCell(row({ completed: false, reason: 'max throttle reached', bound: '12 passes', throttlePct: 40 }))).toBe('max throttle reached (40%, in 12 passes)');
    expect(resultCell(row({ throttlePct: 50 }))).toBe('completed (throttle 50%)');
  });
  it('a refused strategy keeps QEMU\'s sentence in a note and leaves its numbers empty', () => {
    const reason = "refused: Parameter 'capability' does not accept value 'dirty-limit'";
    const t = formatCompareTable([row({ strategy: 'dirty-limit', completed: false, reason, downtimeMs: null, guestWorkLostPct: null, guestWorkLostS: null, worstStallMs: null, recoverTo90Ms: null })]);
    expect(t).toContain(`dirty-limit: ${reason}`);
    expect(t.split('\n')[2]).toMatch(/^dirty-limit\s+refused: .{1,40}\s+—\s+—\s+—\s+—/);
  });
});

describe('formatCompareTable at a width', () => {
  const wide = (strategy: string, over: Partial<StrategyResult> = {}): StrategyResult => row({ strategy, ...over });
  it('leaves out whole columns, least telling first, until every line fits, and says which', () => {
    const rows = [wide('precopy', { completed: false, reason: 'did not converge', bound: '15 s' }), wide('auto-converge', { throttlePct: 50 })];
    const full = formatCompareTable(rows);
    const fullWidth = Math.max(...full.split('\n').map((l) => l.length));
    const narrow = formatCompareTable(rows, { width: 80 });
    const table = narrow.split('\n\n')[0]!.split('\n');
    for (const l of table) expect(l.length).toBeLessThanOrEqual(80);
    expect(fullWidth).toBeGreaterThan(80);
    expect(table[0]).not.toContain('sent MiB');
    expect(table[0]).toContain('work lost');
    expect(narrow).toMatch(/not shown at this width: sent MiB/);
    // Wide enough: nothing is left out and nothing is said about it.
    expect(formatCompareTable(rows, { width: fullWidth })).toBe(full);
  });

  it('wraps its notes to the width, each under itself, so none loses its end at the edge', () => {
    const rows = [wide('precopy', { completed: false, reason: 'did not converge', bound: '15 s' }), wide('auto-converge', { throttlePct: 50 })];
    const t = formatCompareTable(rows, { width: 60 });
    const notes = t.split('\n\n')[1]!;
    for (const l of notes.split('\n')) expect(l.length).toBeLessThanOrEqual(60);
    expect(notes.replace(/\s+/g, ' ').trim()).toMatch(/not shown at this width: .* \(a wider terminal, or postcopy-lab compare, shows them\)$/);
    expect(notes.split('\n').slice(1).every((l) => l.startsWith('    '))).toBe(true);
  });
});
