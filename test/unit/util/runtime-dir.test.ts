/**
 * Runtime directories name their owner, and cleanup removes only those whose owner is gone:
 * never a live run's, never a directory that is not known to be a run's.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processStart } from '../../../src/kernel/owner.js';
import { cleanupRuntimeDirs, findRuntimeDirs, makeRuntimeDir } from '../../../src/util/runtime-dir.js';

let base: string;
const savedXdg = process.env.XDG_RUNTIME_DIR;
afterEach(() => {
  if (savedXdg === undefined) delete process.env.XDG_RUNTIME_DIR;
  else process.env.XDG_RUNTIME_DIR = savedXdg;
  fs.rmSync(base, { recursive: true, force: true });
});

/** The pid of a process that has certainly exited: what a SIGKILLed owner looks like. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid;
}

function runDir(name: string, owner?: object): string {
  const dir = path.join(base, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'source.qmp'), ''); // stands in for a socket
  if (owner) fs.writeFileSync(path.join(dir, 'owner.json'), JSON.stringify(owner));
  return dir;
}

describe('runtime directories', () => {
  it('makeRuntimeDir makes a private directory marked with this process as its owner', async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'pcl-rtdir-'));
    process.env.XDG_RUNTIME_DIR = base;
    const dir = await makeRuntimeDir();
    expect(path.dirname(dir)).toBe(base);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(await findRuntimeDirs([base])).toEqual([{ path: dir, ownerPid: process.pid, active: true }]);
  });

  it('cleanup removes a dead owner\'s directory with its sockets, and keeps live and unknown ones', async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'pcl-rtdir-'));
    const dead = runDir('postcopy-lab-Dead01', { pid: deadPid(), pidStart: null });
    // A recycled pid: alive, but not the process that wrote the marker.
    const recycled = runDir('postcopy-lab-Recyc1', { pid: process.pid, pidStart: '1' });
    const live = runDir('postcopy-lab-Live01', { pid: process.pid, pidStart: processStart(process.pid) });
    const unmarked = runDir('postcopy-lab-NoMark');
    const notOurs = runDir('postcopy-lab-test-build.lock', { pid: deadPid(), pidStart: null });

    const found = await findRuntimeDirs([base]);
    expect(found.filter((d) => !d.active).map((d) => d.path).sort()).toEqual([dead, recycled].sort());

    const result = await cleanupRuntimeDirs([base]);
    expect(result.errors).toEqual([]);
    expect(result.removed.sort()).toEqual([dead, recycled].sort());
    for (const d of [live, unmarked, notOurs]) expect(fs.existsSync(d)).toBe(true);
    for (const d of [dead, recycled]) expect(fs.existsSync(d)).toBe(false);
    // Again: nothing left to remove.
    expect((await cleanupRuntimeDirs([base])).removed).toEqual([]);
  });
});
