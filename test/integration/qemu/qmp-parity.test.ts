/**
 * QMP parity: wrong-state and malformed commands get the same answer (success, or error class
 * and text) and leave the same state on the sim emulating a QEMU version as on that QEMU.
 *
 * The TABLE is the record: each scenario brings a source/destination pair to a state, then runs
 * its rows in order (one command on one side, the expected outcome per version, recorded from
 * the real QEMUs). Every row runs against every installed QEMU and against the sim started with
 * `--emulate` that version; the sim side always runs, so the table keeps the sim honest even on a
 * machine without that QEMU. A row where the sim differs on purpose says so (`sim` and
 * `deliberate`): those rows are the README's list of deliberate differences.
 *
 * The pair's migration stream goes through a rate-limited TCP pass-through (1 MiB/s) so a 32 MiB
 * guest stays in precopy or postcopy for as long as the rows need; it never forwards a close, so
 * a migrate-pause on one side leaves the other side's connection open, as a cut link would.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../../src/qmp/client.js';
import { QmpError } from '../../../src/qmp/error.js';
import { minimumMemoryMiB, writeGuestImage } from '../../../src/qemu/guest-image.js';
import { chooseAccel, startQemu, type QemuHandle } from '../../../src/qemu/launcher.js';
import { EMULATED_VERSIONS, type EmulatedVersion } from '../../../src/sim/versions.js';
import { QEMUS } from '../../helpers/qemus.js';
import { ensureBuilt, freePort, sleep, startVm, tempDir, type SimVmProcess } from '../../helpers/sim.js';

type Side = 'src' | 'dst';
/** `{}`, or [error class, desc]; `then`: the states the sides must reach afterwards. */
type Outcome = { ok: true; then?: Partial<Record<Side, string>> } | { error: [string, string] };
const OK: Outcome = { ok: true };
const err = (desc: string, cls = 'GenericError'): Outcome => ({ error: [cls, desc] });
const both = (o: Outcome): Record<EmulatedVersion, Outcome> => ({ '7.2': o, '10.0': o });

interface Ctx {
  /** Where the destination listens for the incoming migration. */
  dstPort: number;
  /** The pass-through to dstPort, for the source's migrate. */
  proxyPort: number;
  /** A free port for a migrate-recover listener. */
  recoverPort: number;
  /** A server that accepts and never says anything (a recovery that cannot finish). */
  silentPort: number;
}

interface Row {
  what: string;
  side: Side;
  cmd: string;
  args?: (c: Ctx) => Record<string, unknown>;
  expect: Record<EmulatedVersion, Outcome>;
  /** Where the sim answers differently on purpose: its outcome, and why (the README's list). */
  sim?: Partial<Record<EmulatedVersion, Outcome>>;
  deliberate?: string;
}

interface Scenario {
  name: string;
  /** Brings a fresh pair to the scenario's starting state. */
  setup: (p: Pair) => Promise<void>;
  rows: Row[];
}

// ---- the table -----------------------------------------------------------------------------

const caps = (list: Array<[string, boolean]>) => ({ capabilities: list.map(([capability, state]) => ({ capability, state })) });
const NOT_PAUSED_RECOVER = err('Migrate recover can only be run when postcopy is paused.');
const PAUSE_REFUSED: Record<EmulatedVersion, Outcome> = {
  '7.2': err('migrate-pause is currently only supported during postcopy-active state'),
  '10.0': err('migrate-pause is currently only supported during postcopy-active or postcopy-recover state'),
};
const URI_MISSING: Record<EmulatedVersion, Outcome> = { '7.2': err("Parameter 'uri' is missing"), '10.0': err("need either 'uri' or 'channels' argument") };
const NO_POSTCOPY_CAP = err('Enable postcopy with migrate_set_capability before the start of migration');
const NOT_STARTED = err('Postcopy must be started after migration has been started');
const CANCEL_REFUSED = err('Postcopy migration in progress, cannot cancel.');
const CANCEL_STRANDS =
  "7.2's source goes to cancelling and stays there: the guest can then run on neither side and only killing both QEMUs ends it; the sim refuses, as 10.0 does";

async function postcopyActive(p: Pair): Promise<void> {
  await p.startMigration(true);
  await p.exec('src', 'migrate-start-postcopy');
  for (const s of ['src', 'dst'] as const) {
    const st = await p.waitStatus(s, 'postcopy-active');
    if (st !== 'postcopy-active') throw new Error(`${s} did not reach postcopy-active (it is ${st})`);
  }
}

const TABLE: Scenario[] = [
  {
    name: 'no migration yet',
    setup: async () => {},
    rows: [
      { what: 'unknown command', side: 'src', cmd: 'x-no-such-command', expect: both(err('The command x-no-such-command has not been found', 'CommandNotFound')) },
      { what: 'missing argument', side: 'src', cmd: 'migrate', args: () => ({}), expect: URI_MISSING },
      { what: 'wrong-typed argument', side: 'src', cmd: 'migrate', args: () => ({ uri: 5 }), expect: both(err("Invalid parameter type for 'uri', expected: string")) },
      { what: 'unexpected argument', side: 'src', cmd: 'query-migrate', args: () => ({ foo: 1 }), expect: both(err("Parameter 'foo' is unexpected")) },
      { what: 'migrate-incoming without uri', side: 'dst', cmd: 'migrate-incoming', args: () => ({}), expect: URI_MISSING },
      { what: 'migrate-recover when not paused', side: 'dst', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort}` }), expect: both(NOT_PAUSED_RECOVER) },
      { what: 'migrate-recover on the source', side: 'src', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort}` }), expect: both(NOT_PAUSED_RECOVER) },
      { what: 'migrate resume when not paused', side: 'src', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.proxyPort}`, resume: true }), expect: both(err('Cannot resume if there is no paused migration')) },
      { what: 'migrate resume on the destination', side: 'dst', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.proxyPort}`, resume: true }), expect: both(err('Cannot resume if there is no paused migration')) },
      { what: 'migrate-start-postcopy without the capability', side: 'src', cmd: 'migrate-start-postcopy', expect: both(NO_POSTCOPY_CAP) },
      { what: 'migrate-start-postcopy on the destination', side: 'dst', cmd: 'migrate-start-postcopy', expect: both(NO_POSTCOPY_CAP) },
      { what: 'migrate-pause outside postcopy', side: 'src', cmd: 'migrate-pause', expect: PAUSE_REFUSED },
      { what: 'migrate-pause outside postcopy on the destination', side: 'dst', cmd: 'migrate-pause', expect: PAUSE_REFUSED },
      { what: 'migrate-incoming without -incoming', side: 'src', cmd: 'migrate-incoming', args: (c) => ({ uri: `tcp:127.0.0.1:${c.dstPort}` }), expect: both(err("'-incoming' was not specified on the command line")) },
      { what: 'migrate_cancel with no migration', side: 'src', cmd: 'migrate_cancel', expect: both(OK) },
      { what: 'migrate_cancel with no migration on the destination', side: 'dst', cmd: 'migrate_cancel', expect: both(OK) },
      { what: 'a capability without state', side: 'src', cmd: 'migrate-set-capabilities', args: () => ({ capabilities: [{ capability: 'postcopy-ram' }] }), expect: both(err("Parameter 'capabilities[0].state' is missing")) },
      { what: 'postcopy-ram without return-path', side: 'src', cmd: 'migrate-set-capabilities', args: () => caps([['postcopy-ram', true]]), expect: both(OK) },
      { what: 'migrate-start-postcopy before the migration', side: 'src', cmd: 'migrate-start-postcopy', expect: both(NOT_STARTED) },
    ],
  },
  {
    name: 'precopy active (no postcopy capability)',
    setup: async (p) => {
      await p.startMigration(false);
    },
    rows: [
      { what: 'migrate-incoming twice', side: 'dst', cmd: 'migrate-incoming', args: (c) => ({ uri: `tcp:127.0.0.1:${c.dstPort}` }), expect: both(err('The incoming migration has already been started')) },
      { what: 'migrate during a migration', side: 'src', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.proxyPort}` }), expect: both(err("There's a migration process in progress")) },
      { what: 'migrate-start-postcopy without the capability, during a migration', side: 'src', cmd: 'migrate-start-postcopy', expect: both(NO_POSTCOPY_CAP) },
      { what: 'migrate-start-postcopy on the destination, during a migration', side: 'dst', cmd: 'migrate-start-postcopy', expect: both(NO_POSTCOPY_CAP) },
      { what: 'migrate-set-capabilities during a migration', side: 'src', cmd: 'migrate-set-capabilities', args: () => caps([['postcopy-ram', false]]), expect: both(err("There's a migration process in progress")) },
      { what: 'migrate-set-capabilities on the destination during a migration', side: 'dst', cmd: 'migrate-set-capabilities', args: () => caps([['postcopy-ram', false]]), expect: both(OK) },
      { what: 'migrate-pause in precopy', side: 'src', cmd: 'migrate-pause', expect: PAUSE_REFUSED },
      { what: 'migrate-pause in precopy on the destination', side: 'dst', cmd: 'migrate-pause', expect: PAUSE_REFUSED },
      { what: 'migrate resume in precopy', side: 'src', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.proxyPort}`, resume: true }), expect: both(err('Cannot resume if there is no paused migration')) },
      { what: 'migrate-recover in precopy', side: 'dst', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort}` }), expect: both(NOT_PAUSED_RECOVER) },
      { what: 'migrate_cancel in precopy', side: 'src', cmd: 'migrate_cancel', expect: both({ ok: true, then: { src: 'cancelled' } }) },
    ],
  },
  {
    name: 'postcopy-active, then paused by migrate-pause on both sides',
    setup: postcopyActive,
    rows: [
      { what: 'migrate-start-postcopy twice', side: 'src', cmd: 'migrate-start-postcopy', expect: both(OK) },
      { what: 'migrate-start-postcopy on the destination in postcopy', side: 'dst', cmd: 'migrate-start-postcopy', expect: both(NOT_STARTED) },
      { what: 'migrate resume in postcopy-active', side: 'src', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.proxyPort}`, resume: true }), expect: both(err('Cannot resume if there is no paused migration')) },
      { what: 'migrate-recover in postcopy-active', side: 'dst', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort}` }), expect: both(NOT_PAUSED_RECOVER) },
      { what: 'migrate-set-capabilities on the destination in postcopy', side: 'dst', cmd: 'migrate-set-capabilities', args: () => caps([['postcopy-ram', true]]), expect: both(OK) },
      { what: 'migrate-pause in postcopy-active', side: 'src', cmd: 'migrate-pause', expect: both({ ok: true, then: { src: 'postcopy-paused' } }) },
      { what: 'migrate-pause in postcopy-active on the destination', side: 'dst', cmd: 'migrate-pause', expect: both({ ok: true, then: { dst: 'postcopy-paused' } }) },
      { what: 'migrate-pause in postcopy-paused', side: 'src', cmd: 'migrate-pause', expect: PAUSE_REFUSED },
      { what: 'migrate-pause in postcopy-paused on the destination', side: 'dst', cmd: 'migrate-pause', expect: PAUSE_REFUSED },
      { what: 'migrate resume on the destination when paused', side: 'dst', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.proxyPort}`, resume: true }), expect: both(err('Cannot resume if there is no paused migration')) },
      { what: 'migrate-recover when paused', side: 'dst', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort}` }), expect: both(OK) },
      { what: 'a second migrate-recover while listening', side: 'dst', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort + 1}` }), expect: both(OK) },
      { what: 'migrate-recover again on the address it listens on', side: 'dst', cmd: 'migrate-recover', args: (c) => ({ uri: `tcp:127.0.0.1:${c.recoverPort + 1}` }), expect: both(OK) },
      { what: 'migrate resume to a peer that never answers', side: 'src', cmd: 'migrate', args: (c) => ({ uri: `tcp:127.0.0.1:${c.silentPort}`, resume: true }), expect: both({ ok: true, then: { src: 'postcopy-recover' } }) },
      {
        what: 'migrate-pause in postcopy-recover',
        side: 'src',
        cmd: 'migrate-pause',
        expect: { '7.2': PAUSE_REFUSED['7.2'], '10.0': { ok: true, then: { src: 'postcopy-paused' } } },
      },
    ],
  },
  {
    name: 'postcopy-paused, then migrate_cancel',
    setup: async (p) => {
      await postcopyActive(p);
      await p.exec('src', 'migrate-pause');
      if ((await p.waitStatus('src', 'postcopy-paused')) !== 'postcopy-paused') throw new Error('the source did not pause');
    },
    rows: [
      {
        what: 'migrate_cancel in postcopy-paused',
        side: 'src',
        cmd: 'migrate_cancel',
        expect: { '7.2': { ok: true, then: { src: 'cancelling' } }, '10.0': CANCEL_REFUSED },
        sim: { '7.2': CANCEL_REFUSED },
        deliberate: CANCEL_STRANDS,
      },
    ],
  },
  {
    name: 'postcopy-active, then migrate_cancel',
    setup: postcopyActive,
    rows: [
      {
        what: 'migrate_cancel in postcopy-active',
        side: 'src',
        cmd: 'migrate_cancel',
        // Usually it sticks in cancelling; once, on a loaded host, 7.2's migration thread was
        // between sends and reached cancelled. Either way 7.2 accepted it, which is the row.
        expect: { '7.2': { ok: true, then: { src: 'cancelling|cancelled' } }, '10.0': CANCEL_REFUSED },
        sim: { '7.2': CANCEL_REFUSED },
        deliberate: CANCEL_STRANDS,
      },
    ],
  },
];

// ---- the pair, on QEMU or on the sim -------------------------------------------------------

interface Vm {
  exec(cmd: string, args?: Record<string, unknown>): Promise<unknown>;
  status(): Promise<string>;
  stop(): Promise<void>;
}

/** Loopback pass-through at `rate` bytes/s each way; never forwards a close (a cut, not a hangup). */
async function startPassThrough(targetPort: number, rate: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const pipe = (from: net.Socket, to: net.Socket) => {
    from.on('data', (d: Buffer) => {
      if (!to.destroyed) to.write(d);
      from.pause();
      setTimeout(() => from.resume(), (d.length / rate) * 1000);
    });
  };
  const server = net.createServer((a) => {
    const b = net.connect(targetPort, '127.0.0.1');
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('error', () => {});
    }
    pipe(a, b);
    pipe(b, a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

async function startSilent(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

type Result = { ok: true } | { error: [string, string] };

class Pair {
  private constructor(
    readonly vms: Record<Side, Vm>,
    readonly ctx: Ctx,
    private readonly closers: Array<() => unknown>,
  ) {}

  static async start(vms: Record<Side, Vm>): Promise<Pair> {
    const dstPort = await freePort();
    const proxy = await startPassThrough(dstPort, 1024 * 1024);
    const silent = await startSilent();
    const recoverPort = await freePort();
    return new Pair(vms, { dstPort, proxyPort: proxy.port, recoverPort, silentPort: silent.port }, [proxy.close, silent.close]);
  }

  exec(side: Side, cmd: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.vms[side].exec(cmd, args);
  }

  async run(side: Side, cmd: string, args?: Record<string, unknown>): Promise<Result> {
    try {
      const ret = await this.exec(side, cmd, args);
      return ret && typeof ret === 'object' && Object.keys(ret).length === 0 ? { ok: true } : { error: ['(success)', JSON.stringify(ret)] };
    } catch (e) {
      if (e instanceof QmpError) return { error: [e.errorClass, e.desc] };
      throw e;
    }
  }

  async waitStatus(side: Side, want: string, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      last = await this.vms[side].status();
      // `want` may name alternatives, "a|b": either is the expected outcome.
      if (want.split('|').includes(last)) return want;
      if (Date.now() > deadline) return last;
      await sleep(20);
    }
  }

  /** Incoming listen, migrate through the pass-through, both sides active. */
  async startMigration(postcopy: boolean): Promise<void> {
    if (postcopy) for (const s of ['src', 'dst'] as const) await this.exec(s, 'migrate-set-capabilities', caps([['postcopy-ram', true], ['return-path', true]]));
    // Slow enough that precopy cannot finish and a switchover is small; postcopy's push too.
    await this.exec('src', 'migrate-set-parameters', { 'max-bandwidth': 256 * 1024, 'max-postcopy-bandwidth': 256 * 1024 });
    await this.exec('dst', 'migrate-incoming', { uri: `tcp:127.0.0.1:${this.ctx.dstPort}` });
    await this.exec('src', 'migrate', { uri: `tcp:127.0.0.1:${this.ctx.proxyPort}` });
    for (const s of ['src', 'dst'] as const) {
      const st = await this.waitStatus(s, 'active');
      if (st !== 'active') throw new Error(`${s} did not reach active (it is ${st})`);
    }
  }

  async close(): Promise<void> {
    for (const c of this.closers) c();
    await Promise.all([this.vms.src.stop(), this.vms.dst.stop()]);
  }
}

async function runScenario(p: Pair, sc: Scenario, version: EmulatedVersion, onSim: boolean, log: string[]): Promise<void> {
  await sc.setup(p);
  for (const row of sc.rows) {
    const want = (onSim ? row.sim?.[version] : undefined) ?? row.expect[version];
    const got = await p.run(row.side, row.cmd, row.args?.(p.ctx));
    const states: Partial<Record<Side, string>> = {};
    if ('ok' in want && want.then) {
      for (const [side, st] of Object.entries(want.then) as Array<[Side, string]>) states[side] = await p.waitStatus(side, st, 5_000);
    }
    const shown = 'ok' in got ? (Object.keys(states).length ? { ok: true, then: states } : { ok: true }) : got;
    log.push(`${row.side} ${row.cmd} (${row.what}): ${JSON.stringify(shown)}`);
    expect.soft(shown, `${sc.name}: ${row.what} (${row.side} ${row.cmd})`).toEqual(want);
  }
}

// ---- the matrix ----------------------------------------------------------------------------

const END_MIB = 24;

describe.each(EMULATED_VERSIONS.map((v) => [v]))('QMP parity, QEMU %s', (version) => {
  const qemu = QEMUS.find((q) => q.short === version);
  let dir: string;
  let rom: string;
  let kvm = false;

  beforeAll(async () => {
    await ensureBuilt();
    dir = tempDir('postcopy-parity-');
    rom = path.join(dir, 'guest.rom');
    if (qemu) {
      await writeGuestImage(rom, { endMiB: END_MIB }, 'rom');
      kvm = (await chooseAccel('auto')).accel === 'kvm';
    }
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const simPair = async (): Promise<Pair> => {
    const wrap = (v: SimVmProcess): Vm => ({ exec: (c, a) => v.exec(c, a), status: () => v.status(), stop: () => v.stop() });
    const [src, dst] = await Promise.all([
      startVm({ role: 'source', dir, memory: '32M', emulate: version }),
      startVm({ role: 'destination', dir, memory: '32M', emulate: version }),
    ]);
    return Pair.start({ src: wrap(src), dst: wrap(dst) });
  };

  const qemuPair = async (): Promise<Pair> => {
    const one = async (name: string, incoming: boolean): Promise<Vm> => {
      const h: QemuHandle = await startQemu({
        bin: qemu!.bin,
        memoryMiB: minimumMemoryMiB(END_MIB) + 4,
        image: rom,
        imageKind: 'rom',
        qmpSocket: path.join(dir, `${name}-${Math.random().toString(36).slice(2, 8)}.qmp`),
        kvm,
        incoming: incoming ? 'defer' : undefined,
        name,
      });
      const qmp = await QmpClient.connect(h.qmpSocket, { timeoutMs: 20_000 });
      return {
        exec: (c, a) => qmp.execute(c, a),
        status: async () => (await qmp.execute<{ status?: string }>('query-migrate')).status ?? 'none',
        stop: async () => {
          qmp.close();
          // Not quit: a source stuck in cancelling or postcopy-recover takes seconds to give up.
          if (!h.exited && h.pid) process.kill(h.pid, 'SIGKILL');
          await h.exit;
        },
      };
    };
    const [src, dst] = await Promise.all([one('parity-src', false), one('parity-dst', true)]);
    return Pair.start({ src, dst });
  };

  /** One scenario on a fresh pair, the pair closed whatever happens (PARITY_RECORD prints what it saw). */
  const play = async (kind: 'sim' | 'qemu', start: () => Promise<Pair>, sc: Scenario): Promise<void> => {
    const p = await start();
    const log: string[] = [];
    try {
      await runScenario(p, sc, version, kind === 'sim', log);
    } finally {
      if (process.env.PARITY_RECORD) console.info(`${kind} ${version} / ${sc.name}\n  ${log.join('\n  ')}`);
      await p.close();
    }
  };

  for (const sc of TABLE) {
    it(`sim --emulate ${version}: ${sc.name}`, () => play('sim', simPair, sc), 30_000);
    it.skipIf(!qemu)(`QEMU ${qemu?.version.text ?? `${version} (not installed here)`}: ${sc.name}`, () => play('qemu', qemuPair, sc), 30_000);
  }
});
