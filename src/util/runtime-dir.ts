/**
 * A run's private directory for its QMP and control sockets: `postcopy-lab-XXXXXX` (0700) under
 * XDG_RUNTIME_DIR when usable, else the temp dir. The orchestrator removes it when it stops; a
 * run killed with SIGKILL cannot, so the directory names its owner (`owner.json`: pid and that
 * process's start time) and `postcopy-lab cleanup` removes the ones whose owner is gone. A
 * directory without a marker is not known to be ours (another tool, or a run between mkdtemp
 * and writing the marker) and is left alone.
 */
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isOwnerAlive, processStart } from '../kernel/owner.js';

export const RUNTIME_DIR_PREFIX = 'postcopy-lab-';
const OWNER_FILE = 'owner.json';
/** mkdtemp's six random characters after the prefix. */
const NAME_RE = /^postcopy-lab-[A-Za-z0-9]{6}$/;

/** Where runtime directories are made (the first) and looked for (all): XDG_RUNTIME_DIR, the temp dir. */
export async function runtimeDirBases(env: Record<string, string | undefined> = process.env): Promise<string[]> {
  const bases: string[] = [];
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg) {
    try {
      if ((await stat(xdg)).isDirectory()) bases.push(xdg);
    } catch {
      // not usable: the temp dir only
    }
  }
  const tmp = os.tmpdir();
  if (!bases.includes(tmp)) bases.push(tmp);
  return bases;
}

/** A fresh private runtime directory, marked as this process's. */
export async function makeRuntimeDir(): Promise<string> {
  const [base] = await runtimeDirBases();
  const dir = await mkdtemp(path.join(base!, RUNTIME_DIR_PREFIX));
  await chmod(dir, 0o700);
  await writeFile(path.join(dir, OWNER_FILE), JSON.stringify({ pid: process.pid, pidStart: processStart(process.pid) }) + '\n', { mode: 0o600 });
  return dir;
}

export interface RuntimeDir {
  path: string;
  ownerPid: number;
  /** Its owner still runs: a run in progress, not a leftover. */
  active: boolean;
}

/** Our marked runtime directories under `bases`, live and dead. */
export async function findRuntimeDirs(bases?: string[]): Promise<RuntimeDir[]> {
  const out: RuntimeDir[] = [];
  for (const base of bases ?? (await runtimeDirBases())) {
    let names: string[];
    try {
      names = await readdir(base);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => NAME_RE.test(n))) {
      const dir = path.join(base, name);
      let owner: { pid?: unknown; pidStart?: unknown };
      try {
        owner = JSON.parse(await readFile(path.join(dir, OWNER_FILE), 'utf8')) as typeof owner;
      } catch {
        continue; // no marker (or not ours to read): not known to be a run's
      }
      if (typeof owner.pid !== 'number') continue;
      const pidStart = typeof owner.pidStart === 'string' ? owner.pidStart : null;
      out.push({ path: dir, ownerPid: owner.pid, active: isOwnerAlive({ pid: owner.pid, pidStart }) });
    }
  }
  return out;
}

export interface RuntimeDirCleanup {
  removed: string[];
  errors: string[];
}

/** Remove the runtime directories (and the sockets in them) of runs whose owner is gone. */
export async function cleanupRuntimeDirs(bases?: string[]): Promise<RuntimeDirCleanup> {
  const result: RuntimeDirCleanup = { removed: [], errors: [] };
  for (const d of await findRuntimeDirs(bases)) {
    if (d.active) continue;
    try {
      await rm(d.path, { recursive: true, force: true });
      result.removed.push(d.path);
    } catch (err) {
      result.errors.push(`${d.path}: ${(err as Error).message}`);
    }
  }
  return result;
}
