/**
 * Remembered progress: which labs a person has completed and how long each took, in
 * `$XDG_STATE_HOME/postcopy-lab/progress.json` (default `~/.local/state/...`). A corrupt or
 * unreadable file is reported and treated as empty: progress is a convenience, never a reason
 * not to start.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stateDir } from '../util/state-dir.js';
import { dirname, join } from 'node:path';

export interface LabProgress {
  /** When the lab was last completed (ISO 8601). */
  completedAt: string;
  /** Time that run took. */
  durationMs: number;
  /** The fastest completion so far. */
  bestMs: number;
  /** How many times it has been completed. */
  count: number;
}

export interface Progress {
  version: 1;
  completed: Record<string, LabProgress>;
}

export interface LoadedProgress {
  progress: Progress;
  /** Set when the file existed but could not be used; the text says so for a person. */
  warning?: string;
}

/** Where progress lives for this environment. */
export function defaultProgressPath(env: Record<string, string | undefined> = process.env): string {
  return join(stateDir(env), 'progress.json');
}

const empty = (): Progress => ({ version: 1, completed: {} });

function isLabProgress(v: unknown): v is LabProgress {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return typeof o.completedAt === 'string' && typeof o.durationMs === 'number' && typeof o.bestMs === 'number' && typeof o.count === 'number';
}

/** Read progress; a missing file is empty progress, a corrupt one is empty progress and a warning. */
export function loadProgress(path: string = defaultProgressPath()): LoadedProgress {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { progress: empty() };
    return { progress: empty(), warning: `could not read progress file ${path} (${(err as Error).message}); starting fresh` };
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object') throw new Error('not an object');
    const completed = (parsed as { completed?: unknown }).completed;
    if (!completed || typeof completed !== 'object') throw new Error('no "completed" object');
    const out = empty();
    for (const [id, entry] of Object.entries(completed as Record<string, unknown>)) {
      if (isLabProgress(entry)) out.completed[id] = entry;
    }
    return { progress: out };
  } catch (err) {
    return { progress: empty(), warning: `progress file ${path} is corrupt (${(err as Error).message}); starting fresh` };
  }
}

function save(path: string, progress: Progress): void {
  mkdirSync(dirname(path), { recursive: true });
  // Write then rename, so a crash mid-write never leaves a half file behind.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(progress, null, 2) + '\n');
  renameSync(tmp, path);
}

/** Record a completed run of `labId`; returns the new progress. */
export function markCompleted(labId: string, durationMs: number, path: string = defaultProgressPath(), now: Date = new Date()): Progress {
  const { progress } = loadProgress(path);
  const prev = progress.completed[labId];
  progress.completed[labId] = {
    completedAt: now.toISOString(),
    durationMs,
    bestMs: prev ? Math.min(prev.bestMs, durationMs) : durationMs,
    count: (prev?.count ?? 0) + 1,
  };
  save(path, progress);
  return progress;
}

/** Forget one lab's progress, or every lab's when `labId` is omitted; returns the new progress. */
export function resetProgress(labId?: string, path: string = defaultProgressPath()): Progress {
  const { progress } = loadProgress(path);
  if (labId === undefined) progress.completed = {};
  else delete progress.completed[labId];
  save(path, progress);
  return progress;
}
