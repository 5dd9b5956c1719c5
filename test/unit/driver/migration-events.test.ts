/**
 * Which MIGRATION events are state changes (src/driver/migration-events.ts), and the
 * orchestrator's use of it: a QMP server per side in this process (real unix sockets, a fake
 * `query-migrate`), events sent as QEMU 7.2 sends them around migrate-recover, and the run's
 * event log and snapshots checked for a `setup` state the VM was never in.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { notAStateChange } from '../../../src/driver/migration-events.js';
import { Orchestrator } from '../../../src/driver/orchestrator.js';
import type { BackendContext, SideReading, VmBackend } from '../../../src/driver/backend.js';
import type { QmpClient } from '../../../src/qmp/client.js';
import { startQmpServer, type QmpServer } from '../../../src/qmp/server.js';
import type { LabEvent, Link, LinkSnapshot, MigrationStatus, Side } from '../../../src/types.js';

describe('notAStateChange', () => {
  it('takes setup during a migration for an event, and setup from none or a finished migration for a state', () => {
    for (const current of ['postcopy-paused', 'postcopy-recover', 'postcopy-active', 'active'] as const) {
      expect(notAStateChange('destination', current, 'setup')).toMatch(/^MIGRATION event: setup \(not a state change: destination stays /);
    }
    for (const current of ['none', 'completed', 'failed', 'cancelled'] as const) {
      expect(notAStateChange('source', current, 'setup')).toBeNull();
    }
  });

  it('takes every other reported status for a state change', () => {
    expect(notAStateChange('destination', 'postcopy-paused', 'postcopy-recover')).toBeNull();
    expect(notAStateChange('source', 'active', 'postcopy-active')).toBeNull();
  });
});

/** A backend whose VMs are `sleep` processes and whose QMP sockets are served here. */
class FakeQmpBackend implements VmBackend {
  readonly kind = 'qemu' as const;
  readonly qemuVersion = '7.2';
  readonly readyTimeoutMs = 5000;
  readonly servers = new Map<Side, QmpServer>();
  /** What query-migrate answers, per side. */
  readonly status: Record<Side, MigrationStatus> = { source: 'none', destination: 'none' };

  async prepare(ctx: BackendContext): Promise<void> {
    for (const side of ['source', 'destination'] as const) {
      const server = await startQmpServer({
        path: ctx.qmpPath(side),
        version: { major: 7, minor: 2, micro: 22 },
        commands: {
          'query-status': { handler: () => ({ status: 'running', running: true }) },
          'query-migrate': { handler: () => (this.status[side] === 'none' ? {} : { status: this.status[side] }) },
          quit: { handler: () => ({}) },
        },
      });
      this.servers.set(side, server);
    }
  }
  command(): { file: string; args: string[] } {
    return { file: 'sleep', args: ['60'] };
  }
  attach(): void {}
  noteStatus(): void {}
  async read(side: Side, q: QmpClient): Promise<SideReading> {
    const mig = await q.execute<{ status?: MigrationStatus }>('query-migrate');
    return { runState: 'running', status: mig.status ?? 'none', progress: 0 };
  }
  combine(): void {}
  async verify(): Promise<void> {}
  emit(side: Side, status: MigrationStatus): void {
    this.servers.get(side)!.emit('MIGRATION', { status });
  }
  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.close()));
  }
}

const hp = { host: '127.0.0.1', port: 1 };
const dir = { state: 'up' as const, latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0 };
const fakeLink: Link = {
  kind: 'relay',
  start: async () => ({ incoming: { listen: hp, connect: hp }, recover: { listen: hp, connect: hp } }),
  wrapCommand: (_side, file, args) => ({ file, args }),
  apply: async () => {},
  restore: async () => {},
  snapshot: async (): Promise<LinkSnapshot> => ({ kind: 'relay', up: true, flapping: false, connections: 0, 'source-to-destination': dir, 'destination-to-source': dir }),
  stop: async () => {},
};

describe('the orchestrator logs only states the VM was in', () => {
  let orch: Orchestrator | null = null;
  let backend: FakeQmpBackend | null = null;
  afterEach(async () => {
    await orch?.stop();
    await backend?.close();
  });

  async function start(): Promise<{ events: Omit<LabEvent, 't'>[]; b: FakeQmpBackend; o: Orchestrator }> {
    const events: Omit<LabEvent, 't'>[] = [];
    backend = new FakeQmpBackend();
    orch = new Orchestrator({
      guest: { memoryBytes: 1 << 24, pageSize: 4096, vcpus: 1, workload: 'sequential', dirtyRate: 0, readRate: 0, seed: 1 },
      makeLink: () => fakeLink,
      onEvent: (e) => events.push(e),
      backend,
    });
    await orch.start();
    return { events, b: backend, o: orch };
  }

  /**
   * Events travel over a socket, in order: send a marker event after them and wait for it, so
   * everything sent before has been handled (whatever the orchestrator made of it).
   */
  let markers = 0;
  async function settled(b: FakeQmpBackend, events: Omit<LabEvent, 't'>[], side: Side): Promise<void> {
    const n = ++markers;
    b.servers.get(side)!.emit('X-MARKER', { n });
    const text = `X-MARKER {"n":${n}}`;
    while (!events.some((e) => e.text === text)) await new Promise((r) => setTimeout(r, 10));
  }

  const states = (events: Omit<LabEvent, 't'>[], side: Side) =>
    events.filter((e) => e.kind === 'state' && e.side === side).map((e) => e.data as { from: string; to: string });

  it('a setup event while query-migrate says postcopy-paused, then postcopy-recover, is an event, never the status', async () => {
    const { events, b, o } = await start();
    b.status.destination = 'postcopy-paused';
    expect((await o.snapshot()).destination.status).toBe('postcopy-paused');

    // migrate-recover on QEMU 7.2: the event, but no state change.
    b.emit('destination', 'setup');
    await settled(b, events, 'destination');
    expect(o.status('destination')).toBe('postcopy-paused');
    expect((await o.snapshot()).destination.status).toBe('postcopy-paused');

    // The source connects: a real transition, then the same stray event again.
    b.status.destination = 'postcopy-recover';
    b.emit('destination', 'postcopy-recover');
    b.emit('destination', 'setup');
    await settled(b, events, 'destination');
    expect(o.status('destination')).toBe('postcopy-recover');
    expect((await o.snapshot()).destination.status).toBe('postcopy-recover');

    expect(states(events, 'destination')).toEqual([
      { from: 'none', to: 'postcopy-paused' },
      { from: 'postcopy-paused', to: 'postcopy-recover' },
    ]);
    const stray = events.filter((e) => e.text.startsWith('MIGRATION event: setup'));
    expect(stray.map((e) => [e.kind, e.side])).toEqual([
      ['event', 'destination'],
      ['event', 'destination'],
    ]);
    expect(stray[0].text).toContain('destination stays postcopy-paused');
    expect(stray[1].text).toContain('destination stays postcopy-recover');
  });

  it('a setup event when no migration runs is a state change', async () => {
    const { events, b, o } = await start();
    b.emit('source', 'setup');
    await settled(b, events, 'source');
    expect(o.status('source')).toBe('setup');
    expect(states(events, 'source')).toEqual([{ from: 'none', to: 'setup' }]);
  });
});
