/**
 * Guest threads per vCPU end to end: the same postcopy migration (same guest, seed and link
 * latency through the relay) with one and with four threads per vCPU. With four, a thread
 * blocked on a missing page lets its vCPU run another, so the vCPUs' blocked time (blocktime,
 * every thread blocked) is no more than with one, and the guest does at least as much work on
 * the destination (the thread's point: postcopy blocks threads, not vCPUs).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, tcpUri } from '../../../src/driver/orchestrator.js';
import { RelayLink } from '../../../src/link/relay.js';
import type { GuestAccounting } from '../../../src/sim/workload.js';
import type { PagesInfo } from '../../../src/types.js';
import { ensureBuilt, waitFor } from '../../helpers/sim.js';

const MiB = 1024 * 1024;
let orch: Orchestrator | null = null;

afterEach(async () => {
  await orch?.stop();
  orch = null;
});

/**
 * Postcopy at once over a link with 20 ms each way, a hot-set guest (90 % of accesses to 10 % of
 * memory): what the destination saw when it completed. Right after switchover every hot page is
 * missing; with one thread each vCPU fetches them one round trip at a time, with four threads
 * up to four at once, and it stalls only when all four wait.
 */
async function postcopy(threadsPerVcpu: number): Promise<{ pages: PagesInfo; guest: GuestAccounting }> {
  await ensureBuilt();
  const o = new Orchestrator({
    guest: {
      memoryBytes: 8 * MiB,
      pageSize: 4096,
      vcpus: 2,
      workload: 'hotset',
      hotset: { fraction: 0.1, share: 0.9 },
      dirtyRate: 500,
      readRate: 2000,
      seed: 7,
      threadsPerVcpu,
    },
    makeLink: (dir) => new RelayLink({ runtimeDir: dir }),
    onEvent: () => {},
  });
  orch = o;
  const ep = await o.start();
  const capabilities = ['postcopy-ram', 'return-path', 'events', 'postcopy-blocktime'].map((capability) => ({ capability, state: true }));
  for (const side of ['source', 'destination'] as const) await o.qmp(side).execute('migrate-set-capabilities', { capabilities });
  // The background push takes a few seconds, so the guest meets missing pages meanwhile.
  await o.qmp('source').execute('migrate-set-parameters', { 'max-postcopy-bandwidth': 2 * MiB });
  await o.link!.apply({ kind: 'latency', direction: 'both', ms: 20 });
  await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
  await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
  await o.qmp('source').execute('migrate-start-postcopy');
  const status = async (side: 'source' | 'destination') => (await o.qmp(side).execute<{ status?: string }>('query-migrate')).status;
  await waitFor(async () => (await status('source')) === 'completed' && (await status('destination')) === 'completed', 'postcopy to complete', 60_000);
  const pages = await o.qmp('destination').execute<PagesInfo>('x-query-pages');
  const guest = await o.qmp('destination').execute<GuestAccounting>('x-query-guest');
  await o.stop();
  orch = null;
  return { pages, guest };
}

describe('guest threads per vCPU under postcopy', () => {
  it('four threads per vCPU lose no more vCPU time to missing pages than one', async () => {
    const one = await postcopy(1);
    const four = await postcopy(4);
    expect(one.pages.verified).toBe(true);
    expect(four.pages.verified).toBe(true);
    expect(one.guest['threads-per-vcpu']).toBe(1);
    expect(four.guest['threads-per-vcpu']).toBe(4);
    // With one thread the vCPUs did block (or the comparison would say nothing)...
    expect(one.pages['blocktime-ms']).toBeGreaterThan(0);
    // ...and with four, a blocked thread's vCPU ran another: no more blocked vCPU time.
    expect(four.pages['blocktime-ms']).toBeLessThanOrEqual(one.pages['blocktime-ms']);
  }, 120_000);
});
