/**
 * The recovery file end to end with real processes through the relay: postcopy, the link
 * cut, the source writes its file (on-failure) and is killed, a recovery source started from
 * the file takes the destination's reconnection like a source, and the migration completes
 * verified, the destination counting the pages that came from the file. With a window smaller
 * than the bytes in flight, the recovery source refuses before resuming, naming the missing
 * pages, the bytes in flight and the window that would have been enough; the destination stays
 * paused and recoverable. Walk from a file; continuous mode, killed after its file is complete
 * (completes) and before (refused: the file was never completed).
 */
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, tcpUri } from '../../../src/driver/orchestrator.js';
import { RelayLink } from '../../../src/link/relay.js';
import { QmpClient } from '../../../src/qmp/client.js';
import type { LinkEndpoints, PagesInfo, Side } from '../../../src/types.js';
import { CLI_BIN, ensureBuilt, ROOT, tempDir, waitFor } from '../../helpers/sim.js';
import { HEADER_BYTES, recordBytes } from '../../../src/recovery/format.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

type Q = Record<string, unknown> & { status?: string; 'error-desc'?: string };

async function start(): Promise<{ o: Orchestrator; ep: LinkEndpoints }> {
  await ensureBuilt();
  const o = new Orchestrator({
    guest: { memoryBytes: 32 * MiB, pageSize: 4096, vcpus: 2, workload: 'random', dirtyRate: 1000, readRate: 5000, seed: 11 },
    makeLink: (dir) => new RelayLink({ runtimeDir: dir }),
    onEvent: () => {},
  });
  cleanups.push(() => o.stop());
  return { o, ep: await o.start() };
}

const q = (o: Orchestrator, side: Side) => o.qmp(side).execute<Q>('query-migrate');

/** Postcopy with a slow push and latency on the link (bytes in flight), then a cut; the source writes its file. */
async function cutWithFile(o: Orchestrator, ep: LinkEndpoints, windowBytes: number, mode: 'on-failure' | 'continuous' = 'on-failure'): Promise<{ file: string; digest: string }> {
  const caps = ['postcopy-ram', 'return-path', 'events'].map((capability) => ({ capability, state: true }));
  for (const side of ['source', 'destination'] as const) await o.qmp(side).execute('migrate-set-capabilities', { capabilities: caps });
  const cap = mode === 'continuous' ? 'x-recovery-file-continuous' : 'x-recovery-file';
  await o.qmp('source').execute('migrate-set-capabilities', { capabilities: [{ capability: cap, state: true }] });
  await o.qmp('source').execute('migrate-set-parameters', { 'max-postcopy-bandwidth': 4 * MiB, 'x-recovery-file-window': windowBytes });
  await o.link!.apply({ kind: 'latency', ms: 400 });
  await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
  await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
  await o.qmp('source').execute('migrate-start-postcopy');
  await waitFor(async () => (await q(o, 'destination')).status === 'postcopy-active', 'postcopy-active', 30_000);
  await waitFor(async () => (await o.qmp('destination').execute<PagesInfo>('x-query-pages')).received > 500, 'pages arriving');
  await o.link!.apply({ kind: 'cut' });
  await waitFor(async () => (await q(o, 'source')).status === 'postcopy-paused' && (await q(o, 'destination')).status === 'postcopy-paused', 'both paused', 30_000);
  const rf = await waitFor(async () => {
    const r = (await q(o, 'source'))['x-recovery-file'] as Record<string, unknown> | undefined;
    return r?.state === 'written' ? r : null;
  }, 'the recovery file written');
  // Both modes report the same figures: what was written, what it cost, the size against the minimum known.
  for (const k of ['bytes-written', 'write-ms', 'elapsed-ms', 'write-mbps', 'file-bytes', 'minimum-bytes-known', 'size-vs-minimum', 'stream-bytes']) expect(rf[k], k).toEqual(expect.any(Number));
  expect(rf['size-vs-minimum'] as number).toBeGreaterThanOrEqual(1);
  if (mode === 'on-failure') {
    expect(rf).toMatchObject({ mode, 'window-bytes': windowBytes });
    expect(rf['held-pages']).toBe((rf['unsent-pages'] as number) + (rf['window-pages'] as number));
    expect(rf['stream-bytes'] as number).toBeGreaterThan(0);
  } else {
    // Written at switchover, before the failure: every page, whatever is in flight later.
    expect(rf).toMatchObject({ mode, 'held-pages': 8192, 'stream-bytes': 0 });
  }
  await o.killVm('source');
  await o.link!.restore();
  return { file: rf.file as string, digest: rf.digest as string };
}

/** The destination recovers from `rs`; resolves with both sides' final query-migrate. */
async function recoverFrom(o: Orchestrator, ep: LinkEndpoints, rs: QmpClient): Promise<'completed' | Q> {
  await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
  await rs.execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
  return waitFor(async () => {
    const r = await rs.execute<Q>('query-migrate');
    if (r.status === 'completed' && (await q(o, 'destination')).status === 'completed') return 'completed' as const;
    return r.status === 'postcopy-paused' && r['error-desc']?.includes('recovery cannot be complete') ? r : null;
  }, 'completed or refused', 90_000);
}

async function recoverySource(file: string, digest: string): Promise<QmpClient> {
  const sock = path.join(tempDir('recsrc-'), 'rs.qmp');
  const proc = execa(process.execPath, [CLI_BIN, 'recovery-source', file, '--qmp', sock, '--expect-digest', digest], { cwd: ROOT, stdin: 'pipe', stderr: 'pipe', stdout: 'ignore', reject: false });
  cleanups.push(async () => {
    proc.kill('SIGKILL');
    await proc;
  });
  const qmp = await QmpClient.connect(sock, { retryUntilMs: 15_000, timeoutMs: 15_000 });
  cleanups.push(async () => qmp.close());
  return qmp;
}

describe('recovery file and recovery source (sim, relay)', () => {
  it('the source is killed after writing its file; the recovery source resumes the destination and it completes verified', async () => {
    const { o, ep } = await start();
    const { file, digest } = await cutWithFile(o, ep, 64 * MiB);
    const inspect = await execa(process.execPath, [CLI_BIN, 'recovery-file', 'inspect', file, '--json'], { cwd: ROOT, reject: false });
    expect(inspect.exitCode).toBe(0);
    const report = JSON.parse(inspect.stdout);
    expect(report).toMatchObject({ ok: true, version: 2, digest, 'page-count': 8192 });
    // The stream at the failure, and how much in flight the file survives: at least its window (the 64 MiB window covers the whole stream here).
    expect(report['stream-bytes']).toBeGreaterThan(0);
    expect(report['covers-in-flight-bytes']).toBe(report['stream-bytes']);
    // A corrupt copy (one bit of one record) is refused whole before anything listens: no page of it placed.
    const bad = path.join(tempDir('recbad-'), 'bad.recovery');
    const bytes = fs.readFileSync(file);
    const at = HEADER_BYTES + 3 * recordBytes(4096) + 500;
    bytes[at] ^= 1;
    fs.writeFileSync(bad, bytes);
    const before = (await o.qmp('destination').execute<PagesInfo>('x-query-pages')).received;
    const refused = await execa(process.execPath, [CLI_BIN, 'recovery-source', bad, '--qmp', path.join(tempDir('recsrc-'), 'rs.qmp')], { cwd: ROOT, reject: false, timeout: 30_000 });
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toMatch(/record 3 \(byte \d+\): checksum mismatch/);
    expect(await o.qmp('destination').execute<PagesInfo>('x-query-pages')).toMatchObject({ received: before, recoveries: 0 });
    const rs = await recoverySource(file, digest);
    expect(await rs.execute('query-migrate')).toMatchObject({ status: 'postcopy-paused' });
    await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    await rs.execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
    await waitFor(async () => (await rs.execute<Q>('query-migrate')).status === 'completed' && (await q(o, 'destination')).status === 'completed', 'completed', 60_000);
    const pages = await o.qmp('destination').execute<PagesInfo>('x-query-pages', { 'map-cells': 64 });
    expect(pages.verified).toBe(true);
    expect(pages.recoveries).toBe(1);
    // The destination knows which pages the file gave it (the recovery source's resume header says so).
    const served = (await rs.execute<Q>('query-migrate'))['x-recovery-source'] as { 'served-pages': number };
    expect(pages['from-file']).toBeGreaterThan(0);
    expect(pages['from-file']).toBeLessThanOrEqual(served['served-pages']);
    expect(pages.map).toMatch(/^[RF]+$/);
    expect(pages.map).toContain('F');
    const rq = await rs.execute<Q>('query-migrate');
    expect(rq['x-verified']).toBe(true);
    expect(rq['x-recovery-source']).toMatchObject({ 'missing-pages': 0 });
    expect((rq['x-recovery-source'] as { 'served-pages': number })['served-pages']).toBeGreaterThan(0);
  }, 120_000);

  it('a window smaller than the bytes in flight: the recovery source refuses before resuming, naming the missing pages', async () => {
    const { o, ep } = await start();
    const { file, digest } = await cutWithFile(o, ep, 0);
    const rs = await recoverySource(file, digest);
    await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    await rs.execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
    const rq = await waitFor(async () => {
      const r = await rs.execute<Q>('query-migrate');
      return r.status === 'postcopy-paused' && r['error-desc']?.includes('recovery cannot be complete') ? r : null;
    }, 'the refusal', 30_000);
    const info = rq['x-recovery-source'] as Record<string, number> & { 'missing-first': number[] };
    expect(info['missing-pages']).toBeGreaterThan(0);
    expect(info['missing-first'].length).toBe(Math.min(16, info['missing-pages']));
    // Measured: the bytes in flight at the failure, and the window that would have been enough.
    expect(info['in-flight-bytes']).toBeGreaterThan(0);
    expect(info['window-needed-bytes']).toBe(info['in-flight-bytes']);
    expect(info['lost-in-flight-pages']).toBeGreaterThanOrEqual(info['missing-pages']);
    expect(rq['error-desc']).toBe(
      `recovery cannot be complete: the destination lacks ${info['missing-pages']} page${info['missing-pages'] === 1 ? '' : 's'} the recovery file ${file} does not hold ` +
        `(${info['missing-first'].join(', ')}${info['missing-pages'] > 16 ? ', …' : ''}); ${info['in-flight-bytes']} bytes were in flight at the failure ` +
        `(the stream had ${info['stream-bytes']} bytes; the earliest page lost in flight started ${info['in-flight-bytes']} bytes before its end); ` +
        `the file kept a window of 0 bytes, a window of ${info['window-needed-bytes']} bytes would have been enough`,
    );
    // Never resumed: no page was served and the destination is paused again, still recoverable.
    await waitFor(async () => (await q(o, 'destination')).status === 'postcopy-paused', 'destination paused again');
    expect((await o.qmp('destination').execute<PagesInfo>('x-query-pages')).recoveries).toBe(0);
  }, 120_000);
});

describe('recovery file: strategies, modes, windows (sim, relay)', () => {
  it('walk strategy from a file: the recovery source serves what the walker asks, and it completes verified', async () => {
    const { o, ep } = await start();
    const { file, digest } = await cutWithFile(o, ep, 64 * MiB);
    const rs = await recoverySource(file, digest);
    await rs.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-recovery-walk', state: true }] });
    expect(await recoverFrom(o, ep, rs)).toBe('completed');
    const pages = await o.qmp('destination').execute<PagesInfo>('x-query-pages');
    expect(pages).toMatchObject({ verified: true, recoveries: 1 });
    expect(pages.walker.done).toBe(true);
    expect(pages['from-file']).toBeGreaterThan(0);
  }, 120_000);

  it('continuous mode: the source is killed after its file is complete; recovery from it completes verified', async () => {
    const { o, ep } = await start();
    const { file, digest } = await cutWithFile(o, ep, 0, 'continuous');
    const rs = await recoverySource(file, digest);
    expect(await recoverFrom(o, ep, rs)).toBe('completed');
    expect(await o.qmp('destination').execute<PagesInfo>('x-query-pages')).toMatchObject({ verified: true, recoveries: 1 });
    // Nothing was measured in flight (the file was written before the failure) and nothing was missing.
    expect((await rs.execute<Q>('query-migrate'))['x-recovery-source']).toMatchObject({ 'missing-pages': 0, 'in-flight-bytes': null });
  }, 120_000);

  it('continuous mode: the source killed before its file is complete; the recovery source refuses, saying the file was never completed', async () => {
    const { o, ep } = await start();
    const caps = ['postcopy-ram', 'return-path', 'x-recovery-file-continuous'].map((capability) => ({ capability, state: true }));
    await o.qmp('source').execute('migrate-set-capabilities', { capabilities: caps });
    await o.qmp('destination').execute('migrate-set-capabilities', { capabilities: caps.slice(0, 2) });
    // Precopy slow enough that the switchover (where the file is completed) never comes.
    await o.qmp('source').execute('migrate-set-parameters', { 'max-bandwidth': 1 * MiB });
    await o.qmp('destination').execute('migrate-incoming', { uri: tcpUri(ep.incoming.listen) });
    await o.qmp('source').execute('migrate', { uri: tcpUri(ep.incoming.connect) });
    const rf = await waitFor(async () => {
      const r = (await q(o, 'source'))['x-recovery-file'] as Record<string, unknown> | undefined;
      return r && (r['bytes-written'] as number) > 64 * 1024 ? r : null;
    }, 'the spill under way');
    expect(rf.state).toBe('spilling');
    await o.killVm('source');
    const r = await execa(process.execPath, [CLI_BIN, 'recovery-source', rf.file as string, '--qmp', path.join(tempDir('recsrc-'), 'rs.qmp')], { cwd: ROOT, reject: false, timeout: 30_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/recovery file .*\.recovery was never completed: .*\.tmp-\d+ is the part written before its writer stopped/);
  }, 120_000);

  it('property (real processes): recovery completes exactly when the window reaches the bytes in flight the recovery source measures', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 * MiB }), async (windowBytes) => {
        const { o, ep } = await start();
        const { file, digest } = await cutWithFile(o, ep, windowBytes);
        const rs = await recoverySource(file, digest);
        const outcome = await recoverFrom(o, ep, rs);
        const info = (await rs.execute<Q>('query-migrate'))['x-recovery-source'] as Record<string, number>;
        expect(info['in-flight-bytes']).toEqual(expect.any(Number));
        expect(outcome === 'completed').toBe(windowBytes >= info['window-needed-bytes']);
        if (outcome === 'completed') expect((await o.qmp('destination').execute<PagesInfo>('x-query-pages')).verified).toBe(true);
        else expect(info['missing-pages']).toBeGreaterThan(0);
        for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
      }),
      { numRuns: 3 },
    );
  }, 400_000);
});

describe('recovery-file inspect', () => {
  it('refuses a foreign file (exit 1, says why)', async () => {
    await ensureBuilt();
    const file = path.join(tempDir('recinsp-'), 'x.recovery');
    fs.writeFileSync(file, Buffer.from('not a recovery file at all'));
    const r = await execa(process.execPath, [CLI_BIN, 'recovery-file', 'inspect', file], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/REFUSED\n\s+recovery file .*: not a postcopy-lab recovery file/);
  });
});
