/**
 * The QEMU backend's pure parts: guest sizing per accelerator, the Snapshot it synthesizes
 * from query-migrate (destination pages from the source), recovery counting from status
 * changes, and the refusal of sim-only labs.
 */
import { describe, expect, it } from 'vitest';
import { QemuBackend, qemuGuestSize } from '../../../src/driver/qemu-backend.js';
import type { BackendContext, SideReading } from '../../../src/driver/backend.js';
import { backendProblem, simOnlyFeatures } from '../../../src/lab/backend-fit.js';
import { findLab } from '../../../src/lab/load.js';
import type { LinkSnapshot, MigrationStatus, Side } from '../../../src/types.js';
import { fileURLToPath } from 'node:url';

const LABS = fileURLToPath(new URL('../../../labs', import.meta.url));
const MiB = 1024 * 1024;

function backend(): QemuBackend {
  return new QemuBackend({ bin: '/usr/bin/qemu-system-x86_64', accel: 'kvm', version: { major: 7, minor: 2, micro: 0, text: 'QEMU 7.2' } });
}
const ctx = { onEvent: () => {} } as unknown as BackendContext;
const dir = { state: 'up' as const, latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0 };
const link = (forwarded: number): LinkSnapshot => ({
  kind: 'relay',
  up: true,
  flapping: false,
  connections: 1,
  'source-to-destination': { ...dir, bytesForwarded: forwarded },
  'destination-to-source': { ...dir },
});
const reading = (status: MigrationStatus, ram?: SideReading['ram']): SideReading => ({ runState: 'running', status, ram, progress: 0 });

describe('QemuBackend.explainStderr', () => {
  it("says QEMU's start-up CPUID warning is harmless, and leaves other lines as they are", () => {
    const b = backend();
    const warn = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]";
    expect(b.explainStderr(warn)).toMatch(/^qemu-system-x86_64: warning: .*pni \[bit 0\] \(harmless: /);
    expect(b.explainStderr('qemu-system-x86_64: Unable to write to socket: Broken pipe')).toBe('qemu-system-x86_64: Unable to write to socket: Broken pipe');
  });
});

describe('qemuGuestSize', () => {
  it('keeps the lab size under KVM and shrinks it under TCG, leaving headroom above the written range', () => {
    expect(qemuGuestSize(256 * MiB, 'kvm')).toEqual({ memoryMiB: 256, endMiB: 252, shrunk: false });
    expect(qemuGuestSize(256 * MiB, 'tcg')).toEqual({ memoryMiB: 128, endMiB: 124, shrunk: true });
    expect(qemuGuestSize(1 * MiB, 'kvm').memoryMiB).toBe(16);
  });
});

describe('QemuBackend snapshot synthesis', () => {
  it('gives the destination the source totals, and its progress from the link', () => {
    const b = backend();
    const readings: Record<Side, SideReading | null> = {
      source: reading('postcopy-active', { total: 1000 * 4096, remaining: 250 * 4096, 'page-size': 4096, transferred: 5 }),
      destination: reading('postcopy-active'),
    };
    b.combine(readings, link(12345));
    expect(readings.source!.pages).toMatchObject({ total: 1000, sent: 750, received: 0, missing: 250, 'wire-bytes': 5 });
    expect(readings.destination!.pages).toMatchObject({ total: 1000, sent: 0, received: 750, missing: 250, 'wire-bytes': 12345, verified: null, walker: { active: false } });
    expect(readings.destination!.pages!.map).toBeUndefined();
    expect(readings.destination!.progress).toBe(12345);
  });

  it("keeps the source's sent from going down when a dirty-bitmap sync grows remaining (the switchover's); the destination's received follows remaining", () => {
    const b = backend();
    const at = (status: MigrationStatus, remainingPages: number) => {
      const readings: Record<Side, SideReading | null> = {
        source: reading(status, { total: 1000 * 4096, remaining: remainingPages * 4096, 'page-size': 4096, transferred: 5 }),
        destination: reading(status),
      };
      b.combine(readings, link(0));
      return { sent: readings.source!.pages!.sent, missing: readings.source!.pages!.missing, received: readings.destination!.pages!.received };
    };
    expect(at('active', 300)).toEqual({ sent: 700, missing: 300, received: 700 });
    // The switchover's sync: 600 pages dirty again. Sent at least once is still 700.
    expect(at('postcopy-active', 600)).toEqual({ sent: 700, missing: 600, received: 400 });
    expect(at('postcopy-active', 100)).toEqual({ sent: 900, missing: 100, received: 900 });
  });

  it('counts a recovery when a side is postcopy-active again after a pause, and destination attempts at postcopy-recover', () => {
    const b = backend();
    const path: MigrationStatus[] = ['none', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-paused', 'postcopy-recover', 'postcopy-active'];
    for (let i = 1; i < path.length; i++) b.noteStatus('destination', path[i - 1], path[i], ctx);
    // The source's recover state was missed by polling: paused -> active still counts.
    for (const [f, t] of [['postcopy-active', 'postcopy-paused'], ['postcopy-paused', 'postcopy-active']] as const) b.noteStatus('source', f, t, ctx);
    const readings: Record<Side, SideReading | null> = {
      source: reading('postcopy-active', { total: 4096, remaining: 0, 'page-size': 4096 }),
      destination: reading('postcopy-active'),
    };
    b.combine(readings, link(0));
    expect(readings.destination!.pages).toMatchObject({ recoveries: 1, 'recovery-attempts': 2 });
    expect(readings.source!.pages).toMatchObject({ recoveries: 1 });
  });
});

describe('backend selection', () => {
  it('names the x- features that keep a lab on the sim', async () => {
    const walk = await findLab('walk-recovery', LABS);
    expect(simOnlyFeatures(walk)).toEqual(expect.arrayContaining(['capability x-recovery-walk']));
    expect(backendProblem(walk, 'qemu')).toMatch(/runs on sim only.*x-recovery-walk.*--backend sim/);
    expect(backendProblem(walk, 'sim')).toBeUndefined();
  });

  it('every lab that declares qemu uses no x- feature', async () => {
    for (const id of ['postcopy-basics', 'link-cut-recovery', 'blackhole', 'double-failure', 'precopy-failure', 'qemu-recover-hang']) {
      const lab = await findLab(id, LABS);
      expect(lab.backends, id).toContain('qemu');
      expect(simOnlyFeatures(lab), id).toEqual([]);
    }
  });
});

describe('QemuBackend: the saved RAM a stand-in source is started from', () => {
  it("records the source's last pmemsave and whether it holds all of guest RAM; the stand-in takes a whole save where the person put it", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const tmp = mkdtempSync(join(tmpdir(), 'pcl-ram-'));
    try {
      const b = backend();
      (b as unknown as { memoryMiB: number }).memoryMiB = 1;
      const client = { execute: async (_command: string, _args?: Record<string, unknown>) => ({}), executeOob: async (_command: string, _args?: Record<string, unknown>) => ({}) };
      b.attach('source', client as never, ctx);
      const saved = () => (b as unknown as { savedRam?: { file: string; bytes: number; complete: boolean } }).savedRam;
      const mine = join(tmp, 'myram');
      await client.execute('pmemsave', { val: 0, size: 4096, filename: mine });
      await new Promise((r) => setTimeout(r, 0));
      expect(saved()).toEqual({ file: mine, bytes: 4096, complete: false });
      await client.execute('pmemsave', { val: 0, size: MiB, filename: mine });
      await new Promise((r) => setTimeout(r, 0));
      expect(saved()).toEqual({ file: mine, bytes: MiB, complete: true });
      writeFileSync(mine, Buffer.alloc(MiB));
      const labFile = join(tmp, 'source.ram');
      const qmpCtx = { ...ctx, qmpPath: () => join(tmp, 'qmp.sock') } as unknown as BackendContext;
      // The lab's file was never written: the person's whole save is used.
      expect(b.recoverySourceCommand(labFile, '', qmpCtx).args).toContain(mine);
      // Once the lab's file exists, it is the one.
      writeFileSync(labFile, Buffer.alloc(MiB));
      expect(b.recoverySourceCommand(labFile, '', qmpCtx).args).toContain(labFile);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
