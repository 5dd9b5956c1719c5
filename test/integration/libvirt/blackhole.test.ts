/**
 * The unresumable blackhole, as an operator meets it under libvirt: a silent blackhole during
 * postcopy leaves both sides in `post-copy` (nothing has failed, so `--postcopy-resume` is
 * refused); `virsh domjobabort --postcopy` pauses the source, but libvirt has no way to pause
 * the destination; QEMU's out-of-band `migrate-pause` on the destination's extra QMP socket is
 * the way out, after which the link comes back and `--postcopy-resume` completes. QEMU 7.2.
 * Skipped, saying why, where libvirt cannot run.
 */
import { describe, expect, it } from 'vitest';
import { LibvirtSession } from '../../../src/libvirt/session.js';
import { VirshError } from '../../../src/libvirt/pair.js';
import { migrateArgs, resumeArgs } from '../../../src/libvirt/virsh.js';
import { libvirtSkipReason } from './helpers.js';

const SKIP = await libvirtSkipReason({ systemQemu: true, kvm: true });

describe.skipIf(SKIP !== undefined)(`libvirt and a silent blackhole${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it('cannot be resumed until the destination is paused out of band; then --postcopy-resume completes', { timeout: 300_000 }, async () => {
    const session = new LibvirtSession({ runId: `lvb${process.pid}`, emulator: '/usr/bin/qemu-system-x86_64', subnet: '10.213.43.0/24', memoryMiB: 64 });
    const long = (args: string[]) => ({ kind: 'virsh' as const, side: 'source' as const, args, long: true });
    try {
      await session.start();
      const to = { domain: session.domain, destUri: session.destUri };
      await session.perform(long(migrateArgs({ ...to, postcopyAfterPrecopy: true, bandwidthMiB: 20, postcopyBandwidthMiB: 1 })));
      await session.waitState('source', (s) => s.reason === 'post-copy', 'paused (post-copy)');
      await session.link.apply({ kind: 'blackhole' });

      // Nothing fails on a silent link: resuming is refused because nothing has. (--p2p: the source
      // daemon answers; a managed-direct virsh would first hang connecting across the blackhole.)
      const refused = await session.pair.virsh('source', resumeArgs({ ...to, p2p: true }), { timeoutMs: 60_000 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(VirshError);
      expect((refused as Error).message).toMatch(/has not failed/);
      expect(await session.state('source')).toEqual({ state: 'paused', reason: 'post-copy' });

      // The source can be paused through libvirt...
      await session.pair.virsh('source', ['domjobabort', '--postcopy', session.domain], { timeoutMs: 60_000 });
      await session.waitState('source', (s) => s.reason === 'post-copy failed', 'paused (post-copy failed)');
      // ...the destination only behind libvirt's back.
      await session.pauseDestinationOutOfBand();
      await session.waitState('destination', (s) => s.reason === 'post-copy failed', 'running (post-copy failed)');

      await session.link.restore();
      const resume = await session.perform(long(resumeArgs({ ...to, postcopyBandwidthMiB: 1024 })));
      const done = await resume!.done;
      expect(done.exitCode, done.stderr).toBe(0);
      expect(await session.waitState('destination', (s) => s.state === 'running', 'running')).toEqual({ state: 'running', reason: 'migrated' });
      const r = await session.verifyDestination();
      expect(r.ok, r.explanation).toBe(true);
    } finally {
      await session.stop();
    }
  });
});
