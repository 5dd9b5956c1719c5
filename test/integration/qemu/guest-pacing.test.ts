/**
 * The paced guest and its throttling on real QEMU, on every installed QEMU (test/helpers/qemus.ts):
 *   - the guest writes at about the configured rate (0.5x-2x, per second its vCPU ran: the host
 *     here is shared, and a descheduled guest drops its backlog by design);
 *   - readGuest's ops grow while the VM runs and freeze while it is stopped;
 *   - auto-converge throttles a guest that dirties faster than the capped link carries
 *     (query-migrate shows cpu-throttle-percentage > 0, and readGuest reports it);
 *   - dirty-limit is refused, saying why, on QEMU < 8.1 and accepted on newer QEMU with KVM.
 * Guests are small (32-64 MiB). KVM when usable, else TCG. Skips, saying why, without QEMU.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendContext, GuestSpec } from '../../../src/driver/backend.js';
import { QemuBackend } from '../../../src/driver/qemu-backend.js';
import { waitForPasses } from '../../../src/qemu/guest-probe.js';
import { chooseAccel, DIRTY_RING_SIZE, startQemu, type Accel, type QemuHandle } from '../../../src/qemu/launcher.js';
import { QmpClient } from '../../../src/qmp/client.js';
import { NO_QEMU, QEMUS } from '../../helpers/qemus.js';

const MiB = 1 << 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poll<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await sleep(200);
  }
}

/** CPU seconds the vCPU thread has used (KVM counts guest time to it; TCG runs the guest on it). */
async function vcpuCpuSeconds(pid: number, qmp: QmpClient): Promise<number> {
  const cpus = await qmp.execute<{ 'thread-id': number }[]>('query-cpus-fast');
  const stat = await readFile(`/proc/${pid}/task/${cpus[0]['thread-id']}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100)
}

describe.skipIf(NO_QEMU !== undefined).each(QEMUS)(`paced guest on QEMU $short${NO_QEMU ? ` (skipped: ${NO_QEMU})` : ''}`, (qemu) => {
  let dir: string;
  let accel: Accel;
  const running: QemuHandle[] = [];
  const clients: QmpClient[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pcl-pace-'));
    const forced = process.env.POSTCOPY_LAB_QEMU_ACCEL;
    accel = (await chooseAccel(forced === 'kvm' || forced === 'tcg' ? forced : 'auto')).accel;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(running.splice(0).map((h) => h.stop()));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A backend prepared for `guest` in its own directory, and a way to start its sides. */
  async function setup(guest: GuestSpec, o: { dirtyRing?: boolean } = {}) {
    const runtimeDir = await mkdtemp(join(dir, 'run-'));
    const ctx = { runtimeDir, guest, onEvent: () => {}, qmpPath: (s: string) => join(runtimeDir, `${s}.qmp`) } as unknown as BackendContext;
    const backend = new QemuBackend({ bin: qemu.bin, version: qemu.version, accel, dirtyRing: o.dirtyRing });
    await backend.prepare(ctx);
    const launch = async (side: 'source' | 'destination') => {
      const vm = await startQemu({
        bin: qemu.bin,
        memoryMiB: guest.memoryBytes / MiB,
        image: join(runtimeDir, 'guest.rom'),
        imageKind: 'rom',
        qmpSocket: ctx.qmpPath(side),
        serialFile: join(runtimeDir, `${side}.serial`),
        kvm: accel === 'kvm',
        incoming: side === 'destination' ? 'defer' : undefined,
        dirtyRingSize: o.dirtyRing ? DIRTY_RING_SIZE : undefined,
        name: `pace-${side}`,
      });
      running.push(vm);
      const qmp = await QmpClient.connect(vm.qmpSocket, { timeoutMs: 20_000 });
      clients.push(qmp);
      // The source's fill pass is done (the destination runs nothing until it is migrated to).
      if (side === 'source') await waitForPasses(join(runtimeDir, `${side}.serial`), 1, 60_000);
      return { vm, qmp };
    };
    return { backend, launch };
  }

  const guest = (over: Partial<GuestSpec> = {}): GuestSpec => ({
    memoryBytes: 64 * MiB,
    pageSize: 4096,
    vcpus: 1,
    workload: 'hotset',
    hotset: { fraction: 0.1, share: 1 },
    dirtyRate: 2000,
    readRate: 0,
    seed: 1,
    ...over,
  });

  it('writes at about the configured rate; its ops freeze while the VM is stopped', async () => {
    const { backend, launch } = await setup(guest());
    const { vm, qmp } = await launch('source');
    const first = await backend.readGuest('source', qmp);
    const cpu0 = await vcpuCpuSeconds(vm.pid!, qmp);
    await sleep(3000);
    const second = await backend.readGuest('source', qmp);
    const cpu1 = await vcpuCpuSeconds(vm.pid!, qmp);
    expect(first && second).toBeTruthy();
    const ran = cpu1 - cpu0;
    const perCpuSecond = (second!.ops - first!.ops) / ran;
    console.info(
      `QEMU ${qemu.short} (${accel}): nominal ${second!.nominalOpsPerSecond}/s; wall ${Math.round(second!.opsPerSecond)}/s; ` +
        `${Math.round(perCpuSecond)} per second the vCPU ran (${ran.toFixed(2)} s of 3)`,
    );
    expect(second!.nominalOpsPerSecond).toBe(2000);
    expect(second!.ops).toBeGreaterThan(first!.ops);
    expect(perCpuSecond).toBeGreaterThan(0.5 * 2000);
    expect(perCpuSecond).toBeLessThan(2 * 2000);
    expect(second!.runningMs).toBeGreaterThan(2000);

    await qmp.execute('stop');
    const stopped = await backend.readGuest('source', qmp);
    await sleep(1000);
    const still = await backend.readGuest('source', qmp);
    expect(still!.ops).toBe(stopped!.ops);
    expect(still!.opsPerSecond).toBe(0);
    await qmp.execute('cont');
    await poll(() => backend.readGuest('source', qmp), (w) => w!.ops > still!.ops, 10_000, 'ops growing again after cont');
  });

  it('auto-converge throttles a guest that dirties faster than the capped link carries', async () => {
    // 24 MiB, 8000 pages/s (31 MiB/s) over 1000 pages (4 MiB), against 2 MiB/s: each dirty
    // sync finds the whole working set dirty again, far above half of what was sent. At 4 MiB/s
    // a starved vCPU (a loaded 2-core host gave it a fraction of a CPU) let QEMU 10.0 converge
    // before any throttle; at 2 MiB/s it would have to write under ~80 pages a second.
    const g = guest({ memoryBytes: 24 * MiB, dirtyRate: 8000, hotset: { fraction: 1000 / (19 * 256), share: 1 } });
    const { backend, launch } = await setup(g);
    const src = await launch('source');
    await backend.readGuest('source', src.qmp); // a first sample, for the rate shown below
    const dst = await launch('destination');
    for (const side of [src, dst]) await side.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: true }] });
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 2 * MiB });
    await dst.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const incoming = await dst.qmp.execute<{ 'socket-address'?: { port: string }[] }>('query-migrate');
    await src.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${incoming['socket-address']![0].port}` });
    const mig = await poll(
      () => src.qmp.execute<{ status: string; 'cpu-throttle-percentage'?: number }>('query-migrate'),
      (m) => (m['cpu-throttle-percentage'] ?? 0) > 0 || m.status === 'completed' || m.status === 'failed',
      30_000,
      'cpu-throttle-percentage > 0',
    );
    const work = await backend.readGuest('source', src.qmp);
    console.info(`QEMU ${qemu.short} (${accel}): ${mig.status}, cpu-throttle-percentage ${mig['cpu-throttle-percentage']}, guest ${Math.round(work!.opsPerSecond)}/s of ${work!.nominalOpsPerSecond}/s`);
    expect(mig['cpu-throttle-percentage']).toBeGreaterThan(0);
    expect(work!.throttlePercentage).toBeGreaterThan(0);
    await src.qmp.execute('migrate_cancel');
  }, 45_000);

  it(`dirty-limit: ${qemu.version.major > 8 || (qemu.version.major === 8 && qemu.version.minor >= 1) ? 'accepted with KVM' : 'refused, saying why'}`, async () => {
    const newEnough = qemu.version.major > 8 || (qemu.version.major === 8 && qemu.version.minor >= 1);
    if (!newEnough) {
      await expect(setup(guest(), { dirtyRing: true })).rejects.toThrow(`dirty-limit needs QEMU 8.1 or newer (this is QEMU ${qemu.short}`);
      return;
    }
    if (accel !== 'kvm') {
      await expect(setup(guest(), { dirtyRing: true })).rejects.toThrow(/TCG, which has none/);
      return;
    }
    const { launch } = await setup(guest(), { dirtyRing: true });
    const { qmp } = await launch('source');
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'dirty-limit', state: true }] });
    await qmp.execute('migrate-set-parameters', { 'vcpu-dirty-limit': 4 });
    const caps = await qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
    expect(caps.find((c) => c.capability === 'dirty-limit')?.state).toBe(true);
  });
});
