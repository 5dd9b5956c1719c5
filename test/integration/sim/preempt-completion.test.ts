/**
 * A postcopy-preempt migration completes on the source whichever of its two connections the
 * destination's close reaches first. The destination writes MIG_RP_MSG_SHUT on the main
 * channel's return path and then closes both channels; nothing orders two TCP connections, so
 * the source may see the preempt channel's EOF before the SHUT. It did, after a recovery with
 * latency on the link (labs/postcopy-preempt), and the source paused for good while the
 * destination had completed. Here the resumed connections go through a small proxy that holds
 * back only the main channel's return path, so the preempt channel's EOF always comes first.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, tcpUri } from '../../../src/driver/orchestrator.js';
import { RelayLink } from '../../../src/link/relay.js';
import type { HostPort, MigrationStatus, PagesInfo, Side } from '../../../src/types.js';
import { ensureBuilt, waitFor } from '../../helpers/sim.js';

const MiB = 1024 * 1024;
/** How long the proxy holds the main channel's return path: far longer than a local close takes. */
const HOLD_MS = 300;

let orch: Orchestrator | null = null;
let proxy: net.Server | null = null;
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  proxy = null;
  await orch?.stop();
  orch = null;
});

/**
 * Forwards to `target`. The first connection accepted is the main channel (the source opens the
 * preempt channel only after the resume handshake on it): its destination-to-source bytes and
 * its EOF are delayed by HOLD_MS, in order. Every later connection passes straight through.
 */
function holdMainReturnPath(target: HostPort): Promise<HostPort> {
  let accepted = 0;
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const hold = accepted++ === 0;
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    sockets.push(client, upstream);
    const later = (fn: () => void) => (hold ? setTimeout(fn, HOLD_MS) : fn());
    client.on('data', (b) => upstream.write(b));
    client.on('end', () => upstream.end());
    upstream.on('data', (b) => later(() => client.write(b)));
    upstream.on('end', () => later(() => client.end()));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => later(() => client.destroy()));
  });
  proxy = server;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port })));
}

async function status(o: Orchestrator, side: Side): Promise<{ status: MigrationStatus; 'error-desc'?: string }> {
  return o.qmp(side).execute('query-migrate');
}

describe('postcopy-preempt completion', () => {
  it('completes on the SHUT even when the preempt channel closes first, after a cut and a recovery', async () => {
    await ensureBuilt();
    const o = new Orchestrator({
      guest: { memoryBytes: 16 * MiB, pageSize: 4096, vcpus: 2, workload: 'random', dirtyRate: 1000, readRate: 4000, seed: 3 },
      makeLink: (dir) => new RelayLink({ runtimeDir: dir }),
      onEvent: () => {},
    });
    orch = o;
    const ep = await o.start();
    const capabilities = ['postcopy-ram', 'return-path', 'events', 'postcopy-preempt'].map((capability) => ({ capability, state: true }));
    for (const side of ['source', 'destination'] as const) {
      await o.qmp(side).execute('migrate-set-capabilities', { capabilities });
      await o.qmp(side).execute('migrate-set-parameters', { 'max-postcopy-bandwidth': 4 * MiB });
    }
    await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
    await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
    await o.qmp('source').execute('migrate-start-postcopy');
    await waitFor(async () => (await status(o, 'destination')).status === 'postcopy-active' && (await o.link!.snapshot()).connections === 2, 'both channels up');

    await o.link!.apply({ kind: 'cut' });
    await waitFor(async () => (await status(o, 'source')).status === 'postcopy-paused' && (await status(o, 'destination')).status === 'postcopy-paused', 'both paused');
    await o.link!.restore();

    await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    const via = await holdMainReturnPath(ep.recover.listen);
    await o.qmp('source').execute('migrate', { uri: tcpUri(via), resume: true });
    await waitFor(async () => (await status(o, 'destination')).status === 'completed', 'the destination to complete', 60_000);
    // The SHUT is at most HOLD_MS behind the preempt channel's EOF; a source that took the EOF
    // for a failure has paused by then and stays paused.
    await waitFor(async () => (await status(o, 'source')).status !== 'postcopy-active', 'the source to leave postcopy-active', 10_000);
    const src = await status(o, 'source');
    expect(src.status, src['error-desc']).toBe('completed');
    const pages = await o.qmp('destination').execute<PagesInfo>('x-query-pages');
    expect(pages.verified).toBe(true);
    expect(pages.recoveries).toBe(1);
  });
});
