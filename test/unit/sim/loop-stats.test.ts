import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hop, LoopStatsRecorder, task, taskStart, type LoopStats } from '../../../src/sim/loop-stats.js';

describe('loop stats', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'loop-stats-'));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names tasks and keeps hops only while a recorder runs, and writes them with the loop figures', () => {
    const file = path.join(dir, 'source.json');
    const r = new LoopStatsRecorder(file);
    expect(taskStart()).toBe(0);
    hop('read', 1);
    r.start();
    const t0 = taskStart();
    expect(t0).toBeGreaterThan(0);
    const until = performance.now() + 3;
    while (performance.now() < until) {
      // A task that runs over 2 ms.
    }
    task('pump', t0);
    task('pump', taskStart());
    hop('read', 7);
    r.stop();
    hop('read', 8);
    const s = JSON.parse(readFileSync(file, 'utf8')) as LoopStats;
    expect(s.tasks.pump.count).toBe(2);
    expect(s.tasks.pump.over2).toBe(1);
    expect(s.tasks.pump.maxMs).toBeGreaterThanOrEqual(3);
    expect(s.hops.read.map(([p]) => p)).toEqual([7]);
    expect(s.elu).toBeGreaterThan(0);
    expect(s.cpuMs.user + s.cpuMs.system).toBeGreaterThan(0);
    if (process.platform === 'linux') expect(s.runQueueMs).toBeGreaterThanOrEqual(0);
  });
});
