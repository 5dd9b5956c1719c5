/**
 * `postcopy-lab compare --json` on the sim, a tiny guest that dirties faster than its link
 * carries, with short bounds: plain precopy never converges and is cancelled, postcopy
 * finishes, auto-converge ends as its throttle says, and its throttle costs guest work.
 */
import { describe, expect, it } from 'vitest';
import { ensureBuilt, runCli, tempDir } from '../../helpers/sim.js';
import type { StrategyResult } from '../../../src/compare/run.js';

type Line = StrategyResult & { options: Record<string, unknown> };

describe('postcopy-lab compare --json (sim)', () => {
  it('reports each strategy on one line, and the outcome each one must have', async () => {
    await ensureBuilt();
    const dir = tempDir('postcopy-compare-');
    const r = await runCli(
      // 2 vCPUs × 3000 writes/s of 4 KiB pages (23 MiB/s) on a 4 MiB/s link: a margin of ~6, so
      // that a guest starved by a loaded CI host (it once ran at a third of its rate and an 8 MiB/s
      // link let plain precopy converge) still dirties more than the link carries. 16 MiB, not 8:
      // some 5.4 MB of socket buffers between the source and the relay took most of an 8 MiB
      // first pass at once, and the bandwidth measured then let a loaded run converge (CI, 29 Nov).
      // 12 s, so that auto-converge reaches its second trigger (the end of pass 2) and throttles.
      ['compare', '--json', '--memory', '16M', '--vcpus', '2', '--dirty-rate', '3000', '--read-rate', '2000', '--bandwidth', '4M', '--max-seconds', '12', '--max-passes', '8', '--max-cpu-throttle', '30', '--strategies', 'precopy,postcopy,auto-converge'],
      dir,
      120_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Line);
    expect(lines.map((l) => l.strategy)).toEqual(['precopy', 'postcopy', 'auto-converge']);
    for (const l of lines) {
      for (const k of ['strategy', 'completed', 'reason', 'totalMs', 'downtimeMs', 'bytesSent', 'guestWorkLostPct', 'guestWorkLostS', 'worstStallMs', 'recoverTo90Ms']) expect(l, k).toHaveProperty(k);
      expect(l.options).toMatchObject({ memory: 16 * 1024 * 1024, vcpus: 2, bandwidth: 4 * 1024 * 1024, backend: 'sim', maxPasses: 8, maxSeconds: 12 });
    }
    const [precopy, postcopy, ac] = lines as [Line, Line, Line];
    expect(precopy).toMatchObject({ completed: false, reason: 'did not converge', downtimeMs: null });
    expect(precopy.bound).toMatch(/^(8 passes|12 s)$/);
    expect(postcopy).toMatchObject({ completed: true, reason: null });
    expect(postcopy.downtimeMs).toEqual(expect.any(Number));
    expect(postcopy.bytesSent).toBeGreaterThanOrEqual(16 * 1024 * 1024);
    // Postcopy's cost is vCPUs blocked on missing pages.
    expect(postcopy.worstStallMs).toBeGreaterThan(0);
    // Auto-converge: completed, or stopped at the max throttle only when its throttle is at that max.
    if (ac.completed) expect(ac.reason).toBeNull();
    else if (ac.reason === 'max throttle reached') expect(ac.throttlePct).toBe(30);
    else {
      expect(ac.reason).toBe('did not converge');
      expect(ac.throttlePct).toBeLessThan(30);
    }
    expect(ac.guestWorkLostPct!).toBeGreaterThan(0);
    expect(ac.guestWorkLostS!).toBeGreaterThan(0);
    // Progress went to stderr, one start line per strategy.
    expect(r.stderr.match(/^\[\d\/3\] [\w-]+: /gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
  });

  it('dirty-limit on a version without it (7.2) is refused with the reason, and the others still run', async () => {
    await ensureBuilt();
    const r = await runCli(['compare', '--json', '--emulate', '7.2', '--memory', '4M', '--vcpus', '2', '--bandwidth', '8M', '--strategies', 'dirty-limit,postcopy'], tempDir('postcopy-compare-'), 60_000);
    expect(r.code, r.stderr).toBe(0);
    const [dl, pc] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
    expect(dl).toMatchObject({ strategy: 'dirty-limit', completed: false });
    expect(dl!.reason).toMatch(/^refused: .*dirty-limit/);
    expect(pc).toMatchObject({ strategy: 'postcopy', completed: true });
  });

  it('refuses a bad option with exit 2, naming it', async () => {
    await ensureBuilt();
    const r = await runCli(['compare', '--strategies', 'precopy,warp'], tempDir('postcopy-compare-'), 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--strategies: 'warp' is not a strategy");
  });
});
