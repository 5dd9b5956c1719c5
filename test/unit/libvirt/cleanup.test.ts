import { mkdirSync, mkdtempSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupLibvirtLeftovers, findLibvirtLeftovers } from '../../../src/libvirt/cleanup.js';
import type { Argv } from '../../../src/kernel/argv.js';
import { processStart } from '../../../src/kernel/owner.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A state root with one pair directory per entry; owner pid null: no marker. */
function stateRoot(pairs: Record<string, number | null>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pcl-libvirt-cleanup-'));
  roots.push(root);
  for (const [runId, pid] of Object.entries(pairs)) {
    mkdirSync(path.join(root, runId, 'src', 'run'), { recursive: true });
    if (pid !== null) {
      const marker = { runId, pid, pidStart: processStart(pid), namespaces: [`pcl-${runId}-src`, `pcl-${runId}-dst`], mountNamespaces: [], createdAt: '' };
      writeFileSync(path.join(root, runId, 'pair.json'), JSON.stringify(marker));
    }
  }
  return root;
}

/** A runner that records argv and answers like a machine where nothing runs in the namespaces. */
function fakeRunner(calls: Argv[]) {
  return async (argv: Argv) => {
    calls.push(argv);
    if (argv[0] === 'umount') throw new Error(`umount: ${argv[1]}: not mounted.`);
    return { stdout: '', stderr: '' };
  };
}

describe('libvirt leftovers', () => {
  it('tells a live pair (its owner runs) from a killed run', async () => {
    const root = stateRoot({ live: process.pid, dead: 2 ** 22 + 7, nomarker: null });
    const found = await findLibvirtLeftovers({ stateRoot: root });
    const byId = Object.fromEntries(found.map((f) => [f.runId, f]));
    expect(byId.live.active).toBe(true);
    expect(byId.dead.active).toBe(false);
    expect(byId.nomarker).toMatchObject({ active: false, namespaces: ['pcl-nomarker-src', 'pcl-nomarker-dst'] });
  });

  it("removes a killed run's pair (unbinding both mount namespaces) and keeps a live one, saying why", async () => {
    const root = stateRoot({ live: process.pid, dead: 2 ** 22 + 7 });
    const calls: Argv[] = [];
    const r = await cleanupLibvirtLeftovers({ stateRoot: root, runner: fakeRunner(calls) });
    expect(r.errors).toEqual([]);
    expect(r.removed).toEqual([path.join(root, 'dead')]);
    expect(r.skipped).toEqual([{ name: 'libvirt pair live', reason: `in use by a running postcopy-lab (pid ${process.pid})` }]);
    expect(existsSync(path.join(root, 'dead'))).toBe(false);
    expect(existsSync(path.join(root, 'live'))).toBe(true);
    expect(calls).toContainEqual(['ip', 'netns', 'pids', 'pcl-dead-src']);
    expect(calls).toContainEqual(['umount', path.join(root, 'dead', 'src.mnt')]);
    expect(calls).toContainEqual(['umount', path.join(root, 'dead', 'dst.mnt')]);
    expect(calls.some((c) => c.some((w) => w.includes('live')))).toBe(false);
  });

  it('reports an unmount that fails for another reason, and keeps going', async () => {
    const root = stateRoot({ dead: 2 ** 22 + 7 });
    const r = await cleanupLibvirtLeftovers({
      stateRoot: root,
      runner: async (argv) => {
        if (argv[0] === 'umount') throw new Error('umount: target is busy.');
        return { stdout: '', stderr: '' };
      },
    });
    expect(r.removed).toEqual([]);
    expect(r.errors.join('\n')).toMatch(/libvirt pair dead: umount .*src\.mnt: umount: target is busy/);
  });

  it('finds nothing where no pair ever ran', async () => {
    expect(await findLibvirtLeftovers({ stateRoot: '/nonexistent-pcl-root' })).toEqual([]);
  });
});
