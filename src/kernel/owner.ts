/**
 * Who owns a run's namespaces. start() writes `/run/postcopy-lab/<runId>.json` with the owner's
 * pid and that process's start time (so a recycled pid is not mistaken for the owner); cleanup
 * and doctor use it to tell a live run from the leftovers of a killed one. /run is a tmpfs, so a
 * reboot clears markers along with namespaces.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const OWNER_DIR = '/run/postcopy-lab';

export interface OwnerMarker {
  runId: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. */
  pidStart: string | null;
  namespaces: string[];
  createdAt: string;
}

/** A process's start time, or null when it does not exist (or /proc is not readable). */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall = index 19 after fields 1 and 2
  } catch {
    return null;
  }
}

/** True when `pid` runs and is the same process that wrote the marker. */
export function isOwnerAlive(m: Pick<OwnerMarker, 'pid' | 'pidStart'>): boolean {
  const start = processStart(m.pid);
  if (start === null) return false;
  return m.pidStart === null || m.pidStart === start;
}

function markerPath(runId: string, dir: string): string {
  return path.join(dir, `${runId}.json`);
}

export async function writeOwner(runId: string, namespaces: string[], dir = OWNER_DIR): Promise<void> {
  const m: OwnerMarker = { runId, pid: process.pid, pidStart: processStart(process.pid), namespaces, createdAt: new Date().toISOString() };
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFile(markerPath(runId, dir), JSON.stringify(m) + '\n', { mode: 0o644 });
}

export async function readOwner(runId: string, dir = OWNER_DIR): Promise<OwnerMarker | null> {
  try {
    return JSON.parse(await readFile(markerPath(runId, dir), 'utf8')) as OwnerMarker;
  } catch {
    return null;
  }
}

export async function removeOwner(runId: string, dir = OWNER_DIR): Promise<void> {
  await rm(markerPath(runId, dir), { force: true });
}

export async function listOwners(dir = OWNER_DIR): Promise<OwnerMarker[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: OwnerMarker[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    const m = await readOwner(n.slice(0, -'.json'.length), dir);
    if (m) out.push(m);
  }
  return out;
}
