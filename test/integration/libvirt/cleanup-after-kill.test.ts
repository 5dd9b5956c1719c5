/**
 * A run killed with SIGKILL leaves its libvirt pair behind (daemons, the QEMU they started,
 * mount namespaces, directories) and its kernel namespaces; `cleanupLeftovers` (what
 * `postcopy-lab cleanup` runs) must remove all of it. Skipped, saying why, where libvirt
 * cannot run.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cleanupLeftovers } from '../../../src/kernel/cleanup.js';
import { listNamespaces } from '../../../src/kernel/cleanup.js';
import { ROOT, ensureBuilt } from '../../helpers/sim.js';
import { exists, libvirtSkipReason } from './helpers.js';

const SKIP = await libvirtSkipReason({ systemQemu: true });

/** Pids whose command line names this run's directory (the domain's QEMU) or whose netns is the run's. */
async function runProcesses(root: string, namespaces: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const ns of namespaces) {
    const r = await execa('ip', ['netns', 'pids', ns], { reject: false });
    for (const l of String(r.stdout).split('\n')) if (Number(l) > 0) pids.add(Number(l));
  }
  const r = await execa('pgrep', ['-f', root], { reject: false });
  for (const l of String(r.stdout).split('\n')) if (Number(l) > 0) pids.add(Number(l));
  return [...pids];
}

describe.skipIf(SKIP !== undefined)(`cleanup after a killed libvirt run${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it('stops the daemons and the QEMU, unbinds the mount namespaces, removes the directories and namespaces', { timeout: 180_000 }, async () => {
    await ensureBuilt();
    if (!(await exists(path.join(ROOT, 'dist/src/libvirt/pair.js')))) await execa('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT });
    const runId = `lvk${process.pid}`;
    const namespaces = [`pcl-${runId}-src`, `pcl-${runId}-dst`];
    const child = execa(process.execPath, [path.join(ROOT, 'test/integration/libvirt/fixtures/hold-pair.mjs'), path.join(ROOT, 'dist'), runId, '10.213.41.0/24', '/usr/bin/qemu-system-x86_64'], {
      reject: false,
      stdout: 'pipe',
      stderr: 'pipe',
    });
    let root = '';
    try {
      root = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (s: string) => {
          out += s;
          const m = /ready (\S+)\n/.exec(out);
          if (m) resolve(m[1]);
        });
        void child.then((r) => reject(new Error(`the fixture exited before it was ready: ${String(r.stderr)}`)));
      });
      const before = await runProcesses(root, namespaces);
      // Two daemons and the domain's QEMU, at least.
      expect(before.length).toBeGreaterThanOrEqual(3);
      const marker = JSON.parse(await readFile(path.join(root, 'pair.json'), 'utf8')) as { pid: number };
      expect(marker.pid).toBe(child.pid);
    } finally {
      child.kill('SIGKILL');
      await child;
    }
    // The killed run's pieces are all still there...
    expect(await exists(root)).toBe(true);
    expect((await runProcesses(root, namespaces)).length).toBeGreaterThanOrEqual(3);

    const result = await cleanupLeftovers({ runId });
    expect(result.errors).toEqual([]);
    expect(result.removed.libvirtPairs).toEqual([root]);
    expect(result.removed.namespaces.sort()).toEqual([...namespaces].sort());
    // ...and none of them afterwards.
    expect(await exists(root)).toBe(false);
    expect(await runProcesses(root, namespaces)).toEqual([]);
    expect((await listNamespaces()).filter((n) => namespaces.includes(n))).toEqual([]);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(root);
  });
});
