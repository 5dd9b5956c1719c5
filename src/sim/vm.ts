/**
 * What the source and destination sim VMs share: guest memory metadata, the guest's vCPUs,
 * migration capabilities and parameters, the state machine, and the QMP commands that do not
 * depend on the side. Each side adds its own commands (src/sim/source.ts, destination.ts).
 */
import type { MigrationStatus, RunState, Side } from '../types.js';
import { QmpError } from '../qmp/error.js';
import type { QmpCommandDef } from '../qmp/server.js';
import { checkTransition, isInProgress } from './states.js';
import {
  capabilityRefusal,
  DEFAULT_EMULATED_VERSION,
  knownCapabilities,
  parameterKnown,
  MODELLED_CAPABILITIES,
  parameterRefusal,
  SIM_CAPABILITIES,
  traitsOf,
  unmodelledParameters,
  type EmulatedVersion,
  type VersionTraits,
} from './versions.js';
import { THROTTLE_DEFAULTS } from './throttle.js';
import { DEFAULT_RECOVERY_WINDOW } from '../recovery/spill.js';
import { Guest, type MemoryHooks, type WorkloadSpec } from './workload.js';

export interface VmOptions {
  name: string;
  memoryBytes: number;
  pageSize: number;
  workload: WorkloadSpec;
  /** The QEMU version this VM behaves as (src/sim/versions.ts); the newest when not given. */
  emulate?: EmulatedVersion;
  /** Where x-recovery-file writes (fixed at start, never from QMP: src/recovery/spill.ts). */
  recoveryDir?: string;
}

/**
 * Capabilities the sim implements: QEMU's that it models, plus ours with the x- prefix. The
 * others the emulated version knows are listed by query-migrate-capabilities, always false.
 */
export const CAPABILITIES = [...MODELLED_CAPABILITIES, ...SIM_CAPABILITIES] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface MigrationParameters {
  /** Precopy bandwidth cap, bytes/s. QEMU's default is 128 MiB/s. */
  'max-bandwidth': number;
  /** Background push cap during postcopy, bytes/s; 0 = unlimited (QEMU's default). */
  'max-postcopy-bandwidth': number;
  /** Milliseconds of downtime precopy may take at switchover. */
  'downtime-limit': number;
  /** Ours: pause postcopy when no data has moved for this many ms while pages are missing; 0 = off (QEMU's behaviour). */
  'x-stall-timeout': number;
  /** Ours: pages the x-recovery-walk walker may have requested at once (1 = the thread's single walker thread). */
  'x-walk-window': number;
  /** Ours: missing pages per second the walker may request (0: no limit). A lab holds the walk with it so a person can watch it. */
  'x-walk-rate': number;
  /** Ours: an on-failure recovery file also writes the pages whose frame started within this many last bytes of the stream (they may have been lost in flight). */
  'x-recovery-file-window': number;
  /** auto-converge (src/sim/throttle.ts): the first throttle, percent. */
  'cpu-throttle-initial': number;
  /** auto-converge: what each further trigger adds, percent. */
  'cpu-throttle-increment': number;
  /** auto-converge: smaller steps near the end, sized from the last period's dirtying. */
  'cpu-throttle-tailslow': boolean;
  /** auto-converge: the throttle never goes above this, percent. */
  'max-cpu-throttle': number;
  /** Throttle when the bytes dirtied in a period exceed this percentage of the bytes sent in it. */
  'throttle-trigger-threshold': number;
  /** dirty-limit (QEMU 8.1+): each vCPU's dirty rate cap, MB/s. */
  'vcpu-dirty-limit': number;
  /** dirty-limit: the period the cap is enforced over, ms. */
  'x-vcpu-dirty-limit-period': number;
}

type NumericParameter = { [K in keyof MigrationParameters]: MigrationParameters[K] extends number ? K : never }[keyof MigrationParameters];

/** QEMU's ranges (migrate_params_check). */
const PARAM_LIMITS: Record<NumericParameter, [number, number]> = {
  'max-bandwidth': [0, Number.MAX_SAFE_INTEGER],
  'max-postcopy-bandwidth': [0, Number.MAX_SAFE_INTEGER],
  'downtime-limit': [0, 2_000_000],
  'x-stall-timeout': [0, 3_600_000],
  'x-walk-window': [1, 4096],
  'x-walk-rate': [0, 1_000_000],
  'x-recovery-file-window': [0, Number.MAX_SAFE_INTEGER],
  'cpu-throttle-initial': [1, 99],
  'cpu-throttle-increment': [1, 99],
  'max-cpu-throttle': [1, 99],
  'throttle-trigger-threshold': [1, 100],
  'vcpu-dirty-limit': [1, Number.MAX_SAFE_INTEGER],
  'x-vcpu-dirty-limit-period': [1, 1000],
};

export type EmitFn = (event: string, data?: Record<string, unknown>) => void;

export abstract class SimVm implements MemoryHooks {
  abstract readonly side: Side;
  readonly pageSize: number;
  readonly pageCount: number;
  /** The guest's current version of every page: content = f(index, version). */
  readonly versions: Uint32Array;
  readonly guest: Guest;
  /** The QEMU version emulated, and what differs in it. */
  readonly emulate: EmulatedVersion;
  readonly traits: VersionTraits;
  status: MigrationStatus = 'none';
  runState: RunState;
  errorDesc: string | undefined;
  readonly caps = new Map<Capability, boolean>(CAPABILITIES.map((c) => [c, false]));
  readonly params: MigrationParameters = {
    'max-bandwidth': 134217728,
    'max-postcopy-bandwidth': 0,
    'downtime-limit': 300,
    'x-stall-timeout': 0,
    'x-walk-window': 1,
    'x-walk-rate': 0,
    'x-recovery-file-window': DEFAULT_RECOVERY_WINDOW,
    ...THROTTLE_DEFAULTS,
    'vcpu-dirty-limit': 1,
    'x-vcpu-dirty-limit-period': 1000,
  };
  /** Where QMP events go (set by the process that owns the QMP server). */
  emit: EmitFn = () => {};
  /** Called once the VM wants its process to exit (the `quit` command). */
  onQuit: () => void = () => {};
  /**
   * Called where the emulated QEMU version crashes (versions.ts says where): the VM process
   * dies by that signal, as QEMU would. In-process tests watch it instead.
   */
  onCrash: (signal: NodeJS.Signals, why: string) => void = () => {};
  /** Diagnostic log (stderr of the VM process). */
  log: (msg: string) => void = () => {};
  /** Every change of migration status, after it is made (the process's loop statistics follow it). */
  onStatus: (to: MigrationStatus) => void = () => {};

  constructor(readonly opts: VmOptions, initialRunState: RunState) {
    this.pageSize = opts.pageSize;
    this.pageCount = Math.floor(opts.memoryBytes / opts.pageSize);
    this.versions = new Uint32Array(this.pageCount);
    this.guest = new Guest(opts.workload, this.pageCount, this);
    this.runState = initialRunState;
    this.emulate = opts.emulate ?? DEFAULT_EMULATED_VERSION;
    this.traits = traitsOf(this.emulate);
  }

  abstract access(vcpu: number, page: number, write: boolean): 'ok' | 'blocked';

  cap(c: Capability): boolean {
    return this.caps.get(c) === true;
  }

  protected setStatus(to: MigrationStatus): void {
    if (to === this.status) return;
    checkTransition(this.side, this.emulate, this.status, to);
    this.log(`migration status: ${this.status} -> ${to}`);
    this.status = to;
    // QEMU emits MIGRATION only with the `events` capability on.
    if (this.cap('events')) this.emit('MIGRATION', { status: to });
    this.onStatus(to);
  }

  protected setRunState(to: RunState): void {
    if (to === this.runState) return;
    const wasRunning = this.runState === 'running';
    this.runState = to;
    if (wasRunning && to !== 'running') this.emit('STOP');
    if (!wasRunning && to === 'running') this.emit('RESUME');
  }

  protected startGuest(): void {
    this.setRunState('running');
    this.guest.start();
  }

  protected stopGuest(to: RunState): void {
    this.guest.stop();
    this.setRunState(to);
  }

  /** Whether `cont` may run the guest now; a reason if not. */
  protected abstract contRefusal(): string | null;

  /** The QMP commands both sides answer. */
  baseCommands(): Record<string, QmpCommandDef> {
    return {
      'query-status': {
        handler: () => ({ status: this.runState, running: this.runState === 'running', singlestep: false }),
      },
      stop: {
        handler: () => {
          if (this.runState === 'running') this.stopGuest('paused');
          return {};
        },
      },
      cont: {
        handler: () => {
          const refusal = this.contRefusal();
          if (refusal) throw new QmpError('GenericError', refusal);
          if (this.runState !== 'running') this.startGuest();
          return {};
        },
      },
      quit: {
        handler: () => {
          setImmediate(() => this.onQuit());
          return {};
        },
      },
      // Ours: the guest's work, throttle and worst stalls on this side, for comparing strategies.
      'x-query-guest': { handler: () => this.guest.accounting() },
      'query-migrate-capabilities': {
        handler: () => knownCapabilities(this.traits).map((capability) => ({ capability, state: this.caps.get(capability as Capability) === true })),
      },
      'migrate-set-capabilities': {
        args: { capabilities: 'array' },
        handler: (args) => {
          // Only an outgoing migration locks them: QEMU (7.2 and 10.0) lets the destination change
          // them during an incoming one.
          if (this.side === 'source' && isInProgress(this.status)) throw new QmpError('GenericError', "There's a migration process in progress");
          const list = args.capabilities as unknown[];
          const updates: Array<[Capability, boolean]> = [];
          list.forEach((item, i) => {
            const o = item as { capability?: unknown; state?: unknown };
            if (typeof o !== 'object' || o === null) throw new QmpError('GenericError', `Invalid parameter type for 'capabilities[${i}]', expected: object`);
            if (typeof o.capability !== 'string') throw new QmpError('GenericError', `Parameter 'capabilities[${i}].capability' is missing`);
            if (o.state === undefined) throw new QmpError('GenericError', `Parameter 'capabilities[${i}].state' is missing`);
            if (typeof o.state !== 'boolean') throw new QmpError('GenericError', `Invalid parameter type for 'capabilities[${i}].state', expected: boolean`);
            const refusal = capabilityRefusal(this.traits, this.emulate, o.capability, o.state);
            if (refusal) throw new QmpError('GenericError', refusal);
            // A capability the sim does not model may be set false: it is, already.
            if ((CAPABILITIES as readonly string[]).includes(o.capability)) updates.push([o.capability as Capability, o.state]);
          });
          const next = new Map(this.caps);
          for (const [c, s] of updates) next.set(c, s);
          if (next.get('postcopy-preempt') && !next.get('postcopy-ram')) {
            throw new QmpError('GenericError', 'Postcopy preempt requires postcopy-ram');
          }
          // QEMU's text. Its other condition, KVM with a dirty ring, the sim always meets.
          if (next.get('dirty-limit') && next.get('auto-converge')) {
            throw new QmpError('GenericError', 'dirty-limit conflicts with auto-converge either of then available currently');
          }
          for (const [c, s] of updates) this.caps.set(c, s);
          return {};
        },
      },
      // QEMU's list for the emulated version (the unmodelled ones at QEMU's defaults), then ours.
      'query-migrate-parameters': {
        handler: () => ({ ...this.traits.parameters, ...Object.fromEntries(Object.entries(this.params).filter(([k]) => parameterKnown(this.traits, k))) }),
      },
      'migrate-set-parameters': {
        args: {
          'max-bandwidth': 'int?',
          'max-postcopy-bandwidth': 'int?',
          'downtime-limit': 'int?',
          'x-stall-timeout': 'int?',
          'x-walk-window': 'int?',
          'x-walk-rate': 'int?',
          'x-recovery-file-window': 'int?',
          'cpu-throttle-initial': 'int?',
          'cpu-throttle-increment': 'int?',
          'cpu-throttle-tailslow': 'bool?',
          'max-cpu-throttle': 'int?',
          'throttle-trigger-threshold': 'int?',
          'vcpu-dirty-limit': 'int?',
          'x-vcpu-dirty-limit-period': 'int?',
          ...Object.fromEntries(Object.keys(unmodelledParameters(this.traits)).map((k) => [k, 'any?' as const])),
        },
        handler: (args) => {
          for (const k of Object.keys(args)) {
            // What the QMP schema of an older QEMU says of a member it does not have.
            if (!parameterKnown(this.traits, k)) throw new QmpError('GenericError', `Parameter '${k}' is unexpected`);
          }
          for (const [k, v] of Object.entries(args)) {
            if (!(k in this.params)) {
              // QEMU has it, the sim does not model it: only its default (a no-op) is taken.
              const refusal = parameterRefusal(this.traits, this.emulate, k, v);
              if (refusal) throw new QmpError('GenericError', refusal);
              delete args[k];
              continue;
            }
            if (typeof v === 'boolean') continue;
            const [lo, hi] = PARAM_LIMITS[k as NumericParameter];
            if (typeof v !== 'number' || v < lo || v > hi) {
              throw new QmpError('GenericError', `Parameter '${k}' expects a value between ${lo} and ${hi}`);
            }
          }
          Object.assign(this.params, args);
          this.parametersChanged();
          return {};
        },
      },
    };
  }

  private stallTimer: NodeJS.Timeout | null = null;

  /**
   * The opt-in stall detector (x-stall-timeout; off by default, as QEMU has none). Every 100 ms
   * while `current()` holds, `stalled(limitMs)` says why the channel looks dead, or null; a
   * reason fails the channel with it.
   */
  protected startStallWatch(current: () => boolean, stalled: (limitMs: number) => string | null, fail: (reason: string) => void): void {
    this.stopStallWatch();
    this.stallTimer = setInterval(() => {
      const limit = this.params['x-stall-timeout'];
      if (!limit || !current()) return;
      const reason = stalled(limit);
      if (reason) fail(`x-stall-timeout: ${reason}`);
    }, 100);
    this.stallTimer.unref?.();
  }

  protected stopStallWatch(): void {
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = null;
  }

  /** Hook: a side may react to a live parameter change (e.g. the bandwidth cap). */
  protected parametersChanged(): void {}

  abstract commands(): Record<string, QmpCommandDef>;

  /** Stop every timer and socket; the process is about to exit. */
  abstract shutdown(): void;
}

/** Parses `tcp:HOST:PORT` (IPv6 as `tcp:[::1]:PORT`), with QEMU-like errors. */
export function parseTcpUri(uri: string): { host: string; port: number } {
  const m = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(uri);
  if (!m) {
    const proto = uri.includes(':') ? uri.slice(0, uri.indexOf(':')) : uri;
    if (['unix', 'exec', 'fd', 'file', 'rdma'].includes(proto)) {
      throw new QmpError('GenericError', `The sim migrates over TCP only: '${uri}' is not supported (use tcp:HOST:PORT)`);
    }
    throw new QmpError('GenericError', `Invalid migration URI '${uri}': expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:4444`);
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new QmpError('GenericError', `Invalid port ${port} in '${uri}': expected 1-65535`);
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  return { host, port };
}
