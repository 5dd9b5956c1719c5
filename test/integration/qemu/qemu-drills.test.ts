/**
 * Real QEMU drills through the CLI, as a person or CI runs them:
 *   node bin/postcopy-lab.js drill <lab> --qemu <bin> --json --no-record
 * The QEMU lab matrix: every lab that declares the qemu backend, on every installed QEMU in its
 * `qemu:` range (test/helpers/qemus.ts), over the relay: each passes, or fails exactly as the lab
 * declares for that version (`expected-failures`); a QEMU outside a lab's range is refused.
 * qemu-recovery-file kills the source and finishes from its saved RAM (src/qemu-recovery).
 * Then link-cut-recovery over the kernel link (when it works here), and the backend refusals.
 *
 * The fidelity test (issue 10) reads the matrix's own link-cut-recovery run on each QEMU: the
 * sim emulating that version (`drill link-cut-recovery --emulate <version>`) must show the same
 * state sequence per side (states only, a state repeated back to back counted once:
 * test/helpers/state-sequence.ts). link-cut-recovery covers the switchover, a cut and a
 * recovery. On the real QEMU the driver logs only states the VM was in, so no `setup` between
 * postcopy-paused and postcopy-recover (QEMU 7.2 sends a MIGRATION `setup` event on
 * migrate-recover without changing state; src/driver/migration-events.ts).
 *
 * The QEMU drills run one after another: two at once (four QEMUs) starve the guests on two
 * cores, and a guest that dirties too little lets precopy converge before a lab's switch to
 * postcopy.
 *
 * KVM when /dev/kvm is usable, else TCG (the backend shrinks the guest itself; forced with
 * POSTCOPY_LAB_QEMU_ACCEL). Skips, saying why, only when QEMU cannot run here at all.
 * Needs a built dist/ (`npm test` builds first).
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { findQemu, qemuVersion } from '../../../src/qemu/launcher.js';
import { listLabs, loadLab } from '../../../src/lab/load.js';
import { inRange } from '../../../src/lab/qemu-range.js';
import { NO_QEMU, QEMUS } from '../../helpers/qemus.js';
import { stateSequences } from '../../helpers/state-sequence.js';
import type { InstalledQemu } from '../../../src/qemu/installed.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../../bin/postcopy-lab.js', import.meta.url));
const LABS_DIR = fileURLToPath(new URL('../../../labs/', import.meta.url));

async function probeQemu(): Promise<string | undefined> {
  try {
    const bin = await findQemu(process.env.POSTCOPY_LAB_QEMU || undefined);
    await qemuVersion(bin);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

async function probeKernelLink(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the kernel link needs root (network namespaces, nftables)';
  for (const tool of ['ip', 'nft', 'tc']) {
    const r = await execa(tool, ['-V'], { reject: false });
    if (r.failed && r.exitCode === undefined) return `${tool} is not installed`;
  }
  const r = await execa('ip', ['netns', 'add', 'pcl-probe-qemu'], { reject: false });
  if (r.exitCode !== 0) return `cannot create a network namespace here: ${r.stderr.trim()}`;
  await execa('ip', ['netns', 'del', 'pcl-probe-qemu'], { reject: false });
  return undefined;
}

const qemuSkip = await probeQemu();
const kernelSkip = qemuSkip ?? (await probeKernelLink());
if (qemuSkip) console.warn(`QEMU drills skipped: ${qemuSkip}`);
else if (kernelSkip) console.warn(`QEMU drill over the kernel link skipped: ${kernelSkip}`);

interface JsonLine {
  type: string;
  kind?: string;
  side?: string;
  text?: string;
  [k: string]: unknown;
}

interface DrillResult {
  code: number;
  lines: JsonLine[];
  stdout: string;
  stderr: string;
}

async function drill(lab: string, extra: string[] = [], backend = 'qemu'): Promise<DrillResult> {
  const r = await execa('node', [CLI, 'drill', lab, '--backend', backend, '--json', '--no-record', '--timeout', '150', ...extra], {
    cwd: ROOT,
    reject: false,
    timeout: 170_000,
  });
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JsonLine);
  return { code: r.exitCode ?? -1, lines, stdout: r.stdout, stderr: r.stderr };
}

function summary(lines: JsonLine[]): JsonLine {
  const s = lines.find((l) => l.type === 'summary');
  expect(s, 'a summary line').toBeDefined();
  return s!;
}

function lastSnapshot(lines: JsonLine[]): JsonLine & { source: { status: string; ram?: Record<string, number> }; destination: { status: string } } {
  const snaps = lines.filter((l) => l.type === 'snapshot');
  expect(snaps.length).toBeGreaterThan(0);
  return snaps[snaps.length - 1] as never;
}

const texts = (lines: JsonLine[]): string[] => lines.filter((l) => l.type === 'event').map((l) => `${l.side ?? ''}: ${l.text ?? ''}`);

function explain(r: { code: number; lines: JsonLine[]; stderr: string }): string {
  const s = r.lines.find((l) => l.type === 'summary');
  return `exit ${r.code}; ${JSON.stringify(s?.failure ?? null)}; stderr: ${r.stderr.slice(-500)}; last events: ${texts(r.lines).slice(-12).join(' | ')}`;
}

/** Every lab that declares the qemu backend, with the QEMUs here it holds for and those it does not. */
const LABS = (await listLabs(LABS_DIR)).filter((l) => l.backends.includes('qemu'));
const labsByQemu = await Promise.all(
  QEMUS.map(async (q) => {
    const labs = await Promise.all(LABS.map((l) => loadLab(l.path)));
    return {
      qemu: q,
      inRange: labs.filter((l) => !l.qemu || inRange(l.qemu.range, q.short)),
      outOfRange: labs.filter((l) => l.qemu && !inRange(l.qemu.range, q.short)),
    };
  }),
);

/** The drills of the file, by key: each runs once, and every test that reads it awaits it. */
const runs = new Map<string, Promise<DrillResult>>();
const matrixKey = (q: InstalledQemu, lab: string) => `${q.bin} ${lab}`;
const emulateKey = (q: InstalledQemu) => `emulate ${q.short} link-cut-recovery`;

/** The run for `key`, started now unless it already was. */
function result(key: string, run: () => Promise<DrillResult>): Promise<DrillResult> {
  let p = runs.get(key);
  if (!p) {
    p = run();
    // Awaited by a test, maybe a later one; a rejection must not go unhandled meanwhile.
    p.catch(() => {});
    runs.set(key, p);
  }
  return p;
}

/** What each lab must also show, beyond passing (or failing as it declares). */
const CHECKS: Record<string, (r: DrillResult) => void> = {
  'postcopy-basics': (r) => {
    const ev = texts(r.lines);
    expect(ev.some((t) => t.includes('QEMU backend: QEMU emulator version'))).toBe(true);
    expect(ev.some((t) => /^source: (active|device) -> postcopy-active/.test(t))).toBe(true);
    expect(ev.some((t) => /^destination: memory verified \(pmemsave/.test(t))).toBe(true);
    const snap = lastSnapshot(r.lines);
    expect(snap.source.ram?.['postcopy-requests']).toBeGreaterThanOrEqual(20);
    expect(snap.source.ram?.['dirty-sync-count']).toBeGreaterThanOrEqual(2);
    // The lab turns postcopy-blocktime on: QEMU's own blocktime, measured, never "not measured".
    const s = summary(r.lines);
    expect(s.blocktimeNotMeasured).toBeUndefined();
    expect(s.blocktimeMs).toBeGreaterThan(0);
  },
  'precopy-failure': (r) => {
    // QEMU's destination exits after the failed incoming precopy (unless the lab's restart
    // kills it first, when the step ends before it has), and the lab starts a fresh one.
    const ev = texts(r.lines);
    const exited = ev.some((t) => /^destination: the destination VM process exited \(exit code 1\): QEMU's destination exits/.test(t));
    const killed = ev.some((t) => /^destination: the destination VM process was killed \(SIGKILL\), as asked/.test(t));
    expect(exited || killed, ev.join('\n')).toBe(true);
    expect(ev.filter((t) => /^destination: a fresh destination VM process started/.test(t))).toHaveLength(1);
  },
  'link-cut-recovery': (r) => {
    expect(summary(r.lines).recoveries).toBe(1);
    const ev = texts(r.lines);
    expect(ev).toContain('source: postcopy-active -> postcopy-paused');
    expect(ev).toContain('destination: postcopy-active -> postcopy-paused');
    expect(ev.some((t) => /^destination: .*postcopy-recover -> postcopy-active/.test(t))).toBe(true);
  },
  blackhole: (r) => {
    expect(summary(r.lines).recoveries).toBeGreaterThanOrEqual(1);
    const ev = texts(r.lines);
    // Nothing paused by itself under the blackhole: no paused state between the fault and
    // the step that runs migrate-pause.
    const from = ev.findIndex((t) => t.includes('link: blackhole'));
    const to = ev.findIndex((t) => t.includes('step 3/5'));
    expect(from).toBeGreaterThanOrEqual(0);
    expect(to).toBeGreaterThan(from);
    expect(ev.slice(from, to).filter((t) => t.includes('-> postcopy-paused'))).toEqual([]);
  },
  'qemu-recovery-file': (r) => {
    // The source QEMU was killed; the stand-in source from its saved RAM finished the migration.
    expect(summary(r.lines).recoveries).toBe(1);
    const ev = texts(r.lines);
    expect(ev.some((t) => /^source: the source VM process was killed \(SIGKILL\)/.test(t))).toBe(true);
    expect(ev.some((t) => /^source: a recovery source started in the source's place .* from its RAM saved in .*source\.ram: postcopy-lab recovery-source --qemu-frozen /.test(t))).toBe(true);
    expect(ev).toContain('source: postcopy-paused -> postcopy-recover');
    expect(ev).toContain('source: postcopy-active -> completed');
    const snap = lastSnapshot(r.lines) as unknown as { source: { recoverySource?: { 'served-pages': number; 'destination-lacked'?: number } } };
    expect(snap.source.recoverySource?.['served-pages']).toBeGreaterThan(0);
    expect(snap.source.recoverySource?.['served-pages']).toBe(snap.source.recoverySource?.['destination-lacked']);
  },
  'double-failure': (r) => {
    expect(summary(r.lines).recoveries).toBeGreaterThanOrEqual(1);
  },
};

/** The failures a lab declares for a version (qemu-recover-hang on 7.2: the destination's crash). */
const EXPECTED_FAILURE_CHECKS: Record<string, (r: DrillResult) => void> = {
  'qemu-recover-hang': (r) => {
    const f = summary(r.lines).failure as { reason: string; message: string };
    expect(f.reason).toBe('vm-died');
    expect(f.message).toMatch(/^the destination VM process died \(killed by SIGSEGV\)/);
  },
};

describe.skipIf(NO_QEMU !== undefined)(`the QEMU lab matrix${NO_QEMU ? ` (skipped: ${NO_QEMU})` : ''}`, () => {
  describe.each(labsByQemu)('QEMU $qemu.short ($qemu.bin)', ({ qemu, inRange: labs, outOfRange }) => {
    it.each(labs.map((l) => ({ lab: l, id: l.id })))('$id', { timeout: 180_000 }, async ({ lab }) => {
      const r = await result(matrixKey(qemu, lab.id), () => drill(lab.id, ['--qemu', qemu.bin]));
      const known = lab.expectedFailures.filter((n) => inRange(n.range, qemu.short));
      if (known.length) {
        expect(r.code, explain(r)).toBe(1);
        const f = summary(r.lines).failure as { message: string };
        expect(f.message).toContain(`This is the failure the lab expects on QEMU ${qemu.short}`);
        EXPECTED_FAILURE_CHECKS[lab.id]?.(r);
        return;
      }
      expect(r.code, explain(r)).toBe(0);
      const s = summary(r.lines);
      expect(s.ok).toBe(true);
      expect(s.verified).toBe(true);
      const snap = lastSnapshot(r.lines);
      expect(snap.source.status).toBe('completed');
      expect(snap.destination.status).toBe('completed');
      CHECKS[lab.id]?.(r);
    });

    it.skipIf(outOfRange.length === 0)(`refuses the labs that do not hold for ${qemu.short}, saying why, exit 2`, async () => {
      for (const lab of outOfRange) {
        const r = await execa('node', [CLI, 'drill', lab.id, '--qemu', qemu.bin, '--no-record'], { cwd: ROOT, reject: false });
        expect(r.exitCode).toBe(2);
        expect(r.stderr).toContain(`lab '${lab.id}' holds for QEMU ${lab.qemu!.range.source} only and this QEMU is ${qemu.short}`);
        expect(r.stdout).toBe('');
      }
    });
  });

  it.skipIf(kernelSkip !== undefined)(`link-cut-recovery over the kernel link${kernelSkip ? ` (skipped: ${kernelSkip})` : ''}`, { timeout: 180_000 }, async () => {
    const r = await drill('link-cut-recovery', ['--link', 'kernel']);
    expect(r.code, explain(r)).toBe(0);
    const s = summary(r.lines);
    expect(s.verified).toBe(true);
    expect(s.recoveries).toBe(1);
    expect(texts(r.lines).some((t) => t.includes("link 'kernel' up"))).toBe(true);
  });

  const emulated = (q: InstalledQemu) => result(emulateKey(q), () => drill('link-cut-recovery', ['--emulate', q.short], 'sim'));
  describe.each(QEMUS)('fidelity: QEMU $short and the sim emulating it, link-cut-recovery', (q) => {
    const real = () => result(matrixKey(q, 'link-cut-recovery'), () => drill('link-cut-recovery', ['--qemu', q.bin]));
    const sim = () => emulated(q);
    // The matrix ran the QEMU drills already; the sim's drills, one per version, run side by side.
    beforeAll(() => QEMUS.forEach((each) => void emulated(each)));

    it('on QEMU: passes, and the driver logs no setup between postcopy-paused and postcopy-recover', { timeout: 180_000 }, async () => {
      const r = await real();
      expect(r.code, `drill link-cut-recovery --qemu ${q.bin}: ${r.stderr.slice(-600)}`).toBe(0);
      const seqs = stateSequences(r.stdout);
      for (const side of ['source', 'destination'] as const) {
        const seq = seqs[side];
        const shown = `${side}: ${seq.join(' > ')}`;
        const paused = seq.indexOf('postcopy-paused');
        const recover = seq.indexOf('postcopy-recover', paused);
        expect(paused, shown).toBeGreaterThan(0);
        expect(recover, shown).toBeGreaterThan(paused);
        expect(seq.slice(paused, recover), shown).not.toContain('setup');
      }
      // QEMU's start-up CPUID warning (this VM's CPU lacks one of qemu64's features) says it is harmless.
      for (const t of texts(r.lines).filter((x) => x.includes("host doesn't support requested feature"))) expect(t).toContain('harmless');
    });

    it(`the sim with --emulate ${q.short} shows the same state sequence per side`, { timeout: 180_000 }, async () => {
      const [r, s] = await Promise.all([real(), sim()]);
      expect(s.code, `drill link-cut-recovery --emulate ${q.short}: ${s.stderr.slice(-600)}`).toBe(0);
      // Both sides in one comparison, so a failure shows every difference at once.
      expect(stateSequences(s.stdout), `state sequences: sim --emulate ${q.short} (received) vs ${q.version.text} (expected)`).toEqual(stateSequences(r.stdout));
    });
  });
});

describe('backend selection', () => {
  it('refuses a sim-only lab on QEMU with the reason, exit 2', async () => {
    const r = await execa('node', [CLI, 'drill', 'walk-recovery', '--backend', 'qemu', '--no-record'], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("lab 'walk-recovery' runs on sim only");
    expect(r.stderr).toContain('x-recovery-walk');
    expect(r.stdout).toBe('');
  });

  it('a missing QEMU binary: one sentence with the install hint, exit 2', async () => {
    const r = await execa('node', [CLI, 'drill', 'postcopy-basics', '--qemu', '/nonexistent/qemu', '--no-record'], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/QEMU not found .*apt-get install qemu-system-x86.*--backend sim` needs nothing/);
  });

  it('a lab that runs on one backend, not the sim, runs there without --backend (an --emulate for the sim is then refused)', async () => {
    const r = await execa('node', [CLI, 'drill', 'qemu-recovery-file', '--emulate', '7.2', '--no-record'], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--emulate is for the sim backend: with --backend qemu');
    expect(r.stderr).not.toContain('runs on qemu only');
  });

  it('an unknown backend is bad input', async () => {
    const r = await execa('node', [CLI, 'drill', 'postcopy-basics', '--backend', 'xen'], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("'xen' is not a backend");
  });
});
