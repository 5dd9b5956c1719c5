/**
 * The generated guest in a real QEMU: the boot sector boots through SeaBIOS, the ROM form
 * boots as firmware, the loop writes what it claims (checked by reading guest memory), and
 * memory survives a real postcopy migration over loopback.
 *
 * The ROM tests use KVM when /dev/kvm is usable, else TCG (POSTCOPY_LAB_QEMU_ACCEL=tcg|kvm
 * forces one). The boot-sector test always uses TCG: it proves the sector is bootable by a
 * real BIOS, which does not depend on the accelerator, and SeaBIOS's POST can take 15-25 s
 * under slow (nested, shadow-paging) KVM.
 * Skips, saying why, only when no qemu-system-x86_64 can run here.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../../src/qmp/client.js';
import { checkConsistency } from '../../../src/qemu/consistency.js';
import { minimumMemoryMiB, writeGuestImage, type GuestLayout } from '../../../src/qemu/guest-image.js';
import { verifyGuestMemory, waitForPasses } from '../../../src/qemu/guest-probe.js';
import { chooseAccel, findQemu, qemuVersion, startQemu, type Accel, type QemuHandle } from '../../../src/qemu/launcher.js';

async function probe(): Promise<{ bin: string; version: string } | { skip: string }> {
  try {
    const bin = await findQemu(process.env.POSTCOPY_LAB_QEMU || undefined);
    return { bin, version: (await qemuVersion(bin)).text };
  } catch (e) {
    return { skip: (e as Error).message };
  }
}

const found = await probe();
const skip = 'skip' in found ? found.skip : undefined;
if (skip) console.warn(`qemu integration tests skipped: ${skip}`);

const END_MIB = 24;
const MEMORY_MIB = minimumMemoryMiB(END_MIB) + 4;
const opts = { endMiB: END_MIB };

describe.skipIf(skip !== undefined)(`generated guest in real QEMU${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let sector: string;
  let rom: string;
  let layout: GuestLayout;
  let accel: Accel;
  const running: QemuHandle[] = [];
  const clients: QmpClient[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pcl-qemu-'));
    sector = join(dir, 'guest.img');
    rom = join(dir, 'guest.rom');
    layout = await writeGuestImage(sector, opts, 'boot-sector');
    await writeGuestImage(rom, opts, 'rom');
    const forced = process.env.POSTCOPY_LAB_QEMU_ACCEL;
    const chosen = await chooseAccel(forced === 'kvm' || forced === 'tcg' ? forced : 'auto');
    accel = chosen.accel;
    console.info(`QEMU ${'bin' in found ? found.version : ''}, accel=${accel}${chosen.note ? ` (${chosen.note})` : ''}`);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(running.splice(0).map((h) => h.stop()));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function launch(
    name: string,
    o: { incoming?: 'defer'; kind?: 'boot-sector' | 'rom'; accel?: Accel } = {},
  ): Promise<{ vm: QemuHandle; qmp: QmpClient; serial: string }> {
    const serial = join(dir, `${name}.serial`);
    const kind = o.kind ?? 'rom';
    const vm = await startQemu({
      bin: 'bin' in found ? found.bin : '',
      memoryMiB: MEMORY_MIB,
      image: kind === 'rom' ? rom : sector,
      imageKind: kind,
      qmpSocket: join(dir, `${name}.qmp`),
      serialFile: serial,
      kvm: (o.accel ?? accel) === 'kvm',
      incoming: o.incoming,
      name,
    });
    running.push(vm);
    const qmp = await QmpClient.connect(vm.qmpSocket, { timeoutMs: 20_000 });
    clients.push(qmp);
    return { vm, qmp, serial };
  }

  it('boots as a boot sector through SeaBIOS (TCG) with consistent memory', async () => {
    const t0 = Date.now();
    const { qmp, serial } = await launch('sector', { kind: 'boot-sector', accel: 'tcg' });
    await waitForPasses(serial, 3, 30_000);
    const tPasses = Date.now() - t0;
    const result = await verifyGuestMemory(qmp, layout, join(dir, 'sector.dump'));
    console.info(`boot sector (tcg): 3 passes after ${tPasses} ms; ${result.explanation}`);
    expect(result.ok, result.explanation).toBe(true);
    expect(result.firstValue).toBeGreaterThanOrEqual(3);
  });

  it('boots as a ROM, writes every page once per pass, and a corrupted page is named', async () => {
    const t0 = Date.now();
    const { qmp, serial } = await launch('single');
    await waitForPasses(serial, 3, 30_000);
    const tBooted = Date.now() - t0;
    const dump = join(dir, 'single.dump');
    const result = await verifyGuestMemory(qmp, layout, dump);
    console.info(`rom (${accel}): 3 passes after ${tBooted} ms; ${result.explanation}`);
    expect(result.ok, result.explanation).toBe(true);
    expect(result.pages).toBe((layout.endAddress - layout.startAddress) / 4096);
    expect(result.firstValue).toBeGreaterThanOrEqual(3); // at least three passes reached memory

    // Negative: one page flipped far from its neighbours must be the page the checker names.
    const bytes = await readFile(dump);
    const victim = layout.startAddress + 1234 * layout.pageSize + layout.byteOffset;
    bytes[victim] ^= 0x80;
    await writeFile(dump, bytes);
    const bad = checkConsistency(await readFile(dump), layout);
    expect(bad.ok).toBe(false);
    expect(bad.firstBad?.page).toBe(victim / 4096);
    expect(bad.explanation).toContain(`page 0x${(victim / 4096).toString(16)}`);
  });

  it('survives a real postcopy migration over loopback with consistent memory', async () => {
    const t0 = Date.now();
    const src = await launch('src');
    const dst = await launch('dst', { incoming: 'defer' });
    await waitForPasses(src.serial, 2, 30_000);

    for (const side of [src, dst]) {
      await side.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: true }] });
    }
    // Throttle precopy so the guest cannot converge before we switch: postcopy then moves the
    // rest on demand (max-postcopy-bandwidth stays unlimited).
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 2 * 1024 * 1024 });
    // Port 0: the kernel picks a free port; QEMU reports it in query-migrate's socket-address.
    await dst.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const incoming = await dst.qmp.execute<{ 'socket-address'?: { port: string }[] }>('query-migrate');
    const port = incoming['socket-address']?.[0]?.port;
    expect(port, JSON.stringify(incoming)).toBeTruthy();
    await src.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    await poll(async () => (await src.qmp.execute<{ status: string }>('query-migrate')).status === 'active', 10_000, 'source active');
    await src.qmp.execute('migrate-start-postcopy');
    let sawPostcopy = false;
    let last: { status: string; ram?: Record<string, number>; 'error-desc'?: string } = { status: 'none' };
    await poll(
      async () => {
        last = await src.qmp.execute('query-migrate');
        if (last.status === 'postcopy-active') sawPostcopy = true;
        if (last.status === 'failed') throw new Error(`migration failed: ${last['error-desc'] ?? 'no error-desc'}`);
        return last.status === 'completed';
      },
      30_000,
      'source completed',
      20,
    );
    const dstStatus = await dst.qmp.execute<{ status: string }>('query-status');
    expect(dstStatus.status).toBe('running');
    const dstMigrate = await dst.qmp.execute<{ status: string }>('query-migrate');
    expect(dstMigrate.status).toBe('completed');
    // The guest keeps running on the destination: its serial file only hears from it there.
    await waitForPasses(dst.serial, 2, 30_000);
    const result = await verifyGuestMemory(dst.qmp, layout, join(dir, 'dst.dump'));
    console.info(
      `postcopy (rom, ${accel}): completed in ${Date.now() - t0} ms total (saw postcopy-active: ${sawPostcopy}, ` +
        `postcopy-requests ${last.ram?.['postcopy-requests']}, postcopy-bytes ${last.ram?.['postcopy-bytes']}); ${result.explanation}`,
    );
    expect(result.ok, result.explanation).toBe(true);
    expect(last.ram?.['postcopy-bytes'] ?? 0).toBeGreaterThan(0); // the switchover really happened in postcopy
  });
});

async function poll(check: () => Promise<boolean>, timeoutMs: number, what: string, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

describe.skipIf(skip !== undefined)('QEMU launcher lifecycle', () => {
  it('reports QEMU\'s own error when it refuses to start, leaving nothing running', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pcl-qemu-'));
    try {
      const image = join(dir, 'guest.rom');
      await writeGuestImage(image, { endMiB: 8 }, 'rom');
      const err = await startQemu({
        bin: 'bin' in found ? found.bin : '',
        memoryMiB: 16,
        image,
        imageKind: 'rom',
        qmpSocket: join(dir, 'q.sock'),
        kvm: false,
        machine: 'no-such-machine',
      }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/exited before QMP was ready \(exit code 1\): .*unsupported machine type/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stop() quits QEMU even while another client holds the public QMP socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pcl-qemu-'));
    try {
      const image = join(dir, 'guest.rom');
      await writeGuestImage(image, { endMiB: 8 }, 'rom');
      const vm = await startQemu({ bin: 'bin' in found ? found.bin : '', memoryMiB: 16, image, imageKind: 'rom', qmpSocket: join(dir, 'q.sock'), kvm: false });
      const holder = await QmpClient.connect(vm.qmpSocket);
      const t0 = Date.now();
      await vm.stop();
      expect(vm.exited).toBe(true);
      expect(await vm.exit).toEqual({ code: 0, signal: undefined }); // a clean quit, not a signal
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(() => process.kill(vm.pid!, 0)).toThrow(); // the process is gone
      holder.close();
      await vm.stop(); // idempotent
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
