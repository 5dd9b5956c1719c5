/**
 * One definition of each counter, seen the same everywhere: on a real drill with `--record`
 * and `--json`, the snapshot the summary was made from, the `--json` summary, the record's
 * summary, the human summary line (as `replay` prints it, which is what the drill printed) and
 * the counters panel's cells all give the same numbers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureBuilt, runCli, tempDir } from '../../helpers/sim.js';
import { summaryCounters, summaryCountersLine } from '../../../src/lab/summary.js';
import { sideCells } from '../../../src/ui/components/SideCounters.js';
import type { RunSummary, Snapshot } from '../../../src/types.js';

type Line = Record<string, unknown> & { type: string };

/** The summary line and the last snapshot written before it. */
function summaryAndItsSnapshot(lines: Line[]): { summary: RunSummary; snap: Snapshot } {
  const i = lines.findIndex((l) => l.type === 'summary');
  expect(i, 'a summary line').toBeGreaterThan(0);
  const snap = lines.slice(0, i).reverse().find((l) => l.type === 'snapshot');
  expect(snap, 'a snapshot before the summary').toBeDefined();
  return { summary: lines[i] as unknown as RunSummary, snap: snap as unknown as Snapshot };
}

const parse = (text: string): Line[] =>
  text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Line);

describe('the counters agree between the panel, the summary and --json', () => {
  it('on a recorded link-cut-recovery drill', async () => {
    await ensureBuilt();
    const dir = tempDir('postcopy-counters-');
    const record = path.join(dir, 'run.jsonl');
    const drill = await runCli(['drill', 'link-cut-recovery', '--json', '--record', record], dir, 180_000);
    expect(drill.code, drill.stderr).toBe(0);

    const fromJson = summaryAndItsSnapshot(parse(drill.stdout));
    const fromRecord = summaryAndItsSnapshot(parse(fs.readFileSync(record, 'utf8')));
    const counters = summaryCounters(fromJson.snap);
    // The summary's counters are the snapshot's, field by field, in --json and in the record.
    expect(fromJson.summary).toMatchObject(counters);
    expect(summaryCounters(fromRecord.snap)).toEqual(counters);
    expect(fromRecord.summary).toMatchObject(counters);
    // A run that recovered and completed: every page sent once at least and received.
    expect(counters.recoveries).toBeGreaterThanOrEqual(1);
    expect(counters.pagesSent).toBe(fromJson.snap.source.pages?.total);
    expect(counters.pagesReceived).toBe(counters.pagesSent);

    // The human summary says the same numbers with their units.
    const replay = await runCli(['replay', record], dir, 30_000);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain(summaryCountersLine(fromJson.summary));
    expect(replay.stdout).toMatch(/vCPU blocktime \d+\.\d{1,2} vCPU·s \(worst vCPU \d+\.\d{1,2} s\)/);

    // The panel shows the same numbers from the same snapshot, each beside its word.
    const src = sideCells(fromJson.snap.source).map((c) => c.text);
    const dst = sideCells(fromJson.snap.destination).map((c) => c.text);
    expect(src).toContain(`${counters.pagesSent} sent`);
    expect(src).toContain(`${counters.pagesResent} re-sent`);
    expect(dst).toContain(`${counters.pagesReceived} received`);
    expect(dst).toContain(`${counters.duplicatesDiscarded} dup discarded`);
    const bt = counters.blocktimeMs ?? 0;
    expect(dst.some((t) => t.endsWith(`${(bt / 1000).toFixed(bt >= 100_000 ? 0 : 1)} vCPU·s`))).toBe(true);
  }, 240_000);
});
