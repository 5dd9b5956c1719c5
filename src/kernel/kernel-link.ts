/**
 * The kernel link: the source and the destination each in a network namespace of their own
 * (`pcl-<runId>-src`, `pcl-<runId>-dst`), joined by a veth pair. Each direction is shaped on
 * the egress of the sending side's veth end, so no ifb is needed:
 *
 *   source→destination  = egress of `pcl-src` in the source namespace
 *   destination→source  = egress of `pcl-dst` in the destination namespace
 *
 * How each fault becomes qdiscs, nft rules or a link state: render.ts. A veth end down takes its
 * peer's carrier with it, so `down` stops both directions; the snapshot says so. What the link
 * reads back (bytes, connections): link-counters.ts.
 *
 * Where the kernel lacks sch_netem, latency/jitter/loss are refused with one sentence; rate,
 * blackhole, cut and down still work. Nothing falls back silently.
 */
import type { Direction, Link, LinkDirectionSnapshot, LinkEndpoints, LinkFault, LinkSnapshot, Side } from '../types.js';
import { DIRECTIONS } from '../types.js';
import { CLEAR_CONFIG, faultTargets, flapMode, isCableFault, nextConfig, parseLinkFault, type DirectionConfig } from '../link/fault-model.js';
import { FlapSchedule, type FlapState } from '../link/flap-schedule.js';
import type { Argv } from './argv.js';
import { KernelApplyError, KernelCommandError, KernelUnsupportedError, KernelValidationError, isNotExist } from './errors.js';
import { addrAdd, linkDel, linkSetUp, netnsAdd, netnsDel, netnsExec, vethAdd } from './ip.js';
import { abortConnections, LinkCounters } from './link-counters.js';
import { nft, tableDelete } from './nft.js';
import { OWNER_DIR, removeOwner, writeOwner } from './owner.js';
import { TABLE, checkSupported, probeNetem, render, renderFully, setupNft, type DirTopo } from './render.js';
import { run as defaultRun, runIgnoringNotExist, type Runner } from './run.js';
import { PREFIX, parseSubnet, validatePort, validateRunId, type Subnet } from './validate.js';

export const DEFAULT_SUBNET = '10.213.0.0/24';
export const DEFAULT_MIGRATION_PORT = 4444;
export const DEFAULT_RECOVER_PORT = 4445;

export const NOT_ROOT_MESSAGE = 'the kernel link needs root (it creates network namespaces); run with sudo or use --link relay';

export interface KernelLinkOptions {
  runId: string;
  /** IPv4 CIDR; the source gets its first host address, the destination the second. Default 10.213.0.0/24. */
  subnet?: string;
  migrationPort?: number;
  recoverPort?: number;
  /** Called when a flap schedule fails in the background (it then stops). */
  onError?: (err: Error) => void;
  /** For tests: run commands through this instead of execa. */
  runner?: Runner;
  /** For tests: whether we are root. Default: process.getuid() === 0. */
  isRoot?: () => boolean;
  /** For tests: where the owner marker goes. Default /run/postcopy-lab. */
  ownerDir?: string;
}

/** The state of one direction as we have put it in the kernel (the fault model's config). */
type DirState = DirectionConfig;
const CLEAR: DirState = CLEAR_CONFIG;

/** Flap timers must not keep the process alive on their own (the VMs and the UI do that). */
const unrefClock = {
  now: () => performance.now(),
  setTimer(fn: () => void, ms: number): () => void {
    const timer = setTimeout(fn, Math.max(0, ms));
    timer.unref();
    return () => clearTimeout(timer);
  },
};

interface Flap {
  directions: Direction[];
  schedule: FlapSchedule;
}

export class KernelLink implements Link {
  readonly kind = 'kernel' as const;
  readonly runId: string;
  readonly subnet: Subnet;
  readonly migrationPort: number;
  readonly recoverPort: number;
  readonly namespaces: { source: string; destination: string };
  readonly devices = { source: 'pcl-src', destination: 'pcl-dst' } as const;

  private readonly runner: Runner;
  private readonly isRoot: () => boolean;
  private readonly ownerDir: string;
  private readonly onError?: (err: Error) => void;
  private readonly dirs: Record<Direction, DirTopo>;
  private state: Record<Direction, DirState> = { 'source-to-destination': { ...CLEAR }, 'destination-to-source': { ...CLEAR } };
  private started = false;
  private stopped = false;
  private netem: { ok: boolean; detail: string } | null = null;
  /** Whether our nft table could be set up, and if not why (cut/blackhole need it). */
  private nft = { ok: false, error: '' };
  private flaps = new Set<Flap>();
  /** Serialises every change (apply, flap steps, restore, stop) so they never interleave. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly counters: LinkCounters;

  constructor(opts: KernelLinkOptions) {
    this.runId = validateRunId(opts.runId);
    this.subnet = parseSubnet(opts.subnet ?? DEFAULT_SUBNET);
    this.migrationPort = validatePort(opts.migrationPort ?? DEFAULT_MIGRATION_PORT, 'migrationPort');
    this.recoverPort = validatePort(opts.recoverPort ?? DEFAULT_RECOVER_PORT, 'recoverPort');
    if (this.migrationPort === this.recoverPort) throw new KernelValidationError('recoverPort', 'recoverPort must differ from migrationPort');
    this.namespaces = { source: `${PREFIX}${this.runId}-src`, destination: `${PREFIX}${this.runId}-dst` };
    this.dirs = {
      'source-to-destination': { ns: this.namespaces.source, dev: this.devices.source },
      'destination-to-source': { ns: this.namespaces.destination, dev: this.devices.destination },
    };
    this.runner = opts.runner ?? defaultRun;
    this.isRoot = opts.isRoot ?? (() => process.getuid?.() === 0);
    this.ownerDir = opts.ownerDir ?? OWNER_DIR;
    this.onError = opts.onError;
    this.counters = new LinkCounters({
      runner: this.runner,
      dirs: this.dirs,
      sourceNs: this.namespaces.source,
      destinationAddress: this.subnet.destinationAddress,
      nftOk: () => this.nft.ok,
    });
  }

  /** Whether netem worked when start() tried it (null before start). */
  get netemAvailable(): { ok: boolean; detail: string } | null {
    return this.netem;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  async start(): Promise<LinkEndpoints> {
    if (this.stopped) throw new Error(`kernel link ${this.runId} was stopped; create a new one`);
    if (this.started) throw new Error(`kernel link ${this.runId} is already started`);
    if (!this.isRoot()) throw new KernelUnsupportedError(NOT_ROOT_MESSAGE, 'sudo, or --link relay');
    this.started = true;
    const { source: src, destination: dst } = this.namespaces;
    const r = this.runner;
    try {
      await writeOwner(this.runId, [src, dst], this.ownerDir);
      await r(netnsAdd(src));
      await r(netnsAdd(dst));
      await r(vethAdd(this.devices.source, this.devices.destination, { ns: src, peerNs: dst }));
      await r(addrAdd(this.devices.source, `${this.subnet.sourceAddress}/${this.subnet.prefixLength}`, { ns: src }));
      await r(addrAdd(this.devices.destination, `${this.subnet.destinationAddress}/${this.subnet.prefixLength}`, { ns: dst }));
      for (const ns of [src, dst]) await r(linkSetUp('lo', { ns }));
      await r(linkSetUp(this.devices.source, { ns: src }));
      await r(linkSetUp(this.devices.destination, { ns: dst }));
      this.netem = await probeNetem(r, src);
      // Without nft the link still does rate and down; cut/blackhole are refused when asked.
      this.nft = await setupNft(r, [src, dst]);
    } catch (err) {
      await this.teardown().catch(() => undefined);
      this.stopped = true;
      throw err;
    }
    const dstAddr = this.subnet.destinationAddress;
    const incoming = { host: dstAddr, port: this.migrationPort };
    const recover = { host: dstAddr, port: this.recoverPort };
    return { incoming: { listen: incoming, connect: { ...incoming } }, recover: { listen: recover, connect: { ...recover } } };
  }

  /** `ip netns exec <ns> file args...`: the VM of `side` runs inside its namespace. */
  wrapCommand(side: Side, file: string, args: string[]): { file: string; args: string[] } {
    const [f, ...rest] = netnsExec(this.namespaces[side], file, args);
    return { file: f, args: rest };
  }

  private requireStarted(): void {
    if (!this.started || this.stopped) throw new Error(`kernel link ${this.runId} is not running (start() it first)`);
  }

  async apply(input: LinkFault): Promise<void> {
    const fault = parseLinkFault(input);
    this.requireStarted();
    const dirs = faultTargets(fault);
    if (fault.kind === 'flap') {
      for (const d of dirs) checkSupported({ netem: this.netem, nft: this.nft }, nextConfig(this.state[d], fault), fault);
      this.cancelFlaps(dirs);
      await this.startFlap(dirs, fault);
      return;
    }
    // A new up/cut/blackhole/down on a direction replaces its flap schedule; shaping does not.
    if (isCableFault(fault)) this.cancelFlaps(dirs);
    await this.serial(async () => {
      const next = new Map<Direction, DirState>();
      for (const d of dirs) {
        const s = nextConfig(this.state[d], fault);
        checkSupported({ netem: this.netem, nft: this.nft }, s, fault);
        next.set(d, s);
      }
      await this.transition(next, `${fault.kind}`);
      if (fault.kind === 'cut') {
        await abortConnections(this.runner, [
          [this.namespaces.source, this.subnet.destinationAddress],
          [this.namespaces.destination, this.subnet.sourceAddress],
        ]);
      }
    });
  }

  /**
   * Move the given directions to their next state, step by step. If a step fails, every
   * direction touched goes back to its previous state (fully re-rendered), and the error says
   * whether that undo worked.
   */
  private async transition(next: Map<Direction, DirState>, what: string): Promise<void> {
    const prev = { ...this.state };
    const touched: Direction[] = [];
    try {
      for (const [d, s] of next) {
        touched.push(d);
        await render(this.runner, this.dirs[d], prev[d], s);
        this.state = { ...this.state, [d]: s };
      }
    } catch (err) {
      const rollbackErrors: unknown[] = [];
      for (const d of touched) {
        try {
          await renderFully(this.runner, this.dirs[d], prev[d], this.nft.ok);
        } catch (e) {
          rollbackErrors.push(e);
        }
      }
      this.state = prev;
      const undo = rollbackErrors.length === 0 ? 'rolled back to the previous state' : `rollback failed too: ${rollbackErrors.map((e) => (e as Error).message).join('; ')}`;
      throw new KernelApplyError(`applying ${what} failed (${(err as Error).message}); ${undo}`, err, rollbackErrors.length === 0, rollbackErrors);
    }
  }

  private cancelFlaps(dirs: Direction[]): void {
    for (const f of [...this.flaps]) {
      if (f.directions.some((d) => dirs.includes(d))) {
        f.schedule.stop();
        this.flaps.delete(f);
      }
    }
  }

  /**
   * A flap on `dirs` together (the fault model's FlapSchedule), until cancelled by restore(),
   * stop() or a new up/cut/blackhole/down/flap on its direction. Every step goes through the
   * serial chain; the first is applied before apply() returns, so an error there reaches the
   * caller, and a later one goes to onError.
   */
  private async startFlap(dirs: Direction[], fault: Extract<LinkFault, { kind: 'flap' }>): Promise<void> {
    const options = { upMs: fault.upMs, downMs: fault.downMs, mode: flapMode(fault), count: fault.count };
    const flap: Flap = {
      directions: dirs,
      schedule: new FlapSchedule(options, unrefClock, {
        setState: (state: FlapState) =>
          this.serial(async () => {
            if (!this.flaps.has(flap)) return;
            const next = new Map<Direction, DirState>(dirs.map((d) => [d, { ...this.state[d], state }]));
            await this.transition(next, `flap (${state})`);
          }),
        onDone: () => this.flaps.delete(flap),
        onError: (err) => {
          if (this.flaps.delete(flap)) this.onError?.(err as Error);
        },
      }),
    };
    this.flaps.add(flap);
    try {
      await flap.schedule.start();
    } catch (err) {
      this.flaps.delete(flap);
      throw err;
    }
  }

  async restore(): Promise<void> {
    this.requireStarted();
    this.cancelFlaps([...DIRECTIONS]);
    await this.serial(async () => {
      const errors: unknown[] = [];
      for (const d of DIRECTIONS) {
        try {
          await renderFully(this.runner, this.dirs[d], CLEAR, this.nft.ok);
          this.state = { ...this.state, [d]: { ...CLEAR } };
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length) throw new AggregateError(errors, `restore failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
    });
  }

  /**
   * The link as we set it, plus byte counters: by default from the last read (a new one starts
   * in the background when stale, see LinkCounters); `{ fresh: true }` waits for a new read.
   */
  async snapshot(opts: { fresh?: boolean } = {}): Promise<LinkSnapshot> {
    if (this.started && !this.stopped) await this.counters.update(opts.fresh);
    // Read the state after the counters: a flap step may have landed while they were read.
    const s = this.state;
    const downAnywhere = DIRECTIONS.some((d) => s[d].state === 'down');
    const dir = (d: Direction): LinkDirectionSnapshot => ({
      // A veth end that is down takes its peer's carrier with it: nothing flows either way.
      state: s[d].state === 'up' && downAnywhere ? 'down' : s[d].state,
      latencyMs: s[d].latencyMs,
      jitterMs: s[d].jitterMs,
      rateBytesPerSec: s[d].rateBytesPerSec,
      lossPercent: s[d].lossPercent,
      bytesForwarded: this.counters.of(d).forwarded,
      bytesDropped: this.counters.of(d).dropped,
    });
    const a = dir('source-to-destination');
    const b = dir('destination-to-source');
    return {
      kind: 'kernel',
      up: this.started && !this.stopped && a.state === 'up' && b.state === 'up',
      flapping: this.flaps.size > 0,
      connections: this.counters.connections,
      'source-to-destination': a,
      'destination-to-source': b,
    };
  }

  async stop(): Promise<void> {
    this.cancelFlaps([...DIRECTIONS]);
    if (this.stopped || !this.started) {
      this.stopped = true;
      return;
    }
    this.stopped = true;
    await this.serial(() => this.teardown());
  }

  /**
   * Remove everything, in an order that stops traffic even if a process still holds a namespace
   * open (deleting a namespace's name does not end processes inside it): the nft tables and the
   * veth pair go first, then the names, then the owner marker. "Already gone" is success.
   */
  private async teardown(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (argv: Argv) => {
      try {
        await runIgnoringNotExist(this.runner, argv);
      } catch (err) {
        // A missing tool (nft not installed) means there is nothing of that tool's to remove.
        if (err instanceof KernelCommandError && err.code === 'ENOENT') return;
        if (!isNotExist(err)) errors.push(err);
      }
    };
    const { source: src, destination: dst } = this.namespaces;
    if (this.nft.ok) for (const ns of [src, dst]) await attempt(nft(ns, tableDelete(TABLE)));
    await attempt(linkDel(this.devices.source, { ns: src }));
    await attempt(netnsDel(src));
    await attempt(netnsDel(dst));
    try {
      await removeOwner(this.runId, this.ownerDir);
    } catch (err) {
      errors.push(err);
    }
    this.state = { 'source-to-destination': { ...CLEAR }, 'destination-to-source': { ...CLEAR } };
    if (errors.length) throw new AggregateError(errors, `kernel link cleanup incomplete: ${errors.map((e) => (e as Error).message).join('; ')}`);
  }
}
