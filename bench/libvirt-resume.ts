/**
 * libvirt's postcopy recovery against its floor, beside the same recovery driven over QMP
 * (issue 14): on the local two-daemon pair, a 256 MiB guest in postcopy at 64 MiB/s
 * (`--postcopy-bandwidth 64`), an RST cut on the kernel link at ~30% of postcopy, then the time
 * from issuing `virsh migrate --postcopy --postcopy-resume` to the destination's `running
 * (migrated)`. Floor: the bytes the source's domjobinfo still had to send at the resume ÷ the
 * bandwidth set. The direct row is bench/run.ts's QEMU recovery (QMP migrate-recover + migrate
 * resume=true over the relay shaped to 64 MiB/s, the same guest size and cut), run here with the
 * same QEMU so both rows share one run. Each QEMU installed (7.2, 10.0). Root, libvirtd, KVM.
 *
 * The libvirt time includes what libvirt adds: virsh's connections to both daemons, its
 * migrate-recover on the destination, the resume's job set-up, and state polling every 200 ms.
 */
import { LibvirtSession } from '../src/libvirt/session.js';
import { isPostcopyFailed, migrateArgs, resumeArgs, type DomState } from '../src/libvirt/virsh.js';
import { installedQemus } from '../src/qemu/installed.js';

const MiB = 1024 * 1024;
const BANDWIDTH_MIB = 64;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ResumeRow {
  seconds: number;
  floorSeconds: number;
  remainingBytes: number;
}

/** One libvirt recovery on a fresh pair: cut at ~30% of postcopy, resume, time to completion. */
async function libvirtResumeRun(bin: string, runId: string): Promise<ResumeRow> {
  const memoryMiB = 256;
  const s = new LibvirtSession({ runId, emulator: bin, subnet: '10.213.78.0/24', memoryMiB, dirtyPagesPerSecond: 2000 });
  try {
    await s.start();
    const base = { domain: s.domain, destUri: s.destUri };
    const migrate = await s.perform({ kind: 'virsh', side: 'source', args: migrateArgs({ ...base, postcopyBandwidthMiB: BANDWIDTH_MIB }), long: true });
    // The source's job has started moving memory (postcopy is on once QEMU migrates; the
    // destination domain appears before that).
    for (;;) {
      const j = await s.jobInfo().catch(() => null);
      if (j?.jobType === 'Unbounded' && (j.dataProcessed ?? 0) > 0) break;
      await sleep(50);
    }
    await s.perform({ kind: 'virsh', side: 'source', args: ['migrate-postcopy', s.domain], long: false });
    await s.waitState('source', (d: DomState) => d.reason === 'post-copy', 'paused (post-copy)');
    const total = memoryMiB * MiB;
    for (;;) {
      const j = await s.jobInfo().catch(() => null);
      if (j?.dataRemaining != null && j.dataRemaining < total * 0.7) break;
      await sleep(50);
    }
    await s.link.apply({ kind: 'cut' });
    await s.waitState('source', isPostcopyFailed, 'paused (post-copy failed)');
    await s.waitState('destination', isPostcopyFailed, 'running (post-copy failed)');
    await migrate?.done;
    await s.link.restore();
    const remaining = (await s.jobInfo()).dataRemaining;
    if (remaining == null) throw new Error('domjobinfo gave no Data remaining on the paused source');
    const t0 = performance.now();
    const resume = await s.perform({ kind: 'virsh', side: 'source', args: resumeArgs({ ...base, postcopyBandwidthMiB: BANDWIDTH_MIB }), long: true });
    await s.waitState('destination', (d) => d.state === 'running' && d.reason === 'migrated', 'running (migrated)', 120_000);
    const seconds = (performance.now() - t0) / 1000;
    const r = await resume!.done;
    if (r.exitCode !== 0) throw new Error(`the resume's virsh failed: ${r.stderr.trim()}`);
    return { seconds, floorSeconds: remaining / (BANDWIDTH_MIB * MiB), remainingBytes: remaining };
  } finally {
    await s.stop();
  }
}

/**
 * Print the rows. `direct(bin)` is run.ts's QEMU recovery run (QMP) for the same QEMU; its
 * result's seconds and floorSeconds go in the row beside libvirt's.
 */
export async function benchLibvirtResume(opts: { quick?: boolean; direct: (bin: string) => Promise<{ seconds: number; floorSeconds: number }> }): Promise<Record<string, unknown>> {
  if (process.getuid?.() !== 0) {
    console.log('libvirt resume: skipped (needs root: the pair runs in network and mount namespaces)\n');
    return {};
  }
  const reps = opts.quick ? 1 : 3;
  const results: Record<string, unknown> = {};
  const rows: string[][] = [];
  for (const q of await installedQemus()) {
    const lv: ResumeRow[] = [];
    const direct: Array<{ seconds: number; floorSeconds: number }> = [];
    for (let i = 0; i < reps; i++) {
      lv.push(await libvirtResumeRun(q.bin, `lvbench${i}`));
      direct.push(await opts.direct(q.bin));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const cell = (rs: Array<{ seconds: number; floorSeconds: number }>) =>
      `${med(rs.map((r) => r.seconds)).toFixed(2)} s (floor ${med(rs.map((r) => r.floorSeconds)).toFixed(2)} s, × ${med(rs.map((r) => r.seconds / r.floorSeconds)).toFixed(2)})`;
    rows.push([`QEMU ${q.short}`, cell(direct), cell(lv)]);
    results[`libvirt-resume-${q.short}`] = { libvirt: lv, direct };
  }
  const head = ['QEMU', 'QMP: migrate resume=true → completed', 'libvirt: virsh migrate --postcopy-resume → running (migrated)'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  console.log(`Postcopy recovery after a cut at ~30%, 256 MiB guest, 64 MiB/s: time from the resume to completion (median of ${reps}; floor = bytes left ÷ bandwidth)`);
  console.log([line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n') + '\n');
  return results;
}
