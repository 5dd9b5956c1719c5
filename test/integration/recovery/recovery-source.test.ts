/**
 * The recovery file end to end with real processes through the relay: postcopy, the link
 * cut, the source writes its file (on-failure) and is killed, a recovery source started from
 * the file takes the destination's reconnection like a source, and the migration completes
 * verified. With a window smaller than the bytes in flight, the recovery source refuses before
 * resuming and names the missing pages; the destination stays paused and recoverable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, tcpUri } from '../../../src/driver/orchestrator.js';
import { RelayLink } from '../../../src/link/relay.js';
import { QmpClient } from '../../../src/qmp/client.js';
import type { LinkEndpoints, PagesInfo, Side } from '../../../src/types.js';
import { CLI_BIN, ensureBuilt, ROOT, tempDir, waitFor } from '../../helpers/sim.js';

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
async function cutWithFile(o: Orchestrator, ep: LinkEndpoints, windowBytes: number): Promise<{ file: string; digest: string }> {
  const caps = ['postcopy-ram', 'return-path', 'events'].map((capability) => ({ capability, state: true }));
  for (const side of ['source', 'destination'] as const) await o.qmp(side).execute('migrate-set-capabilities', { capabilities: caps });
  await o.qmp('source').execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-recovery-file', state: true }] });
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
  expect(rf).toMatchObject({ mode: 'on-failure', 'window-bytes': windowBytes });
  expect(rf['held-pages']).toBe((rf['unsent-pages'] as number) + (rf['window-pages'] as number));
  await o.killVm('source');
  await o.link!.restore();
  return { file: rf.file as string, digest: rf.digest as string };
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
    expect(JSON.parse(inspect.stdout)).toMatchObject({ ok: true, digest, 'page-count': 8192 });
    const rs = await recoverySource(file, digest);
    expect(await rs.execute('query-migrate')).toMatchObject({ status: 'postcopy-paused' });
    await o.qmp('destination').execute('migrate-recover', { uri: tcpUri(ep.recover.listen) });
    await rs.execute('migrate', { uri: tcpUri(ep.recover.connect), resume: true });
    await waitFor(async () => (await rs.execute<Q>('query-migrate')).status === 'completed' && (await q(o, 'destination')).status === 'completed', 'completed', 60_000);
    const pages = await o.qmp('destination').execute<PagesInfo>('x-query-pages');
    expect(pages.verified).toBe(true);
    expect(pages.recoveries).toBe(1);
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
    expect(rq['error-desc']).toMatch(/the destination lacks (\d+) pages? the recovery file does not hold \(\d+/);
    const info = rq['x-recovery-source'] as { 'missing-pages': number; 'missing-first': number[]; 'held-pages': number };
    expect(info['missing-pages']).toBeGreaterThan(0);
    expect(info['missing-first'].length).toBe(Math.min(16, info['missing-pages']));
    // Never resumed: no page was served and the destination is paused again, still recoverable.
    await waitFor(async () => (await q(o, 'destination')).status === 'postcopy-paused', 'destination paused again');
    expect((await o.qmp('destination').execute<PagesInfo>('x-query-pages')).recoveries).toBe(0);
  }, 120_000);
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
