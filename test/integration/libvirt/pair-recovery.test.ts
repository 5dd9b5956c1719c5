/**
 * The two-daemon libvirt pair end to end: the generated guest defined and started on the
 * source daemon, `virsh migrate --live --postcopy --postcopy-after-precopy` to the destination
 * over qemu+tcp across the kernel link, an RST cut during postcopy, `paused (post-copy failed)`
 * on the source, `virsh migrate --postcopy --postcopy-resume`, and the destination's memory
 * through the project's consistency check. With each QEMU installed (7.2 and 10.0).
 *
 * Skipped, saying why, where it cannot run: not root, no libvirtd/virsh, no usable KVM.
 */
import { access, constants, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { KernelLink } from '../../../src/kernel/kernel-link.js';
import { LibvirtPair } from '../../../src/libvirt/pair.js';
import { unpackedModuleDir } from '../../../src/libvirt/emulator.js';
import { buildDomainXml } from '../../../src/libvirt/domain-xml.js';
import { migrateArgs, parseDomstate, resumeArgs, type DomState } from '../../../src/libvirt/virsh.js';
import { writeGuestImage } from '../../../src/qemu/guest-image.js';
import { waitForPasses } from '../../../src/qemu/guest-probe.js';
import { checkConsistencyFile } from '../../../src/qemu/consistency.js';
import { kvmUsable } from '../../../src/qemu/launcher.js';
import { QmpClient } from '../../../src/qmp/client.js';

const exists = (p: string) =>
  access(p, constants.X_OK).then(
    () => true,
    () => false,
  );

const QEMUS = [
  { short: '7.2', bin: '/usr/bin/qemu-system-x86_64' },
  { short: '10.0', bin: '/opt/qemu-10.0/bin/qemu-system-x86_64' },
];

async function skipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network and mount namespaces, libvirtd)';
  if (!(await exists('/usr/sbin/libvirtd'))) return 'no /usr/sbin/libvirtd (apt-get install libvirt-daemon-system)';
  if (!(await exists('/usr/bin/virsh'))) return 'no virsh (apt-get install libvirt-clients)';
  const kvm = await kvmUsable();
  if (!kvm.usable) return `KVM not usable: ${kvm.reason}`;
  return undefined;
}

const SKIP = await skipReason();
const available = (await Promise.all(QEMUS.map(async (q) => ((await exists(q.bin)) ? q : null)))).filter((q) => q !== null);
if (SKIP) console.warn(`libvirt pair tests skipped: ${SKIP}`);

const DOMAIN = 'pcl-guest';
const MEMORY_MIB = 64;

async function waitState(pair: LibvirtPair, side: 'source' | 'destination', want: (s: DomState) => boolean, what: string, timeoutMs = 60_000): Promise<DomState> {
  const deadline = performance.now() + timeoutMs;
  let last: DomState | string = 'nothing';
  while (performance.now() < deadline) {
    try {
      last = parseDomstate((await pair.virsh(side, ['domstate', '--reason', DOMAIN], { timeoutMs: 10_000 })).stdout);
      if (want(last)) return last;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${side} never reached ${what}; last: ${JSON.stringify(last)}`);
}

describe.skipIf(SKIP !== undefined)(`libvirt two-daemon pair${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  describe.each(available)('QEMU $short', ({ short, bin }) => {
    it('postcopy, an RST cut, post-copy failed, --postcopy-resume, and a consistent destination', { timeout: 240_000 }, async () => {
      const runId = `lvt${process.pid}${short.replace('.', '')}`;
      const link = new KernelLink({ runId, subnet: '10.213.40.0/24' });
      const pair = new LibvirtPair({ runId, network: link, qemuModuleDir: await unpackedModuleDir(bin) });
      let migrate: ReturnType<typeof execa> | null = null;
      try {
        await link.start();
        await pair.start();
        const rom = path.join(pair.root, 'guest.rom');
        const layout = await writeGuestImage(rom, { endMiB: MEMORY_MIB - 4, stridePages: 1, dirtyPagesPerSecond: 20_000 }, 'rom');
        const xmlFile = path.join(pair.root, 'domain.xml');
        await writeFile(
          xmlFile,
          buildDomainXml({ name: DOMAIN, memoryMiB: MEMORY_MIB, rom, emulator: bin, qmpSocket: '/run/libvirt/pcl-qmp.sock', serialFile: '/var/log/libvirt/pcl-serial.log' }),
        );
        await pair.virsh('source', ['define', xmlFile]);
        await pair.virsh('source', ['start', DOMAIN]);
        await waitForPasses(pair.hostPath('source', '/var/log/libvirt/pcl-serial.log'), 1, 60_000);

        // 2 MiB/s in postcopy: ~30 s for the guest's 60 MiB, time enough to cut it midway.
        const m = pair.virshArgv('source', migrateArgs({ domain: DOMAIN, destUri: pair.tcpUri('destination'), bandwidthMiB: 20, postcopyBandwidthMiB: 2, postcopyAfterPrecopy: true }));
        migrate = execa(m[0], m.slice(1), { reject: false, env: { LC_ALL: 'C' } });
        await waitState(pair, 'source', (s) => s.state === 'paused' && s.reason === 'post-copy', 'paused (post-copy)');

        await link.apply({ kind: 'cut' });
        const failed = await waitState(pair, 'source', (s) => s.reason === 'post-copy failed', 'post-copy failed');
        expect(failed).toEqual({ state: 'paused', reason: 'post-copy failed' });
        // The managed-direct client's own connection to the destination daemon crossed the cut
        // too, so its words vary ("Cannot recv data", "failed in post-copy phase"); it fails.
        const first = await migrate;
        expect(first.exitCode).not.toBe(0);
        expect(await waitState(pair, 'destination', (s) => s.reason === 'post-copy failed', 'post-copy failed')).toEqual({ state: 'running', reason: 'post-copy failed' });

        await link.restore();
        await pair.virsh('source', resumeArgs({ domain: DOMAIN, destUri: pair.tcpUri('destination') }), { timeoutMs: 120_000 });
        expect(await waitState(pair, 'destination', (s) => s.state === 'running' && s.reason === 'migrated', 'running (migrated)')).toBeTruthy();
        expect((await waitState(pair, 'source', (s) => s.state === 'shut off', 'shut off')).reason).toBe('migrated');

        // The destination's memory, through the extra QMP socket: paused, dumped, checked.
        const q = await QmpClient.connect(pair.hostPath('destination', '/run/libvirt/pcl-qmp.sock'), { retryUntilMs: 5000, timeoutMs: 10_000 });
        try {
          await q.execute('stop');
          await q.execute('pmemsave', { val: 0, size: layout.endAddress, filename: '/var/log/libvirt/pcl-dest.mem' }, { timeoutMs: 60_000 });
        } finally {
          q.close();
        }
        const r = await checkConsistencyFile(pair.hostPath('destination', '/var/log/libvirt/pcl-dest.mem'), { ...layout, dumpBase: 0 });
        expect(r.ok, r.explanation).toBe(true);
      } finally {
        migrate?.kill('SIGKILL');
        await migrate?.catch(() => undefined);
        await pair.stop().catch((e: unknown) => console.warn((e as Error).message));
        await link.stop();
      }
      // Nothing left: no directory, no process in the namespaces (they are gone too).
      expect(await exists(pair.root)).toBe(false);
    });
  });
});
