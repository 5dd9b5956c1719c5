/**
 * The failure screen's retry key, end to end in a real pseudo-terminal: a VM dies mid-lab, the
 * end screen says the lab failed and offers `r`; pressing it starts fresh VMs, replays the
 * steps before the one the run was on, and hands that step back to the person.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, ROOT, ensureBuilt } from '../helpers/sim.js';
import { killAllTerms, pidsWith, spawnTerm } from '../helpers/term.js';

beforeAll(ensureBuilt, 240_000);
afterEach(() => killAllTerms());

describe('the failure screen', () => {
  it('r after a VM died: fresh VMs, step 1 replayed, step 2 is the person’s again', async () => {
    const t = spawnTerm(process.execPath, [CLI_BIN, 'lab', 'link-cut-recovery', '--no-record'], { cwd: ROOT, cols: 100, rows: 30 });
    await t.waitFor('Steps 1/7', 30_000);
    t.type('s');
    await t.waitFor('Steps 2/7', 20_000);
    const vms = pidsWith('vm-main.js', t.dir);
    expect(vms.length).toBe(2);
    process.kill(vms[1]!, 'SIGKILL');
    const end = await t.waitFor('✗ Lab failed', 20_000);
    expect(end).toMatch(/VM process died/);
    expect(end).toMatch(/r retry step 2 \(fresh VMs, step 1 replayed\)/);
    t.type('r');
    await t.waitUntil((s) => s.includes('Steps 2/7') && s.includes('rewind: replaying step 1 for you'), 'step 2 after the replay', 40_000);
    // Fresh VMs, not the survivors of the old run.
    const now = pidsWith('vm-main.js', t.dir);
    expect(now.length).toBe(2);
    expect(now).not.toContain(vms[0]);
    t.type('q');
    expect(await t.exit).toBe(0);
  }, 120_000);
});
