/**
 * Leftovers of a killed run are found and removed by prefix; a live run is left alone; the
 * probe reports what the kernel really has and leaves no scratch namespace behind.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { cleanupLeftovers, findLeftovers } from '../../../src/kernel/cleanup.js';
import { buildDoctorReport, formatDoctor } from '../../../src/kernel/doctor.js';
import { KernelLink } from '../../../src/kernel/kernel-link.js';
import { OWNER_DIR } from '../../../src/kernel/owner.js';
import { probeKernel } from '../../../src/kernel/probe.js';
import { namespacesNow, rootSkipReason, uniqueRunId } from './helpers.js';

const skipReason = rootSkipReason();
const title = (t: string) => (skipReason ? `${t} (skipped: ${skipReason})` : t);

/** The pid of a process that has certainly exited: what a SIGKILLed owner looks like. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid;
}

describe.skipIf(!!skipReason)(title('cleanup of a killed run'), () => {
  it('finds a run whose owner died and removes its namespaces and marker', async () => {
    const runId = uniqueRunId('cl');
    const link = new KernelLink({ runId });
    try {
      await link.start();
      // "Kill" the owner: never call stop(), and make the marker name a process that is gone.
      const markerFile = `${OWNER_DIR}/${runId}.json`;
      const marker = JSON.parse(await readFile(markerFile, 'utf8')) as { pid: number; pidStart: string | null };
      await writeFile(markerFile, JSON.stringify({ ...marker, pid: deadPid(), pidStart: null }));

      const found = await findLeftovers({ runId });
      expect(found.namespaces.map((n) => n.name).sort()).toEqual([`pcl-${runId}-dst`, `pcl-${runId}-src`]);
      expect(found.namespaces.every((n) => !n.active && n.runId === runId)).toBe(true);

      const result = await cleanupLeftovers({ runId });
      expect(result.errors).toEqual([]);
      expect(result.removed.namespaces.sort()).toEqual([`pcl-${runId}-dst`, `pcl-${runId}-src`]);
      expect(result.removed.markers).toEqual([runId]);
      expect(namespacesNow().filter((n) => n.startsWith(`pcl-${runId}`))).toEqual([]);
      // Running it again finds nothing and fails at nothing.
      expect((await cleanupLeftovers({ runId })).removed.namespaces).toEqual([]);
    } finally {
      await link.stop(); // idempotent: everything is already gone
    }
  });

  it('leaves a live run alone unless told to include active runs', async () => {
    const runId = uniqueRunId('lv');
    const link = new KernelLink({ runId });
    try {
      await link.start();
      const result = await cleanupLeftovers({ runId });
      expect(result.removed.namespaces).toEqual([]);
      expect(result.skipped.map((s) => s.name).sort()).toEqual([`pcl-${runId}-dst`, `pcl-${runId}-src`]);
      expect(result.skipped[0].reason).toMatch(/running postcopy-lab/);
      expect(namespacesNow()).toEqual(expect.arrayContaining([`pcl-${runId}-src`, `pcl-${runId}-dst`]));
      const forced = await cleanupLeftovers({ runId, includeActive: true });
      expect(forced.removed.namespaces).toHaveLength(2);
    } finally {
      await link.stop();
    }
    expect(namespacesNow().filter((n) => n.startsWith(`pcl-${runId}`))).toEqual([]);
  });
});

describe.skipIf(!!skipReason)(title('probeKernel'), () => {
  it('reports netem as this kernel really has it, and leaves no scratch namespace', async () => {
    // An independent check: try netem ourselves in a namespace of our own.
    const ns = `pcl-${uniqueRunId('pr')}-src`;
    let netemWorks: boolean;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      netemWorks = spawnSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']).status === 0;
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }

    const p = await probeKernel();
    expect(p.root).toBe(true);
    expect(p.netns.ok).toBe(true);
    expect(p.qdiscs.netem.ok).toBe(netemWorks);
    if (!netemWorks) expect(p.qdiscs.netem.detail).not.toBe('');
    expect(p.qdiscs.tbf.ok).toBe(true);
    expect(p.tools.ip.version).toMatch(/iproute2/);
    expect(namespacesNow().filter((n) => n.startsWith(`pcl-probe-${process.pid}-`))).toEqual([]);

    const text = formatDoctor(buildDoctorReport(p), { color: false });
    expect(text).toMatch(netemWorks ? /✓ qdisc netem/ : /✗ qdisc netem/);
  });
});
