/**
 * The thread's idea against an unmodified QEMU destination: a postcopy migration through the
 * relay, the link cut, the source's RAM saved while it is postcopy-paused (its vCPUs stopped at
 * switchover, so that is the frozen state), the source killed, and our stand-in source
 * (src/qemu-recovery) resuming the destination over QEMU's own wire protocol. The destination
 * must reach `completed`, run on, and hold memory that passes the guest's consistency check.
 *
 * One QEMU at a time except the pair itself; the probe that learns the "ram" section id starts
 * after the source is gone. Skips, saying why, only when no QEMU is installed.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RelayLink } from '../../../src/link/relay.js';
import { QmpClient } from '../../../src/qmp/client.js';
import { minimumMemoryMiB, writeGuestImage } from '../../../src/qemu/guest-image.js';
import { readGuestOps, verifyGuestMemory, waitForPasses } from '../../../src/qemu/guest-probe.js';
import { chooseAccel, startQemu, type QemuHandle } from '../../../src/qemu/launcher.js';
import { probeRamSection } from '../../../src/qemu-recovery/probe.js';
import { pcRamFromPmemsave, RecoveryIncompleteError, serveQemuResume } from '../../../src/qemu-recovery/serve.js';
import { NO_QEMU, QEMUS } from '../../helpers/qemus.js';
import { ensureBuilt, RELAY_MAIN_DIST } from '../link/helpers.js';

const END_MIB = 56;
const MEMORY_MIB = Math.max(64, minimumMemoryMiB(END_MIB));
const GUEST = { endMiB: END_MIB, dirtyPagesPerSecond: 20_000, order: 'random' as const, seed: 12 };

type Status = { status: string; ram?: Record<string, number>; 'error-desc'?: string };

async function poll(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(NO_QEMU !== undefined).each(QEMUS)(
  `recovery from the source's frozen RAM, QEMU $short destination${NO_QEMU ? ` (skipped: ${NO_QEMU})` : ''}`,
  ({ bin }) => {
    const running: QemuHandle[] = [];
    const clients: QmpClient[] = [];
    let link: RelayLink | undefined;
    let dir = '';

    beforeAll(async () => {
      await ensureBuilt();
    }, 120_000);

    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(running.splice(0).map((h) => h.stop()));
      await link?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('a killed source: the destination completes from the saved RAM, and its memory is consistent', async () => {
      dir = await mkdtemp(join(tmpdir(), 'pcl-qrec-'));
      const rom = join(dir, 'guest.rom');
      const layout = await writeGuestImage(rom, GUEST, 'rom');
      const { accel } = await chooseAccel('auto');
      const base = { bin, memoryMiB: MEMORY_MIB, image: rom, imageKind: 'rom' as const, kvm: accel === 'kvm' };
      link = new RelayLink({ runtimeDir: dir, relayMain: RELAY_MAIN_DIST });
      const ep = await link.start();

      const launch = async (name: string, incoming?: 'defer') => {
        const vm = await startQemu({ ...base, qmpSocket: join(dir, `${name}.qmp`), serialFile: join(dir, `${name}.serial`), incoming, name });
        running.push(vm);
        const qmp = await QmpClient.connect(vm.qmpSocket, { timeoutMs: 60_000 });
        clients.push(qmp);
        return { vm, qmp, serial: join(dir, `${name}.serial`) };
      };
      const src = await launch('src');
      const dst = await launch('dst', 'defer');
      await waitForPasses(src.serial, 1, 60_000); // every page written once: none is zero

      for (const side of [src, dst]) {
        await side.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: true }] });
      }
      // Precopy fast enough to finish its first pass (so the ROM blocks and the low MiB arrive),
      // too slow to converge against 20 000 random writes/s; postcopy slow, so the cut finds
      // many pages still missing on the destination.
      await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 << 20, 'max-postcopy-bandwidth': 2 << 20 });
      await dst.qmp.execute('migrate-incoming', { uri: `tcp:${ep.incoming.listen.host}:${ep.incoming.listen.port}` });
      await src.qmp.execute('migrate', { uri: `tcp:${ep.incoming.connect.host}:${ep.incoming.connect.port}` });
      await poll(async () => ((await src.qmp.execute<Status>('query-migrate')).ram?.['dirty-sync-count'] ?? 0) >= 2, 60_000, 'the first precopy pass');
      await src.qmp.execute('migrate-start-postcopy');
      await poll(async () => (await src.qmp.execute<Status>('query-migrate')).status === 'postcopy-active', 30_000, 'source postcopy-active');
      await poll(async () => (await dst.qmp.execute<Status>('query-migrate')).status === 'postcopy-active', 30_000, 'destination postcopy-active');
      await new Promise((r) => setTimeout(r, 300));

      await link.apply({ kind: 'cut' });
      await poll(async () => (await src.qmp.execute<Status>('query-migrate')).status === 'postcopy-paused', 30_000, 'source postcopy-paused');
      await poll(async () => (await dst.qmp.execute<Status>('query-migrate')).status === 'postcopy-paused', 30_000, 'destination postcopy-paused');

      // The source's RAM as frozen at switchover, then the source host is "lost".
      const frozenPath = join(dir, 'frozen.ram');
      await src.qmp.execute('pmemsave', { val: 0, size: MEMORY_MIB << 20, filename: frozenPath }, { timeoutMs: 60_000 });
      process.kill(src.vm.pid!, 'SIGKILL');
      await src.vm.exit;
      const frozen = await readFile(frozenPath);

      const ram = await probeRamSection(base, dir);
      expect(ram.blocks.map((b) => b.idstr)).toContain('pc.ram');

      await link.restore();
      await dst.qmp.execute('migrate-recover', { uri: `tcp:${ep.recover.listen.host}:${ep.recover.listen.port}` });
      const lines: string[] = [];
      const result = await serveQemuResume({
        host: ep.recover.connect.host,
        port: ep.recover.connect.port,
        ram,
        frozen: pcRamFromPmemsave(frozen, MEMORY_MIB << 20),
        log: (l) => lines.push(l),
      }).catch((e: unknown) => {
        if (e instanceof RecoveryIncompleteError) throw e;
        throw new Error(`${(e as Error).message}\nrecovery log: ${lines.join(' | ')}\ndestination stderr: ${dst.vm.stderr()}`);
      });
      console.info(`QEMU ${bin}: ram section ${ram.sectionId}, blocks ${ram.blocks.map((b) => b.idstr).join(',')}; ${lines.join(' | ')}`);

      let last: Status = { status: 'none' };
      await poll(
        async () => {
          last = await dst.qmp.execute<Status>('query-migrate');
          return last.status === 'completed' || last.status === 'failed';
        },
        60_000,
        'destination completed',
      ).catch((e: Error) => {
        throw new Error(`${e.message}: last ${JSON.stringify(last)}; stderr: ${dst.vm.stderr()}`);
      });
      expect(last.status, dst.vm.stderr()).toBe('completed');
      expect(result.missing['pc.ram']).toBeGreaterThan(0); // the cut really left pages behind
      expect(result.pagesSent).toBe(Object.values(result.missing).reduce((a, b) => a + b, 0));
      const status = await dst.qmp.execute<{ status: string; running: boolean }>('query-status');
      const ops1 = await readGuestOps(dst.qmp);
      await new Promise((r) => setTimeout(r, 1000));
      const ops2 = await readGuestOps(dst.qmp);
      console.info(`destination after completion: ${JSON.stringify(status)}, ops ${ops1} -> ${ops2}`);
      const check = await verifyGuestMemory(dst.qmp, layout, join(dir, 'dst.dump'));
      console.info(check.explanation);
      expect(status.running).toBe(true);
      expect(ops2).toBeGreaterThan(ops1); // the guest runs on at the destination
      expect(check.ok, check.explanation).toBe(true);
    }, 300_000);
  },
);
