/**
 * The QEMU backend's guest mapping and guest-work reading, against a scripted QMP client:
 * the lab's dirty rate and hot set become the generated guest's rate and working set, the ops
 * counter is parsed from `xp`, the destination counts only its own work, and dirty-limit is
 * refused, saying why, where the QEMU in use cannot do it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { QemuBackend, qemuGuestWorkload } from '../../../src/driver/qemu-backend.js';
import type { BackendContext, GuestSpec } from '../../../src/driver/backend.js';
import { parseOpsDump } from '../../../src/qemu/guest-probe.js';
import type { QmpClient } from '../../../src/qmp/client.js';

const guest: GuestSpec = { memoryBytes: 64 << 20, pageSize: 4096, vcpus: 2, workload: 'hotset', hotset: { fraction: 0.1, share: 0.99 }, dirtyRate: 1500, readRate: 0, seed: 1 };
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function prepared(opts: { dirtyRing?: boolean; major?: number; minor?: number; accel?: 'kvm' | 'tcg' } = {}): Promise<{ b: QemuBackend; events: string[]; ctx: BackendContext }> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-gw-'));
  dirs.push(dir);
  const events: string[] = [];
  const ctx = { runtimeDir: dir, guest, onEvent: (e: { text: string }) => events.push(e.text), qmpPath: (s: string) => join(dir, s) } as unknown as BackendContext;
  const b = new QemuBackend({
    bin: '/usr/bin/qemu-system-x86_64',
    accel: opts.accel ?? 'kvm',
    version: { major: opts.major ?? 10, minor: opts.minor ?? 0, micro: 0, text: 'QEMU' },
    dirtyRing: opts.dirtyRing,
  });
  await b.prepare(ctx);
  return { b, events, ctx };
}

/** A QMP client that answers query-status, query-migrate and xp from the given state. */
function fakeQmp(state: { status: string; migration: string; ops: number; throttle?: number; blocktime?: number[] }): QmpClient {
  return {
    execute: async (command: string) => {
      if (command === 'query-status') return { status: state.status, running: state.status === 'running' };
      if (command === 'query-migrate')
        return { status: state.migration, 'cpu-throttle-percentage': state.throttle, 'postcopy-vcpu-blocktime': state.blocktime };
      if (command === 'human-monitor-command') {
        const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
        return `0000000000009000: ${hex(state.ops % 2 ** 32)} ${hex(Math.floor(state.ops / 2 ** 32))}\r\n`;
      }
      throw new Error(`unexpected ${command}`);
    },
  } as unknown as QmpClient;
}

describe('qemuGuestWorkload', () => {
  it('runs dirtyRate x vCPUs pages per second over the hot pages of a hotset, else over all pages', () => {
    expect(qemuGuestWorkload(guest, 1000)).toEqual({ dirtyPagesPerSecond: 3000, workingSetPages: 100, order: 'sequential', seed: 1 });
    expect(qemuGuestWorkload({ ...guest, workload: 'random' }, 1000)).toEqual({ dirtyPagesPerSecond: 3000, workingSetPages: 1000, order: 'random', seed: 1 });
    expect(qemuGuestWorkload({ ...guest, hotset: { fraction: 0.0001, share: 1 } }, 1000).workingSetPages).toBe(1);
  });
});

describe('parseOpsDump', () => {
  it('reads the u64 from xp /2wx, low word first', () => {
    expect(parseOpsDump('0000000000009000: 0x0000abcd 0x00000002\r\n')).toBe(2 * 2 ** 32 + 0xabcd);
    expect(() => parseOpsDump('Cannot access memory')).toThrow(/ops counter/);
  });
});

describe('QemuBackend guest', () => {
  it('says what the guest does at prepare', async () => {
    const { events } = await prepared();
    expect(events.join('\n')).toMatch(/writes 3000 pages\/s \(1500 x 2 vCPUs, on one vCPU\) over a working set of 1510 pages/);
  });

  it('refuses the dirty ring, saying why, on QEMU 7.2 and under TCG; puts it in both argvs on 10.0 with KVM', async () => {
    await expect(prepared({ dirtyRing: true, major: 7, minor: 2 })).rejects.toThrow(/dirty-limit needs QEMU 8\.1 or newer \(this is QEMU 7\.2/);
    await expect(prepared({ dirtyRing: true, accel: 'tcg' })).rejects.toThrow(/TCG, which has none/);
    const { b, ctx } = await prepared({ dirtyRing: true });
    for (const side of ['source', 'destination'] as const) expect(b.command(side, ctx).args).toContain('kvm,dirty-ring-size=4096');
    expect(b.dirtyLimitRefusal()).toBeNull();
  });

  it('counts the destination from where the source stopped, and the source throttle', async () => {
    const { b } = await prepared();
    const src = { status: 'running', migration: 'active', ops: 1000, throttle: 30 };
    expect(await b.readGuest('source', fakeQmp(src))).toMatchObject({ ops: 1000, nominalOpsPerSecond: 3000, throttlePercentage: 30 });
    src.ops = 5000;
    src.status = 'postmigrate';
    src.migration = 'completed';
    expect(await b.readGuest('source', fakeQmp(src))).toMatchObject({ ops: 5000, opsPerSecond: 0 });
    const dst = { status: 'running', migration: 'completed', ops: 5600, blocktime: [12, 40] };
    const w = await b.readGuest('destination', fakeQmp(dst));
    expect(w).toMatchObject({ ops: 600, worstStallMs: 40, throttlePercentage: 0 });
    expect(w?.note).toMatch(/postcopy-vcpu-blocktime/);
  });

  it('forgets the last run at prepare: a destination not yet running counts 0, and its base is not an earlier run\'s', async () => {
    const { b, ctx } = await prepared();
    // Run 1: the source stops at 5000; the destination ran on to 9000.
    await b.readGuest('source', fakeQmp({ status: 'postmigrate', migration: 'completed', ops: 5000 }));
    expect(await b.readGuest('destination', fakeQmp({ status: 'running', migration: 'completed', ops: 9000 }))).toMatchObject({ ops: 4000 });
    // Run 2 (compare's next strategy, a lab's rewind): fresh VMs on the same backend.
    await b.prepare(ctx);
    expect(await b.readGuest('destination', fakeQmp({ status: 'inmigrate', migration: 'active', ops: 0 }))).toMatchObject({ ops: 0 });
    // Its first reading is its base when this run's source was not seen stopped (not run 1's 5000).
    expect(await b.readGuest('destination', fakeQmp({ status: 'running', migration: 'postcopy-active', ops: 7000 }))).toMatchObject({ ops: 0 });
  });

  it('says how long its rate covers: 0 at the first reading (unknown, not zero), then the span of its readings', async () => {
    const { b } = await prepared();
    const src = { status: 'running', migration: 'active', ops: 1000 };
    expect(await b.readGuest('source', fakeQmp(src))).toMatchObject({ windowMs: 0, opsPerSecond: 0 });
    await new Promise((r) => setTimeout(r, 50));
    src.ops = 1100;
    const w = await b.readGuest('source', fakeQmp(src));
    expect(w?.windowMs).toBeGreaterThanOrEqual(40);
    expect(w?.opsPerSecond).toBeGreaterThan(0);
    expect(await b.readGuest('destination', fakeQmp({ status: 'inmigrate', migration: 'active', ops: 0 }))).toMatchObject({ windowMs: 0 });
  });

  it('marks blocktime unknown on a destination in postcopy without postcopy-blocktime, known (0) before postcopy', async () => {
    const { b, ctx } = await prepared();
    const reading = (status: string, blocktime?: number) => ({ runState: 'running', status, progress: 0, ram: { total: 4096 * 100, remaining: 4096 * 50, 'page-size': 4096 }, ...(blocktime === undefined ? {} : { blocktimeMs: blocktime }) });
    const dst = (status: string, blocktime?: number) => {
      const r = { source: reading(status) as never, destination: reading(status, blocktime) as never };
      b.combine(r, { 'source-to-destination': { bytesForwarded: 0 } } as never);
      return (r.destination as { pages: Record<string, unknown> }).pages;
    };
    expect(dst('active')['blocktime-unknown']).toBeUndefined();
    expect(dst('active').unreported).toEqual(['requested', 'duplicates-discarded', 'blocked-vcpus']);
    b.noteStatus('destination', 'active', 'postcopy-active', ctx);
    expect(dst('postcopy-active')['blocktime-unknown']).toBe(true);
    expect(dst('postcopy-active', 1200)).toMatchObject({ 'blocktime-ms': 1200 });
    expect(dst('postcopy-active', 1200)['blocktime-unknown']).toBeUndefined();
  });

  it('with postcopy-blocktime on, says blocktime comes at the end (QEMU reports it on completion), asking the capability once', async () => {
    for (const capOn of [true, false]) {
      const { b, ctx } = await prepared();
      let asked = 0;
      const q = {
        execute: async (command: string) => {
          if (command === 'query-status') return { status: 'running', running: true };
          if (command === 'query-migrate') return { status: 'postcopy-active', ram: { total: 4096 * 100, remaining: 4096 * 50, 'page-size': 4096, transferred: 0 } };
          if (command === 'query-migrate-capabilities') {
            asked++;
            return [{ capability: 'postcopy-ram', state: true }, { capability: 'postcopy-blocktime', state: capOn }];
          }
          throw new Error(`unexpected ${command}`);
        },
      } as unknown as QmpClient;
      b.noteStatus('destination', 'active', 'postcopy-active', ctx);
      for (let i = 0; i < 3; i++) {
        const r = { source: (await b.read('source', q)) as never, destination: (await b.read('destination', q)) as never };
        b.combine(r, { 'source-to-destination': { bytesForwarded: 0 } } as never);
        const pages = (r.destination as { pages: Record<string, unknown> }).pages;
        expect(pages['blocktime-at-end']).toBe(capOn ? true : undefined);
        expect(pages['blocktime-unknown']).toBe(capOn ? undefined : true);
        // Not counted at the destination: the source's total less remaining, said as "current".
        expect(pages).toMatchObject({ received: 50, 'received-current': true });
        expect((r.source as { pages: Record<string, unknown> }).pages['received-current']).toBeUndefined();
      }
      expect(asked).toBe(1);
    }
  });

  it("on completion, blocktime is QEMU's per-vCPU blocktime added up (vCPU·ms), not its all-vCPUs-at-once figure", async () => {
    const { b, ctx } = await prepared();
    const q = {
      execute: async (command: string) => {
        if (command === 'query-status') return { status: 'running', running: true };
        if (command === 'query-migrate')
          return { status: 'completed', ram: { total: 4096 * 100, remaining: 0, 'page-size': 4096, transferred: 0 }, 'postcopy-blocktime': 10, 'postcopy-vcpu-blocktime': [30, 50] };
        throw new Error(`unexpected ${command}`);
      },
    } as unknown as QmpClient;
    b.noteStatus('destination', 'postcopy-active', 'completed', ctx);
    const r = { source: (await b.read('source', q)) as never, destination: (await b.read('destination', q)) as never };
    b.combine(r, { 'source-to-destination': { bytesForwarded: 0 } } as never);
    expect((r.destination as { pages: Record<string, unknown> }).pages).toMatchObject({ 'blocktime-ms': 80, 'blocktime-worst-vcpu-ms': 50 });
  });

  it('does not read a destination that is not running (a missing page would block its monitor)', async () => {
    const { b } = await prepared();
    const qmp = fakeQmp({ status: 'inmigrate', migration: 'postcopy-active', ops: 77 });
    const spy = { ...qmp, execute: async (c: string, ...rest: unknown[]) => {
      if (c === 'human-monitor-command') throw new Error('read the memory of a destination that is not running');
      return (qmp.execute as (c: string, ...r: unknown[]) => Promise<unknown>)(c, ...rest);
    } } as unknown as QmpClient;
    expect(await b.readGuest('destination', spy)).toMatchObject({ ops: 0, opsPerSecond: 0, runningMs: 0 });
  });
});
