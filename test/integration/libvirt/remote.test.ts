/**
 * `--source-uri/--dest-uri` for real: a libvirt pair started outside the lab run (as two hosts
 * someone already has), and the CLI run as a client of both over qemu+tcp. The daemons listen
 * on their veth addresses only, so the CLI runs inside the source's network namespace (`ip netns
 * exec`), from where both addresses are reachable — as a client on host A reaches host B.
 * qemu+ssh is not exercised here (no sshd on this machine); only the transport differs.
 *
 * libvirt-postcopy-pause: virsh migrate --postcopy, migrate-postcopy, domjobabort --postcopy
 * (post-copy failed on both sides), --postcopy-resume, completed; then no domain and no pool of
 * the run left on either daemon. No memory check remotely: the run says so and fails its
 * verification (exit 1), which the test asserts. QEMU 7.2 only (about 60 s).
 */
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelLink } from '../../../src/kernel/kernel-link.js';
import { LibvirtPair } from '../../../src/libvirt/pair.js';
import { QEMUS } from '../../helpers/qemus.js';
import { ensureBuilt, ROOT } from '../../helpers/sim.js';
import { libvirtSkipReason } from './helpers.js';

const CLI = path.join(ROOT, 'bin', 'postcopy-lab.js');
type JsonLine = Record<string, unknown> & { type: string; text?: string; side?: string; kind?: string };

const SKIP = (await libvirtSkipReason({ systemQemu: true, kvm: true })) ?? (QEMUS.some((q) => q.short === '7.2') ? undefined : 'no QEMU 7.2');
if (SKIP) console.warn(`libvirt remote-hosts drill skipped: ${SKIP}`);

describe.skipIf(SKIP !== undefined)(`libvirt on "remote" hosts${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  const runId = `rm${process.pid.toString(36)}`.slice(0, 8);
  const link = new KernelLink({ runId, subnet: '10.213.77.0/24' });
  let pair: LibvirtPair;

  beforeAll(async () => {
    await ensureBuilt();
    await link.start();
    pair = new LibvirtPair({ runId, network: link });
    await pair.start();
  }, 240_000);

  afterAll(async () => {
    await pair?.stop();
    await link.stop();
  }, 60_000);

  it('libvirt-postcopy-pause over qemu+tcp to both daemons: paused, resumed, completed, memory check said to be missing, nothing left', { timeout: 240_000 }, async () => {
    const argv = [CLI, 'drill', 'libvirt-postcopy-pause', '--backend', 'libvirt', '--source-uri', pair.tcpUri('source'), '--dest-uri', pair.tcpUri('destination'), '--json', '--no-record', '--timeout', '200'];
    const r = await execa('ip', ['netns', 'exec', link.namespaces.source, 'node', ...argv], { cwd: ROOT, reject: false, timeout: 230_000 });
    const lines = String(r.stdout)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as JsonLine);
    const ev = lines.filter((l) => l.type === 'event').map((l) => `${l.side ?? ''}: ${l.text ?? ''}`);
    if (process.env.PCL_DEBUG) console.log(ev.join('\n'));
    const why = `stderr: ${String(r.stderr).slice(-400)}; last events: ${ev.slice(-10).join(' | ')}`;
    // Said plainly at the start: whose daemons, and that there is no link of ours.
    expect(ev.some((t) => t.includes(`source ${pair.tcpUri('source')}`) && t.includes('link: none')), why).toBe(true);
    expect(ev.some((t) => t.startsWith('source: libvirt: migrate-pause is `virsh domjobabort --postcopy')), why).toBe(true);
    expect(ev, why).toContain('source: postcopy-active -> postcopy-paused');
    expect(ev, why).toContain('destination: postcopy-active -> postcopy-paused');
    expect(ev.some((t) => /virsh migrate --live --postcopy --postcopy-resume .*: completed/.test(t)), why).toBe(true);
    expect(ev, why).toContain('source: postcopy-active -> completed');
    // No memory check remotely: said, and the drill does not claim a verified run.
    expect(ev.some((t) => t.startsWith('destination: memory not verified: the daemons are remote')), why).toBe(true);
    const summary = lines.find((l) => l.type === 'summary') as { ok: boolean; verified: boolean; failure?: { reason: string; message: string } } | undefined;
    expect(summary, why).toMatchObject({ ok: false, verified: false, failure: { reason: 'verification' } });
    expect(summary?.failure?.message).toContain('could not be checked');
    expect(r.exitCode).toBe(1);
    // Everything the run created on the "hosts" is gone: its domain and its pool.
    for (const side of ['source', 'destination'] as const) {
      expect(await pair.domains(side)).toEqual([]);
      expect((await pair.virsh(side, ['pool-list', '--all', '--name'])).stdout.trim()).toBe('');
    }
  });
});
