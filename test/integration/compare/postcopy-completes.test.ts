/**
 * The property: postcopy's completion does not depend on the dirty rate. A small guest
 * on a slow link, from a guest that writes nothing to one that dirties several times what the
 * link carries: postcopy completes every time (precopy would not, past the link's rate).
 */
import { describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../helpers/sim.js';
import { parseCompareFlags } from '../../../src/compare/options.js';
import { runCompare } from '../../../src/compare/run.js';

describe('postcopy completes whatever the dirty rate', () => {
  it.each([0, 1000, 8000])('%i writes/s per vCPU on a 4 MiB/s link', async (dirtyRate) => {
    await ensureBuilt();
    const o = parseCompareFlags({ memory: '4M', vcpus: '2', 'dirty-rate': String(dirtyRate), 'read-rate': '1000', bandwidth: '4M', strategies: 'postcopy' });
    const [r] = await runCompare(o);
    expect(r).toMatchObject({ strategy: 'postcopy', completed: true, reason: null });
    expect(r!.bytesSent).toBeGreaterThanOrEqual(4 * 1024 * 1024);
  });
});
