/**
 * `--emulate`: two sim VM processes behave as the named QEMU version, as measured on QEMU
 * 7.2.22 and 10.0.2 (same scenario driven over QMP against both; see src/sim/versions.ts):
 * the state sequence of each side through a postcopy switchover, a cut and a recovery, the
 * MIGRATION and MIGRATION_PASS events, the greeting, and the capability list.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, freePort, jsonLines, runCli, setCaps, startVm, tempDir, waitFor, type SimVmProcess } from '../../helpers/sim.js';

let dir: string;
const started: SimVmProcess[] = [];
const servers: net.Server[] = [];

beforeAll(async () => {
  await ensureBuilt();
  dir = tempDir();
}, 240_000);
afterEach(async () => {
  await Promise.all(started.splice(0).map((vm) => vm.stop()));
  for (const s of servers.splice(0)) s.close();
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function pair(emulate: string): Promise<{ src: SimVmProcess; dst: SimVmProcess }> {
  const [src, dst] = await Promise.all([
    startVm({ role: 'source', dir, memory: '4M', emulate }),
    startVm({ role: 'destination', dir, memory: '4M', emulate }),
  ]);
  started.push(src, dst);
  return { src, dst };
}

/** A TCP relay whose connections the test can cut (RST both ends), as a pulled link would. */
async function relay(to: number): Promise<{ port: number; cut(): void }> {
  const socks: net.Socket[] = [];
  const server = net.createServer((c) => {
    const u = net.connect({ host: '127.0.0.1', port: to });
    for (const s of [c, u]) s.on('error', () => {});
    c.pipe(u);
    u.pipe(c);
    socks.push(c, u);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  return { port: (server.address() as net.AddressInfo).port, cut: () => socks.splice(0).forEach((s) => s.resetAndDestroy()) };
}

const until = (vm: SimVmProcess, status: string) => waitFor(async () => (await vm.status()) === status, `${vm.role} ${status}`, 30_000);

const SEEN: Record<string, { source: string[]; destination: string[] }> = {
  // QEMU 7.2.22: no device, no postcopy-recover-setup; the destination's migrate-recover sends
  // a MIGRATION setup event without entering setup.
  '7.2': {
    source: ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed'],
    destination: ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'setup', 'postcopy-recover', 'postcopy-active', 'completed'],
  },
  // QEMU 10.0.2: device between active and postcopy-active; postcopy-recover-setup on resume.
  '10.0': {
    source: ['setup', 'active', 'device', 'postcopy-active', 'postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover', 'postcopy-active', 'completed'],
    destination: ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed'],
  },
};

describe.each(['7.2', '10.0'])('--emulate %s', (v) => {
  it(`greets as QEMU ${v} and lists that version's capabilities`, async () => {
    const { src } = await pair(v);
    const ver = (src.qmp.greeting as { QMP: { version: { qemu: { major: number; minor: number } } } }).QMP.version.qemu;
    expect(`${ver.major}.${ver.minor}`).toBe(v);
    const caps = (await src.exec<Array<{ capability: string }>>('query-migrate-capabilities')).map((c) => c.capability);
    expect(caps.includes('switchover-ack')).toBe(v === '10.0');
    expect(caps.includes('block')).toBe(v === '7.2');
    await expect(src.exec('migrate-set-capabilities', { capabilities: [{ capability: 'xbzrle', state: true }] })).rejects.toThrow(
      `Capability 'xbzrle' exists in QEMU ${v} but the sim does not model it`,
    );
    const params = await src.exec<Record<string, unknown>>('query-migrate-parameters');
    expect('block-incremental' in params).toBe(v === '7.2');
    expect(params['x-stall-timeout']).toBe(0);
  }, 30_000);

  it('switchover, a cut and a recovery pass through the states and events QEMU shows', async () => {
    const { src, dst } = await pair(v);
    for (const vm of [src, dst]) await setCaps(vm, { events: true, 'postcopy-ram': true, 'return-path': true });
    const port = await freePort();
    const link = await relay(port);
    await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    // 7.2 reports no status until the source connects; 10.0 reports setup.
    expect(await dst.status()).toBe(v === '7.2' ? 'none' : 'setup');
    await src.exec('migrate-set-parameters', { 'max-bandwidth': 1_000_000, 'max-postcopy-bandwidth': 100_000 });
    await src.exec('migrate', { uri: `tcp:127.0.0.1:${link.port}` });
    await until(src, 'active');
    await src.exec('migrate-start-postcopy');
    await until(dst, 'postcopy-active');
    link.cut();
    await until(src, 'postcopy-paused');
    await until(dst, 'postcopy-paused');
    const port2 = await freePort();
    await dst.exec('migrate-recover', { uri: `tcp:127.0.0.1:${port2}` });
    await src.exec('migrate-set-parameters', { 'max-postcopy-bandwidth': 0 });
    await src.exec('migrate', { uri: `tcp:127.0.0.1:${port2}`, resume: true });
    await until(src, 'completed');
    await until(dst, 'completed');
    expect(src.statuses).toEqual(SEEN[v].source);
    expect(dst.statuses).toEqual(SEEN[v].destination);

    // MIGRATION_PASS: the source's, one per dirty sync, numbered from 1, pass 1 before active.
    const passes = src.events.filter((e) => e.event === 'MIGRATION_PASS').map((e) => e.data?.pass);
    expect(passes.length).toBeGreaterThanOrEqual(2);
    expect(passes).toEqual(passes.map((_, i) => i + 1));
    const names = src.events.map((e) => (e.event === 'MIGRATION' ? `MIGRATION ${String(e.data?.status)}` : e.event));
    expect(names.indexOf('MIGRATION_PASS')).toBeLessThan(names.indexOf('MIGRATION active'));
    expect(dst.events.some((e) => e.event === 'MIGRATION_PASS')).toBe(false);
    const q = await src.exec<{ ram: { 'dirty-sync-count': number } }>('query-migrate');
    expect(q.ram['dirty-sync-count']).toBe(passes.length);
  }, 90_000);

  it('precopy completes through device on 10.0 only', async () => {
    const { src, dst } = await pair(v);
    for (const vm of [src, dst]) await setCaps(vm, { events: true });
    const port = await freePort();
    await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    await src.exec('migrate', { uri: `tcp:127.0.0.1:${port}` });
    await until(src, 'completed');
    expect(src.statuses).toEqual(v === '10.0' ? ['setup', 'active', 'device', 'completed'] : ['setup', 'active', 'completed']);
  }, 60_000);

  it(`the destination's listen sends MIGRATION setup ${v === '7.2' ? 'even without' : 'only with'} the events capability`, async () => {
    const { dst } = await pair(v);
    await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${await freePort()}` });
    await waitFor(async () => (await dst.status()) !== undefined, 'a query-migrate answer');
    // A query after the listen orders the events: anything sent by then has arrived.
    expect(dst.statuses).toEqual(v === '7.2' ? ['setup'] : []);
  }, 30_000);
});

/** The source's state changes in a drill's JSON lines, as "from->to". */
function sourceStates(lines: Array<Record<string, unknown>>): string[] {
  return lines
    .filter((l) => l.kind === 'state' && l.side === 'source')
    .map((l) => `${(l.data as { from?: string }).from}->${(l.data as { to?: string }).to}`);
}

describe('a failure during the recovery handshake (qemu-recover-hang)', () => {
  it('emulating 7.2: the source stays in postcopy-recover and the destination dies by SIGSEGV, the failure the lab expects (exit 1)', { timeout: 120_000 }, async () => {
    const r = await runCli(['drill', 'qemu-recover-hang', '--emulate', '7.2', '--json', '--no-record'], dir, 100_000);
    expect(r.code).toBe(1);
    const lines = jsonLines(r.stdout);
    const end = lines.find((l) => l.type === 'summary') as { ok?: boolean; failure?: { message?: string }; knownBug?: string; pagesReceived?: number };
    expect(end.ok).toBe(false);
    expect(end.failure?.message).toMatch(/killed by SIGSEGV/);
    expect(end.knownBug).toMatch(/^QEMU 7\.2: the destination crashes \(SIGSEGV\)/);
    // The dead destination's last counters, not zeros: it had received the pages before the cut.
    expect(end.pagesReceived).toBeGreaterThan(0);
    expect(end.failure?.message).toMatch(/\. This is the failure the lab expects on QEMU 7\.2/);
    // The source never left postcopy-recover (no way back to postcopy-paused before 8.2).
    const src = sourceStates(lines);
    expect(src.at(-1)).toBe('postcopy-paused->postcopy-recover');
  });

  it('emulating 10.0: both sides fall back to postcopy-paused and a second recovery completes (exit 0)', { timeout: 120_000 }, async () => {
    const r = await runCli(['drill', 'qemu-recover-hang', '--emulate', '10.0', '--json', '--no-record'], dir, 100_000);
    expect(r.code).toBe(0);
    expect(sourceStates(jsonLines(r.stdout))).toContain('postcopy-recover->postcopy-paused');
  });
});
