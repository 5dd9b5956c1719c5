/**
 * x-preempt-thread (src/sim/request-thread.ts): the source's preempt channel served by a thread
 * of its own, the destination writing its page requests on that channel. Correctness only (the
 * latency is bench/fault-tail.ts's): every page right, a cut and a recovery with the thread,
 * x-preempt-thread-fifo refused (no chrt) logged while the migration goes on, and the
 * destination taking a preempt channel whose header beat the main channel's (the thread
 * connects right behind it) and asking for pages on it. About 6 s in all.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, tcpUri } from '../../../src/driver/orchestrator.js';
import { RelayLink } from '../../../src/link/relay.js';
import type { LinkEndpoints, MigrationStatus, PagesInfo, Side } from '../../../src/types.js';
import type { RequestThreadInfo } from '../../../src/sim/request-thread.js';
import { encodeEmpty, encodeHeader, encodeJson, encodeRanges, MIG_CMD, pageFrameBytes, ReturnPathDecoder, writePageFrameHeader, type ReturnMessage } from '../../../src/sim/wire.js';
import { writePage } from '../../../src/sim/content.js';
import { ensureBuilt, freePort, setCaps, startVm, tempDir, waitFor, type SimVmProcess } from '../../helpers/sim.js';

const MiB = 1024 * 1024;
let orch: Orchestrator | null = null;
let dst: SimVmProcess | null = null;
const PATH = process.env.PATH;
const sockets: net.Socket[] = [];

afterEach(async () => {
  process.env.PATH = PATH;
  for (const s of sockets.splice(0)) s.destroy();
  await dst?.stop();
  dst = null;
  await orch?.stop();
  orch = null;
});

async function start(log: string[]): Promise<{ o: Orchestrator; ep: LinkEndpoints }> {
  await ensureBuilt();
  const o = new Orchestrator({
    guest: { memoryBytes: 16 * MiB, pageSize: 4096, vcpus: 2, workload: 'random', dirtyRate: 1000, readRate: 20000, seed: 11 },
    makeLink: (dir) => new RelayLink({ runtimeDir: dir }),
    onEvent: (e) => {
      if ('text' in e && typeof e.text === 'string') log.push(e.text);
    },
  });
  orch = o;
  return { o, ep: await o.start() };
}

type Migrate = { status: MigrationStatus; 'x-preempt-thread'?: RequestThreadInfo };
const status = (o: Orchestrator, side: Side) => o.qmp(side).execute<Migrate>('query-migrate');

/** Capabilities on both VMs, a slow push (so faults are served by requests), postcopy started. */
async function startPostcopy(o: Orchestrator, ep: LinkEndpoints, caps: string[]): Promise<void> {
  const capabilities = ['postcopy-ram', 'return-path', 'events', 'postcopy-preempt', ...caps].map((capability) => ({ capability, state: true }));
  for (const side of ['source', 'destination'] as const) {
    await o.qmp(side).execute('migrate-set-capabilities', { capabilities });
    await o.qmp(side).execute('migrate-set-parameters', { 'max-bandwidth': 4 * MiB, 'max-postcopy-bandwidth': 2 * MiB });
  }
  await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
  await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
  // A second of precopy, its channel already up: the guest writes pages after the thread
  // connected, and what it serves must be their versions at switchover, not at connect.
  await new Promise((r) => setTimeout(r, 1000));
  expect((await status(o, 'source')).status).toBe('active');
  await o.qmp('source').execute('migrate-start-postcopy');
  // Served by the thread: it reports what it answered to the source's query-migrate.
  await waitFor(async () => ((await status(o, 'source'))['x-preempt-thread']?.served ?? 0) > 5, 'requests served by the request thread');
}

async function finish(o: Orchestrator): Promise<PagesInfo> {
  await o.qmp('source').execute('migrate-set-parameters', { 'max-postcopy-bandwidth': 0 });
  await waitFor(async () => (await status(o, 'source')).status === 'completed' && (await status(o, 'destination')).status === 'completed', 'both completed', 60_000);
  return o.qmp('destination').execute<PagesInfo>('x-query-pages');
}

describe('x-preempt-thread', () => {
  it('serves requests from its thread, survives a cut and a recovery, and every page verifies', async () => {
    const log: string[] = [];
    const { o, ep } = await start(log);
    await startPostcopy(o, ep, ['x-preempt-thread', 'x-preempt-thread-fifo']);
    // QEMU's two connections stay on the link, so its faults reach both.
    expect((await o.link!.snapshot()).connections).toBe(2);
    await o.link!.apply({ kind: 'cut' });
    await waitFor(async () => (await status(o, 'source')).status === 'postcopy-paused' && (await status(o, 'destination')).status === 'postcopy-paused', 'both paused');
    const servedBefore = (await status(o, 'source'))['x-preempt-thread']!.served;
    await o.link!.restore();
    await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    await o.qmp('source').execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
    await waitFor(async () => (await status(o, 'source'))['x-preempt-thread']!.served > servedBefore, 'requests served again after the resume');
    const pages = await finish(o);
    expect(pages.verified).toBe(true);
    expect(pages.recoveries).toBe(1);
    // As root with chrt (this machine) it is fifo; elsewhere the refusal is reported.
    expect((await status(o, 'source'))['x-preempt-thread']!.priority).toMatch(/^(fifo|normal \(.+\))$/);
    expect(log.some((l) => l.includes('preempt channel up (x-preempt-thread)'))).toBe(true);
  });

  it('logs a refused x-preempt-thread-fifo (no chrt) and the migration goes on', async () => {
    // The VM processes inherit this PATH; node is started by its full path.
    process.env.PATH = '/nonexistent-postcopy-lab-test';
    const log: string[] = [];
    const { o, ep } = await start(log);
    await startPostcopy(o, ep, ['x-preempt-thread', 'x-preempt-thread-fifo']);
    const pages = await finish(o);
    expect(pages.verified).toBe(true);
    expect((await status(o, 'source'))['x-preempt-thread']!.priority).toMatch(/^normal \(chrt is not installed/);
    expect(log.some((l) => /x-preempt-thread-fifo: could not set SCHED_FIFO 1 on thread \d+: chrt is not installed/.test(l))).toBe(true);
  });
});

describe('x-preempt-thread, the destination side (a raw source)', () => {
  const PAGE = 4096;
  const PAGES = 256;

  /** A raw connection playing one of the source's channels, collecting what comes back on it. */
  async function channel(port: number): Promise<{ sock: net.Socket; received: ReturnMessage[] }> {
    const sock = net.connect({ host: '127.0.0.1', port });
    sockets.push(sock);
    const received: ReturnMessage[] = [];
    const decoder = new ReturnPathDecoder(PAGES, (m) => received.push(m));
    sock.on('data', (d: Buffer) => decoder.push(d));
    sock.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    return { sock, received };
  }

  it('takes a preempt channel whose header comes before the main channel, and asks for pages on it', async () => {
    await ensureBuilt();
    const dir = tempDir();
    try {
      dst = await startVm({ role: 'destination', dir, memory: '1M', readRate: 500, dirtyRate: 200 });
      await setCaps(dst, { events: true, 'postcopy-ram': true, 'return-path': true, 'postcopy-preempt': true });
      const port = await freePort();
      await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
      const layout = { pageSize: PAGE, pageCount: PAGES, preemptEnabled: true };
      // The preempt channel first: its header is read while no main channel exists.
      const preempt = await channel(port);
      preempt.sock.write(encodeHeader({ ...layout, resume: false, preemptChannel: true, requestsOnPreempt: true }));
      await new Promise((r) => setTimeout(r, 300));
      const main = await channel(port);
      main.sock.write(
        Buffer.concat([
          encodeHeader({ ...layout, resume: false, preemptChannel: false }),
          encodeEmpty(MIG_CMD.POSTCOPY_ADVISE),
          encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[0, PAGES]]),
          encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: [] }),
        ]),
      );
      await waitFor(async () => (await dst!.status()) === 'postcopy-active', 'postcopy-active');
      const vm = dst;
      await waitFor(() => preempt.received.some((m) => m.type === 'req-pages'), 'a page request on the preempt channel');
      // Answer on the preempt channel: the page is placed and the vCPU goes on.
      const req = preempt.received.find((m) => m.type === 'req-pages') as { start: number };
      const frame = Buffer.alloc(pageFrameBytes(PAGE));
      writePage(frame, writePageFrameHeader(frame, 0, req.start, 0, PAGE), req.start, 0, PAGE);
      preempt.sock.write(frame);
      await waitFor(async () => (await vm.pages()).received >= 1, 'the requested page placed');
      expect(main.received.filter((m) => m.type === 'req-pages')).toEqual([]);
      expect(await vm.status()).toBe('postcopy-active');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
