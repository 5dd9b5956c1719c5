import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultProgressPath, loadProgress, markCompleted, resetProgress } from '../../../src/ui/progress.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pcl-progress-'));
  path = join(dir, 'postcopy-lab', 'progress.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('progress', () => {
  it('lives under XDG_STATE_HOME, or ~/.local/state', () => {
    expect(defaultProgressPath({ XDG_STATE_HOME: '/x/state' })).toBe('/x/state/postcopy-lab/progress.json');
    expect(defaultProgressPath({})).toMatch(/\.local\/state\/postcopy-lab\/progress\.json$/);
    // The XDG spec says relative paths are invalid and must be ignored.
    expect(defaultProgressPath({ XDG_STATE_HOME: 'relative' })).toMatch(/\.local\/state\/postcopy-lab\/progress\.json$/);
  });

  it('starts empty when there is no file', () => {
    expect(loadProgress(path)).toEqual({ progress: { version: 1, completed: {} } });
  });

  it('round-trips completions, keeping the best time and a count', () => {
    markCompleted('link-cut-recovery', 90_000, path, new Date('2025-01-01T00:00:00Z'));
    markCompleted('link-cut-recovery', 120_000, path, new Date('2025-01-02T00:00:00Z'));
    markCompleted('blackhole', 60_000, path);
    const { progress, warning } = loadProgress(path);
    expect(warning).toBeUndefined();
    expect(progress.completed['link-cut-recovery']).toEqual({
      completedAt: '2025-01-02T00:00:00.000Z',
      durationMs: 120_000,
      bestMs: 90_000,
      count: 2,
    });
    expect(Object.keys(progress.completed).sort()).toEqual(['blackhole', 'link-cut-recovery']);
  });

  it('resets one lab or all of them', () => {
    markCompleted('a', 1, path);
    markCompleted('b', 2, path);
    expect(Object.keys(resetProgress('a', path).completed)).toEqual(['b']);
    expect(Object.keys(loadProgress(path).progress.completed)).toEqual(['b']);
    expect(resetProgress(undefined, path).completed).toEqual({});
    expect(loadProgress(path).progress.completed).toEqual({});
  });

  it('tolerates a corrupt file: says so, starts fresh, and the next save repairs it', () => {
    mkdirSync(join(dir, 'postcopy-lab'), { recursive: true });
    writeFileSync(path, '{"version": 1, "completed": {"a": ');
    const loaded = loadProgress(path);
    expect(loaded.progress.completed).toEqual({});
    expect(loaded.warning).toMatch(/progress file .*progress\.json is corrupt .*starting fresh/);
    markCompleted('a', 5, path);
    expect(JSON.parse(readFileSync(path, 'utf8')).completed.a.durationMs).toBe(5);
  });

  it('drops entries of the wrong shape and keeps the rest', () => {
    mkdirSync(join(dir, 'postcopy-lab'), { recursive: true });
    writeFileSync(path, JSON.stringify({ version: 1, completed: { a: { completedAt: 'x', durationMs: 1, bestMs: 1, count: 1 }, b: 'nope' } }));
    expect(Object.keys(loadProgress(path).progress.completed)).toEqual(['a']);
    writeFileSync(path, '[]');
    expect(loadProgress(path).warning).toMatch(/corrupt/);
  });
});
