import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findLab } from '../../../src/lab/load.js';
import { kernelLinkProblem, netemFaultsOf, netemProblem } from '../../../src/commands/netem-fit.js';

const LABS = fileURLToPath(new URL('../../../labs', import.meta.url));
const missing = { ok: false, detail: 'Error: Specified qdisc kind is unknown.' };

describe('a lab on a kernel link without sch_netem', () => {
  it('latency and loss need netem; cut, blackhole, rate and down do not', async () => {
    expect(netemFaultsOf(await findLab('postcopy-preempt', LABS))).toEqual(['setup (latency 20 ms)']);
    expect(netemFaultsOf(await findLab('recovery-file-window', LABS))[0]).toMatch(/^setup \(latency 100 ms/);
    for (const id of ['link-cut-recovery', 'blackhole', 'throttle-vs-postcopy', 'libvirt-postcopy-recovery']) expect(netemFaultsOf(await findLab(id, LABS))).toEqual([]);
  });

  it('is refused, saying what is missing, where it exists, and that --link relay works here', async () => {
    const lab = await findLab('postcopy-preempt', LABS);
    const problem = netemProblem(lab, missing)!;
    expect(problem).toMatch(/sch_netem/);
    expect(problem).toContain('Specified qdisc kind is unknown');
    expect(problem).toMatch(/Vagrant/);
    expect(problem).toMatch(/--link relay runs this lab/);
    expect(netemProblem(lab, { ok: true, detail: '' })).toBeUndefined();
    // Could not be tried (not root): the kernel link refuses with its own reason.
    expect(netemProblem(lab, null)).toBeUndefined();
  });

  it('probes only for a lab that needs netem on the kernel link', async () => {
    let probes = 0;
    const probe = async () => (probes++, missing);
    expect(await kernelLinkProblem(await findLab('postcopy-preempt', LABS), 'relay', probe)).toBeUndefined();
    expect(await kernelLinkProblem(await findLab('link-cut-recovery', LABS), 'kernel', probe)).toBeUndefined();
    expect(probes).toBe(0);
    expect(await kernelLinkProblem(await findLab('postcopy-preempt', LABS), 'kernel', probe)).toMatch(/sch_netem/);
    expect(probes).toBe(1);
  });
});
