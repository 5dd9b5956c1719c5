/**
 * The kernel link against the real kernel: a TCP sink in the destination namespace, a client in
 * the source namespace, and for each fault the TCP-level effect it must have. Needs root; the
 * netem cases run or skip according to what the probe finds on this kernel.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KernelApplyError, KernelUnsupportedError } from '../../../src/kernel/errors.js';
import { KernelLink } from '../../../src/kernel/kernel-link.js';
import { probeKernel } from '../../../src/kernel/probe.js';
import type { LinkEndpoints } from '../../../src/types.js';
import { NsProc, namespacesNow, rootSkipReason, sleep, uniqueRunId } from './helpers.js';

const skipReason = rootSkipReason();
const probe = skipReason ? null : await probeKernel({ leftovers: false });
const netemOk = probe?.qdiscs.netem.ok === true;
const netemReason = probe ? `netem missing on this kernel: ${probe.qdiscs.netem.detail}` : skipReason;
const title = (t: string, reason: string | null) => (reason ? `${t} (skipped: ${reason})` : t);

describe.skipIf(!!skipReason)(title('KernelLink on the real kernel', skipReason), () => {
  const runId = uniqueRunId('kl');
  const link = new KernelLink({ runId, migrationPort: 5444, recoverPort: 5445 });
  let ep: LinkEndpoints;
  let server: NsProc;
  const clients: NsProc[] = [];

  const client = async () => {
    const c = new NsProc(link.namespaces.source, 'tcp-client.mjs', [ep.incoming.connect.host, String(ep.incoming.connect.port)]);
    clients.push(c);
    await c.waitFor((e) => e.event === 'connected', 5000);
    return c;
  };
  /** Send n bytes and wait until the server has them all. */
  const sendAndArrive = async (c: NsProc, n: number, timeoutMs = 5000) => {
    const target = server.total + n;
    const t0 = Date.now();
    c.send(`send ${n}`);
    await server.waitFor((e) => e.event === 'data' && (e.total ?? 0) >= target, timeoutMs);
    return Date.now() - t0;
  };

  beforeAll(async () => {
    ep = await link.start();
    server = new NsProc(link.namespaces.destination, 'tcp-server.mjs', [ep.incoming.listen.host, String(ep.incoming.listen.port)]);
    await server.waitFor((e) => e.event === 'listening', 5000);
  });

  // One link serves every case: a case that fails midway must not leave its fault for the next.
  afterEach(async () => {
    await link?.restore().catch(() => {});
  });

  afterAll(async () => {
    for (const c of clients) await c.kill().catch(() => undefined);
    await server?.kill().catch(() => undefined);
    await link.stop();
    expect(namespacesNow().filter((n) => n.includes(runId))).toEqual([]);
  });

  it('starts two namespaces joined by a veth; listen == connect == the destination address', async () => {
    expect(ep.incoming.listen).toEqual({ host: '10.213.0.2', port: 5444 });
    expect(ep.incoming.connect).toEqual(ep.incoming.listen);
    expect(ep.recover.connect).toEqual({ host: '10.213.0.2', port: 5445 });
    expect(namespacesNow()).toEqual(expect.arrayContaining([`pcl-${runId}-src`, `pcl-${runId}-dst`]));
    expect(link.wrapCommand('destination', 'qemu-system-x86_64', ['-m', '1G'])).toEqual({
      file: 'ip',
      args: ['netns', 'exec', `pcl-${runId}-dst`, 'qemu-system-x86_64', '-m', '1G'],
    });
    const c = await client();
    await sendAndArrive(c, 1000);
    const snap = await link.snapshot({ fresh: true });
    expect(snap.up).toBe(true);
    expect(snap.connections).toBeGreaterThanOrEqual(1);
    expect(snap['source-to-destination'].bytesForwarded).toBeGreaterThan(1000);
  });

  it('cut (both): both ends hear of it at once, without sending; restore lets new connections through', async () => {
    const c = await client();
    await sendAndArrive(c, 100);
    const from = c.events.length;
    const t0 = Date.now();
    await link.apply({ kind: 'cut' });
    // The live sockets are aborted (ss -K): ECONNABORTED here, and the peer gets a reset.
    const err = await c.waitFor((e) => e.event === 'error', 3000, from);
    expect(['ECONNABORTED', 'ECONNRESET']).toContain(err.code);
    expect(Date.now() - t0).toBeLessThan(2000);
    await server.waitFor((e) => e.event === 'error' || e.event === 'close', 3000);
    // New connections are reset by the reject rule.
    const c2 = await client().catch(() => null);
    if (c2) {
      const from2 = c2.events.length;
      c2.send('send 100');
      expect((await c2.waitFor((e) => e.event === 'error', 3000, from2)).code).toMatch(/ECONNRESET|ECONNREFUSED/);
    }
    const snap = await link.snapshot({ fresh: true });
    expect(snap['source-to-destination'].state).toBe('cut');
    expect(snap['source-to-destination'].bytesDropped).toBeGreaterThan(0);
    await link.restore();
    await sendAndArrive(await client(), 100);
  });

  it('cut (source-to-destination only): the source side is reset, the other direction is untouched', async () => {
    const c = await client();
    const from = c.events.length;
    await link.apply({ kind: 'cut', direction: 'source-to-destination' });
    const snap = await link.snapshot({ fresh: true });
    expect(snap['source-to-destination'].state).toBe('cut');
    expect(snap['destination-to-source'].state).toBe('up');
    c.send('send 100');
    expect(['ECONNABORTED', 'ECONNRESET']).toContain((await c.waitFor((e) => e.event === 'error', 3000, from)).code);
    await link.restore();
  });

  it('blackhole: the connection stays open, nothing arrives; after restore the data flows', async () => {
    const c = await client();
    await sendAndArrive(c, 100);
    await link.apply({ kind: 'blackhole' });
    const before = server.total;
    const from = c.events.length;
    c.send('send 1000');
    await sleep(1500);
    expect(server.total).toBe(before);
    expect(c.events.slice(from).filter((e) => e.event === 'error' || e.event === 'close')).toEqual([]);
    const snap = await link.snapshot({ fresh: true });
    expect(snap['source-to-destination'].state).toBe('blackhole');
    expect(snap.up).toBe(false);
    expect(snap['source-to-destination'].bytesDropped).toBeGreaterThan(0);
    await link.restore();
    // TCP retransmits on its own backoff schedule: allow it several seconds.
    await server.waitFor((e) => e.event === 'data' && (e.total ?? 0) >= before + 1000, 15_000);
  });

  it('down: nothing arrives while the veth end is down; after restore the data flows', async () => {
    const c = await client();
    await link.apply({ kind: 'down', direction: 'source-to-destination' });
    const snap = await link.snapshot({ fresh: true });
    expect(snap['source-to-destination'].state).toBe('down');
    // veth: one end down takes the peer's carrier down, so the other direction is down too.
    expect(snap['destination-to-source'].state).toBe('down');
    const before = server.total;
    c.send('send 1000');
    await sleep(1500);
    expect(server.total).toBe(before);
    await link.restore();
    await server.waitFor((e) => e.event === 'data' && (e.total ?? 0) >= before + 1000, 15_000);
  });

  it('bandwidth: a 2 MiB transfer capped at 1 MiB/s takes far longer than unshaped', async () => {
    const c = await client();
    const MiB = 1024 * 1024;
    const unshaped = await sendAndArrive(c, 2 * MiB);
    await link.apply({ kind: 'bandwidth', direction: 'source-to-destination', bytesPerSec: MiB });
    expect((await link.snapshot({ fresh: true }))['source-to-destination'].rateBytesPerSec).toBe(MiB);
    const shaped = await sendAndArrive(c, 2 * MiB, 20_000);
    // Ideal: ~2 s. Loose bounds: the bucket and timer slack make it a little faster or slower.
    expect(shaped).toBeGreaterThan(1200);
    expect(shaped).toBeGreaterThan(unshaped * 3);
    // A new rate changes the tbf in place, then restore removes it.
    await link.apply({ kind: 'bandwidth', direction: 'source-to-destination', bytesPerSec: 4 * MiB });
    await link.restore();
    const after = await sendAndArrive(c, 2 * MiB);
    expect(after).toBeLessThan(shaped);
  });

  it.skipIf(netemOk)(title('latency and loss are refused with one sentence naming sch_netem when netem is missing', netemOk ? 'netem present' : null), async () => {
    const before = await link.snapshot({ fresh: true });
    const err = await link.apply({ kind: 'latency', ms: 50, jitterMs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelUnsupportedError);
    expect((err as Error).message).toMatch(/sch_netem/);
    expect((err as Error).message).toMatch(/--link relay/);
    await expect(link.apply({ kind: 'loss', percent: 5 })).rejects.toThrow(/sch_netem/);
    // Nothing changed, and zero latency (no netem needed) is still accepted.
    expect(await link.snapshot({ fresh: true })).toMatchObject({ 'source-to-destination': { latencyMs: 0, lossPercent: 0 } });
    expect(before['source-to-destination'].latencyMs).toBe(0);
    await link.apply({ kind: 'latency', ms: 0 });
  });

  it.skipIf(!netemOk)(title('latency: data arrives at least the delay later (netem)', netemOk ? null : netemReason), async () => {
    const c = await client();
    await link.apply({ kind: 'latency', direction: 'source-to-destination', ms: 150 });
    await link.apply({ kind: 'bandwidth', direction: 'source-to-destination', bytesPerSec: 4 * 1024 * 1024 });
    const dt = await sendAndArrive(c, 100);
    expect(dt).toBeGreaterThanOrEqual(140);
    await link.apply({ kind: 'loss', direction: 'source-to-destination', percent: 1 });
    expect((await link.snapshot({ fresh: true }))['source-to-destination']).toMatchObject({ latencyMs: 150, lossPercent: 1, rateBytesPerSec: 4 * 1024 * 1024 });
    await link.restore();
  });

  it('flap: blackhole and up in turns, then back to up on its own', async () => {
    await link.apply({ kind: 'flap', upMs: 150, downMs: 250, count: 2, mode: 'blackhole' });
    let snap = await link.snapshot();
    expect(snap.flapping).toBe(true);
    expect(snap['source-to-destination'].state).toBe('blackhole');
    const deadline = Date.now() + 5000;
    while ((snap = await link.snapshot()).flapping && Date.now() < deadline) await sleep(50);
    expect(snap.flapping).toBe(false);
    expect(snap.up).toBe(true);
    await sendAndArrive(await client(), 100);
  });

  it('a fault that fails midway is rolled back in the directions it had already changed', async () => {
    const dst = link.namespaces.destination;
    const src = link.namespaces.source;
    // Sabotage the destination's table so the second half of a both-direction blackhole fails.
    execFileSync('ip', ['netns', 'exec', dst, 'nft', 'delete', 'table', 'inet', 'pcl-link']);
    try {
      const err = await link.apply({ kind: 'blackhole' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelApplyError);
      const rules = execFileSync('ip', ['netns', 'exec', src, 'nft', 'list', 'chain', 'inet', 'pcl-link', 'egress'], { encoding: 'utf8' });
      expect(rules).not.toMatch(/drop/);
      const snap = await link.snapshot({ fresh: true });
      expect(snap['source-to-destination'].state).toBe('up');
      expect(snap['destination-to-source'].state).toBe('up');
      await sendAndArrive(await client(), 100);
    } finally {
      const script = 'add table inet pcl-link\nadd counter inet pcl-link dropped\nadd chain inet pcl-link egress { type filter hook output priority 0 ; policy accept ; }\n';
      execFileSync('ip', ['netns', 'exec', dst, 'nft', '-f', '-'], { input: script });
    }
  });

  it('refuses bad faults before touching anything', async () => {
    await expect(link.apply({ kind: 'bandwidth', bytesPerSec: -1 })).rejects.toThrow(/bandwidth bytesPerSec must be 0 \(no cap\) or from 1/);
    await expect(link.apply({ kind: 'latency', ms: -1 })).rejects.toThrow(/latency ms must be from 0 to 60000 milliseconds/);
    await expect(link.apply({ kind: 'loss', percent: 101 })).rejects.toThrow(/from 0 to 100/);
    expect((await link.snapshot({ fresh: true })).up).toBe(true);
  });

  it('bandwidth 0 lifts a cap (the TUI\'s unlimited-rate preset)', async () => {
    await link.apply({ kind: 'bandwidth', direction: 'source-to-destination', bytesPerSec: 1_000_000 });
    await link.apply({ kind: 'bandwidth', bytesPerSec: 0 });
    const snap = await link.snapshot({ fresh: true });
    expect(snap['source-to-destination'].rateBytesPerSec).toBe(0);
    const qdisc = execFileSync('tc', ['-n', link.namespaces.source, 'qdisc', 'show', 'dev', link.devices.source]).toString();
    expect(qdisc).not.toMatch(/tbf/);
  });
});

describe.skipIf(!!skipReason)(title('KernelLink lifecycle', skipReason), () => {
  it('stop() removes the namespaces and the owner marker, and can be called again', async () => {
    const runId = uniqueRunId('st');
    const link = new KernelLink({ runId, subnet: '10.214.7.0/29' });
    try {
      const ep = await link.start();
      expect(ep.incoming.listen.host).toBe('10.214.7.2');
    } finally {
      await link.stop();
      await link.stop();
    }
    expect(namespacesNow().filter((n) => n.includes(runId))).toEqual([]);
    await expect(link.start()).rejects.toThrow(/stopped/);
  });
});
