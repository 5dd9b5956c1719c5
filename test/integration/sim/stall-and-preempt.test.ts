/**
 * Two opt-in behaviours of the sim, end to end through the relay: the x-stall-timeout detector
 * (QEMU has none: a silent blackhole is noticed by an operator) and the postcopy-preempt
 * channel surviving a failure and a recovery.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, tcpUri } from '../../../src/driver/orchestrator.js';
import { RelayLink } from '../../../src/link/relay.js';
import type { LinkEndpoints, MigrationStatus, PagesInfo, Side } from '../../../src/types.js';
import { ensureBuilt } from '../../helpers/sim.js';

const MiB = 1024 * 1024;
let orch: Orchestrator | null = null;

afterEach(async () => {
  await orch?.stop();
  orch = null;
});

async function start(): Promise<{ o: Orchestrator; ep: LinkEndpoints }> {
  await ensureBuilt();
  const o = new Orchestrator({
    guest: { memoryBytes: 32 * MiB, pageSize: 4096, vcpus: 2, workload: 'random', dirtyRate: 1000, readRate: 20000, seed: 7 },
    makeLink: (dir) => new RelayLink({ runtimeDir: dir }),
    onEvent: () => {},
  });
  orch = o;
  return { o, ep: await o.start() };
}

async function status(o: Orchestrator, side: Side): Promise<{ status: MigrationStatus; 'error-desc'?: string }> {
  return o.qmp(side).execute('query-migrate');
}

async function until(what: string, f: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function setup(o: Orchestrator, caps: string[], params: Record<string, number>): Promise<void> {
  const capabilities = ['postcopy-ram', 'return-path', 'events', ...caps].map((capability) => ({ capability, state: true }));
  for (const side of ['source', 'destination'] as const) {
    await o.qmp(side).execute('migrate-set-capabilities', { capabilities });
    await o.qmp(side).execute('migrate-set-parameters', params);
  }
}

async function startPostcopy(o: Orchestrator, ep: LinkEndpoints): Promise<void> {
  await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
  await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
  await o.qmp('source').execute('migrate-start-postcopy');
  await until('postcopy-active on the destination', async () => (await status(o, 'destination')).status === 'postcopy-active');
}

async function recoverAndFinish(o: Orchestrator, ep: LinkEndpoints): Promise<PagesInfo> {
  await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
  await o.qmp('source').execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
  await until('completed', async () => (await status(o, 'source')).status === 'completed' && (await status(o, 'destination')).status === 'completed', 60_000);
  return o.qmp('destination').execute<PagesInfo>('x-query-pages');
}

describe('x-stall-timeout', () => {
  it('pauses the destination by itself on a silent blackhole, and the migration still completes', async () => {
    const { o, ep } = await start();
    await setup(o, [], { 'max-postcopy-bandwidth': 4 * MiB, 'x-stall-timeout': 800 });
    await startPostcopy(o, ep);
    await o.link!.apply({ kind: 'blackhole' });
    await until('the destination to notice the stall', async () => (await status(o, 'destination')).status === 'postcopy-paused');
    expect((await status(o, 'destination'))['error-desc']).toMatch(/x-stall-timeout/);
    // Through the relay the source's bytes are accepted and dropped, so it may not stall itself:
    // the operator pauses it, as in the blackhole lab.
    if ((await status(o, 'source')).status !== 'postcopy-paused') await o.qmp('source').executeOob('migrate-pause');
    await o.link!.restore();
    const pages = await recoverAndFinish(o, ep);
    expect(pages.verified).toBe(true);
    expect(pages.recoveries).toBe(1);
  });

  it('is off by default: a blackholed destination stays postcopy-active', async () => {
    const { o, ep } = await start();
    await setup(o, [], { 'max-postcopy-bandwidth': 4 * MiB });
    await startPostcopy(o, ep);
    await o.link!.apply({ kind: 'blackhole' });
    // Let what was already past the relay (in socket buffers) arrive first.
    await new Promise((r) => setTimeout(r, 700));
    const before = (await o.qmp('destination').execute<PagesInfo>('x-query-pages')).received;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await status(o, 'destination')).status).toBe('postcopy-active');
    expect((await o.qmp('destination').execute<PagesInfo>('x-query-pages')).received).toBe(before);
  });
});

describe('postcopy-preempt', () => {
  it('serves requested pages on its own channel and survives a cut and a recovery', async () => {
    const { o, ep } = await start();
    await setup(o, ['postcopy-preempt'], { 'max-postcopy-bandwidth': 4 * MiB });
    await startPostcopy(o, ep);
    await until('faults served', async () => (await o.qmp('destination').execute<PagesInfo>('x-query-pages'))['fault-latency-us'].count > 5);
    // Two connections through the relay: the main channel and the preempt channel.
    expect((await o.link!.snapshot()).connections).toBe(2);
    await o.link!.apply({ kind: 'cut' });
    await until('both paused', async () => (await status(o, 'source')).status === 'postcopy-paused' && (await status(o, 'destination')).status === 'postcopy-paused');
    await o.link!.restore();
    const pages = await recoverAndFinish(o, ep);
    expect(pages.verified).toBe(true);
    expect(pages.recoveries).toBe(1);
  });

  it('is refused without postcopy-ram, with QEMU-style wording', async () => {
    const { o } = await start();
    await expect(
      o.qmp('source').execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-preempt', state: true }] }),
    ).rejects.toThrow(/requires postcopy-ram/);
  });
});
