/**
 * `postcopy-lab doctor` on this machine lists every installed QEMU (the distribution's and the
 * ones provision.sh unpacked under /opt) with the version it reports and an accelerator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { ensureBuilt, runCli, tempDir } from '../../helpers/sim.js';
import { NO_QEMU, QEMUS } from '../../helpers/qemus.js';

describe.skipIf(NO_QEMU)(`doctor lists the installed QEMUs${NO_QEMU ? ` (skipped: ${NO_QEMU})` : ''}`, () => {
  let dir: string;
  beforeAll(async () => {
    await ensureBuilt();
    dir = tempDir();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('names each one with its version text and KVM or TCG', async () => {
    const r = await runCli(['doctor'], dir);
    expect(r.stderr).toBe('');
    const section = r.stdout.slice(r.stdout.indexOf('QEMUs ('));
    for (const q of QEMUS) {
      const line = section.split('\n').find((l) => l.includes(` ${q.bin} `));
      expect(line, `a line for ${q.bin}`).toBeDefined();
      expect(line).toMatch(new RegExp(`^ {2}${q.short.replace('.', '\\.')} +(KVM|TCG) `));
      expect(line).toContain(q.version.text);
    }
  });

  it('--json carries the same list', async () => {
    const r = await runCli(['doctor', '--json'], dir);
    const report = JSON.parse(r.stdout) as { qemus: { bin: string; short: string; accel: string }[] };
    expect(report.qemus.map((q) => [q.bin, q.short])).toEqual(QEMUS.map((q) => [q.bin, q.short]));
    for (const q of report.qemus) expect(['kvm', 'tcg']).toContain(q.accel);
  });
});
