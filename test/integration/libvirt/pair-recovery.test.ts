/**
 * The two-daemon libvirt pair end to end: the generated guest defined and started on the
 * source daemon, `virsh migrate --live --postcopy --postcopy-after-precopy` to the destination
 * over qemu+tcp across the kernel link, an RST cut during postcopy, `paused (post-copy failed)`
 * on the source, `virsh migrate --postcopy --postcopy-resume`, and the destination's memory
 * through the project's consistency check. With each QEMU installed (7.2 and 10.0).
 *
 * Skipped, saying why, where it cannot run: not root, no libvirtd/virsh, no usable KVM.
 */
import { describe, expect, it } from 'vitest';
import { mapQmpCommand } from '../../../src/libvirt/commands.js';
import { LibvirtSession } from '../../../src/libvirt/session.js';
import { QEMUS } from '../../helpers/qemus.js';
import { exists, libvirtSkipReason } from './helpers.js';

const SKIP = await libvirtSkipReason({ kvm: true });
if (SKIP) console.warn(`libvirt pair tests skipped: ${SKIP}`);

describe.skipIf(SKIP !== undefined)(`libvirt two-daemon pair${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  // A second cut after a resume is the lab libvirt-double-failure, drilled on both QEMUs in
  // labs.test.ts: not repeated at this layer.
  describe.each(QEMUS)('QEMU $short', ({ short, bin }) => {
    it('postcopy, an RST cut, post-copy failed, --postcopy-resume, and a consistent destination', { timeout: 240_000 }, async () => {
      const session = new LibvirtSession({ runId: `lvt${process.pid}${short.replace('.', '')}`, emulator: bin, subnet: '10.213.40.0/24', memoryMiB: 64 });
      try {
        await session.start();
        const ctx = { domain: session.domain, destUri: session.destUri };
        // The lab's QMP commands, as the libvirt backend maps them.
        const migrate = await session.perform(mapQmpCommand('source', 'migrate', { uri: 'tcp:10.213.40.2:4444' }, ctx));
        expect(migrate).not.toBeNull();
        // 20 MiB/s precopy, then 2 MiB/s postcopy: ~30 s for the guest's 60 MiB, time enough to cut it midway.
        await session.perform(mapQmpCommand('source', 'migrate-set-parameters', { 'max-bandwidth': 20 * 1024 * 1024 }, ctx));
        await session.perform(mapQmpCommand('source', 'migrate-set-parameters', { 'max-postcopy-bandwidth': 2 * 1024 * 1024 }, ctx));
        await session.waitState('destination', (s) => s.reason === 'migrating', 'paused (migrating)');
        await session.perform(mapQmpCommand('source', 'migrate-start-postcopy', undefined, ctx));
        await session.waitState('source', (s) => s.state === 'paused' && s.reason === 'post-copy', 'paused (post-copy)');
        const job = await session.jobInfo();
        expect(job.fields.Operation).toBe('Outgoing migration');
        expect(job.dataRemaining).toBeGreaterThan(0);

        await session.link.apply({ kind: 'cut' });
        expect(await session.waitState('source', (s) => s.reason === 'post-copy failed', 'post-copy failed')).toEqual({ state: 'paused', reason: 'post-copy failed' });
        expect(await session.waitState('destination', (s) => s.reason === 'post-copy failed', 'post-copy failed')).toEqual({ state: 'running', reason: 'post-copy failed' });
        // The managed-direct client's own connection to the destination daemon crossed the cut
        // too, so its words vary ("Cannot recv data", "failed in post-copy phase"); it fails.
        expect((await migrate!.done).exitCode).not.toBe(0);

        await session.link.restore();
        // Speed the rest up where libvirt allows it on a failed job; refused, the resume only runs slower.
        await session.perform(mapQmpCommand('source', 'migrate-set-parameters', { 'max-postcopy-bandwidth': 100 * 1024 * 1024 }, ctx)).catch(() => undefined);
        const resumeOnce = async () => (await session.perform(mapQmpCommand('source', 'migrate', { uri: 'tcp:10.213.40.2:4445', resume: true }, ctx)))!.done;
        let resumed = await resumeOnce();
        // Under load a resume issued as the link comes back can fail once with the destination's
        // earlier failure ("job 'migration in' failed in post-copy phase", seen in the suite at
        // load ~15, never alone); both sides stay post-copy failed and the operator's second
        // --postcopy-resume completes, which is what this test then requires.
        if (resumed.exitCode !== 0 && /failed in post-copy phase/.test(resumed.stderr)) {
          expect(await session.state('destination')).toEqual({ state: 'running', reason: 'post-copy failed' });
          resumed = await resumeOnce();
        }
        expect(resumed.exitCode, resumed.stderr).toBe(0);
        expect(await session.waitState('destination', (s) => s.state === 'running', 'running')).toEqual({ state: 'running', reason: 'migrated' });
        expect(await session.waitState('source', (s) => s.state === 'shut off', 'shut off')).toEqual({ state: 'shut off', reason: 'migrated' });

        const r = await session.verifyDestination();
        expect(r.ok, r.explanation).toBe(true);
      } finally {
        await session.stop();
      }
      // Nothing left: the pair's directory is gone with its daemons and QEMUs.
      expect(await exists(session.pair.root)).toBe(false);
    });
  });
});
