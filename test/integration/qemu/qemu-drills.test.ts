/**
 * Real QEMU drills through the CLI, as a person or CI runs them:
 *   node bin/postcopy-lab.js drill <lab> --backend qemu --json --no-record
 * postcopy-basics, link-cut-recovery and blackhole over the relay, link-cut-recovery over the
 * kernel link (when it works here), and the refusal of a sim-only lab.
 *
 * KVM when /dev/kvm is usable, else TCG (the backend shrinks the guest itself; forced with
 * POSTCOPY_LAB_QEMU_ACCEL). Skips, saying why, only when QEMU cannot run here at all.
 * Needs a built dist/ (`npm test` builds first).
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { findQemu, qemuVersion } from '../../../src/qemu/launcher.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../../bin/postcopy-lab.js', import.meta.url));

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

async function drill(lab: string, extra: string[] = []): Promise<{ code: number; lines: JsonLine[]; stderr: string }> {
  const r = await execa('node', [CLI, 'drill', lab, '--backend', 'qemu', '--json', '--no-record', '--timeout', '150', ...extra], {
    cwd: ROOT,
    reject: false,
    timeout: 170_000,
  });
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JsonLine);
  return { code: r.exitCode ?? -1, lines, stderr: r.stderr };
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

describe.skipIf(qemuSkip !== undefined).sequential(`QEMU drills${qemuSkip ? ` (skipped: ${qemuSkip})` : ''}`, () => {
  it('postcopy-basics: precopy does not converge, postcopy finishes, memory verified', { timeout: 180_000 }, async () => {
    const r = await drill('postcopy-basics');
    expect(r.code, explain(r)).toBe(0);
    const s = summary(r.lines);
    expect(s.ok).toBe(true);
    expect(s.verified).toBe(true);
    const ev = texts(r.lines);
    expect(ev.some((t) => t.includes('QEMU backend: QEMU emulator version'))).toBe(true);
    expect(ev.some((t) => /^source: active -> postcopy-active/.test(t))).toBe(true);
    expect(ev.some((t) => /^destination: memory verified \(pmemsave/.test(t))).toBe(true);
    const snap = lastSnapshot(r.lines);
    expect(snap.source.status).toBe('completed');
    expect(snap.destination.status).toBe('completed');
    expect(snap.source.ram?.['postcopy-requests']).toBeGreaterThanOrEqual(20);
    expect(snap.source.ram?.['dirty-sync-count']).toBeGreaterThanOrEqual(2);
  });

  it('link-cut-recovery over the relay: both sides pause, one recovery, memory verified', { timeout: 180_000 }, async () => {
    const r = await drill('link-cut-recovery');
    expect(r.code, explain(r)).toBe(0);
    const s = summary(r.lines);
    expect(s.verified).toBe(true);
    expect(s.recoveries).toBe(1);
    const ev = texts(r.lines);
    expect(ev).toContain('source: postcopy-active -> postcopy-paused');
    expect(ev).toContain('destination: postcopy-active -> postcopy-paused');
    expect(ev.some((t) => /^destination: .*postcopy-recover -> postcopy-active/.test(t))).toBe(true);
  });

  it('blackhole over the relay: nothing fails until migrate-pause, then recovery, memory verified', { timeout: 180_000 }, async () => {
    const r = await drill('blackhole');
    expect(r.code, explain(r)).toBe(0);
    const s = summary(r.lines);
    expect(s.verified).toBe(true);
    expect(s.recoveries).toBeGreaterThanOrEqual(1);
    const ev = texts(r.lines);
    // Nothing paused by itself under the blackhole: no paused state between the fault and
    // the step that runs migrate-pause.
    const from = ev.findIndex((t) => t.includes('link: blackhole'));
    const to = ev.findIndex((t) => t.includes('step 3/5'));
    expect(from).toBeGreaterThanOrEqual(0);
    expect(to).toBeGreaterThan(from);
    expect(ev.slice(from, to).filter((t) => t.includes('-> postcopy-paused'))).toEqual([]);
  });

  it.skipIf(kernelSkip !== undefined)(`link-cut-recovery over the kernel link${kernelSkip ? ` (skipped: ${kernelSkip})` : ''}`, { timeout: 180_000 }, async () => {
    const r = await drill('link-cut-recovery', ['--link', 'kernel']);
    expect(r.code, explain(r)).toBe(0);
    const s = summary(r.lines);
    expect(s.verified).toBe(true);
    expect(s.recoveries).toBe(1);
    expect(texts(r.lines).some((t) => t.includes("link 'kernel' up"))).toBe(true);
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

  it('an unknown backend is bad input', async () => {
    const r = await execa('node', [CLI, 'drill', 'postcopy-basics', '--backend', 'xen'], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("'xen' is not a backend");
  });
});
