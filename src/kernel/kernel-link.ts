/**
 * The kernel link: the source and the destination each in a network namespace of their own
 * (`pcl-<runId>-src`, `pcl-<runId>-dst`), joined by a veth pair. Each direction is shaped on
 * the egress of the sending side's veth end, so no ifb is needed:
 *
 *   source→destination  = egress of `pcl-src` in the source namespace
 *   destination→source  = egress of `pcl-dst` in the destination namespace
 *
 * latency/jitter/loss: netem as the root qdisc; rate: tbf (the child of netem when both are set);
 * blackhole: nft `drop` on the output hook; cut: nft `reject with tcp reset` (TCP) and `reject`
 * (anything else) on the output hook, so the sending socket gets a RST (ECONNRESET); down:
 * `ip link set down` on that side's veth end (a veth end down takes its peer's carrier with it,
 * so `down` stops both directions; the snapshot says so).
 *
 * Where the kernel lacks sch_netem, latency/jitter/loss are refused with one sentence; rate,
 * blackhole, cut and down still work. Nothing falls back silently.
 */
import type { Direction, Link, LinkDirectionSnapshot, LinkDirectionState, LinkEndpoints, LinkFault, LinkSnapshot, Side } from '../types.js';
import { DIRECTIONS } from '../types.js';
import { CLEAR_CONFIG, faultTargets, flapMode, isCableFault, nextConfig, parseLinkFault, type DirectionConfig } from '../link/fault-model.js';
import { FlapSchedule, type FlapState } from '../link/flap-schedule.js';
import type { Argv } from './argv.js';
import { KernelApplyError, KernelCommandError, KernelUnsupportedError, KernelValidationError, isNotExist } from './errors.js';
import { addrAdd, linkDel, linkSetDown, linkSetUp, linkStats, netnsAdd, netnsDel, netnsExec, vethAdd } from './ip.js';
import { chainAdd, chainFlush, counterAdd, listCounter, nft, nftBatch, parseCounter, ruleDrop, ruleReject, ruleRejectTcpReset, tableAdd, tableDelete, type NftCommand } from './nft.js';
import { OWNER_DIR, removeOwner, writeOwner } from './owner.js';
import { run as defaultRun, runIgnoringNotExist, type Runner } from './run.js';
import { netemArgs, qdiscAdd, qdiscDelRoot, qdiscReplace, tbfArgs } from './tc.js';
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

interface DirTopo {
  ns: string;
  dev: string;
}

interface QdiscSpec {
  parent: string;
  handle: string;
  args: string[];
}

const TABLE = 'pcl-link';
const CHAIN = 'egress';
const COUNTER = 'dropped';
/** netem's default queue (1000 packets) overflows with a long delay at veth speed. */
const NETEM_LIMIT = 100_000;
/** How old byte counters may be before snapshot() starts a new read in the background. */
const COUNTER_MAX_AGE_MS = 500;

/** The qdiscs a direction's egress needs, root first. */
export function qdiscPlan(s: DirState): QdiscSpec[] {
  const netem = s.latencyMs > 0 || s.jitterMs > 0 || s.lossPercent > 0;
  const plan: QdiscSpec[] = [];
  if (netem) {
    plan.push({ parent: 'root', handle: '1:', args: netemArgs({ delayMs: s.latencyMs, jitterMs: s.jitterMs, lossPercent: s.lossPercent, limit: NETEM_LIMIT }) });
  }
  if (s.rateBytesPerSec > 0) {
    plan.push({ parent: netem ? '1:1' : 'root', handle: netem ? '10:' : '1:', args: tbfArgs({ bytesPerSec: s.rateBytesPerSec }) });
  }
  return plan;
}

/** The nft rules a direction's state needs on its egress interface. */
export function nftRules(state: LinkDirectionState, dev: string): NftCommand[] {
  const m = { oifname: dev, counter: COUNTER };
  if (state === 'blackhole') return [ruleDrop(TABLE, CHAIN, m)];
  if (state === 'cut') return [ruleRejectTcpReset(TABLE, CHAIN, m), ruleReject(TABLE, CHAIN, m)];
  return [];
}

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
  private nftOk = false;
  private flaps = new Set<Flap>();
  /** Serialises every change (apply, flap steps, restore, stop) so they never interleave. */
  private chain: Promise<unknown> = Promise.resolve();
  private lastCounters: Record<Direction, { forwarded: number; dropped: number }> = {
    'source-to-destination': { forwarded: 0, dropped: 0 },
    'destination-to-source': { forwarded: 0, dropped: 0 },
  };
  private lastConnections = 0;

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

      // Try netem once, on lo of the source namespace, so latency/loss can be refused up front.
      try {
        await r(qdiscAdd({ dev: 'lo', ns: src }, netemArgs({ delayMs: 1 })));
        await runIgnoringNotExist(r, qdiscDelRoot('lo', { ns: src }));
        this.netem = { ok: true, detail: 'netem qdisc added and removed' };
      } catch (err) {
        this.netem = { ok: false, detail: err instanceof KernelCommandError ? err.stderr || err.message : String(err) };
      }

      // One table per namespace: a named counter (outlives rule changes) and an output chain.
      try {
        for (const ns of [src, dst]) {
          const b = nftBatch(ns, [tableAdd(TABLE), counterAdd(TABLE, COUNTER), chainAdd(TABLE, CHAIN, 'output')]);
          await r(b.argv, { input: b.input });
        }
        this.nftOk = true;
      } catch (err) {
        // Without nft the link still does rate and down; cut/blackhole are refused when asked.
        this.nftOk = false;
        this.nftError = err instanceof KernelCommandError ? (err.code === 'ENOENT' ? 'nft is not installed' : err.stderr || err.message) : String(err);
      }
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

  private nftError = '';

  /** `ip netns exec <ns> file args...`: the VM of `side` runs inside its namespace. */
  wrapCommand(side: Side, file: string, args: string[]): { file: string; args: string[] } {
    const [f, ...rest] = netnsExec(this.namespaces[side], file, args);
    return { file: f, args: rest };
  }

  private requireStarted(): void {
    if (!this.started || this.stopped) throw new Error(`kernel link ${this.runId} is not running (start() it first)`);
  }

  /** Refuse, before touching anything, what this kernel cannot do. */
  private checkSupported(next: DirState, fault: LinkFault): void {
    const needsNetem = next.latencyMs > 0 || next.jitterMs > 0 || next.lossPercent > 0;
    if (needsNetem && this.netem && !this.netem.ok) {
      throw new KernelUnsupportedError(
        `${fault.kind} needs the kernel's netem qdisc (module sch_netem), which this kernel lacks (tc said: ${this.netem.detail}); ` +
          `use --link relay for latency, jitter and loss (rate, blackhole, cut and down work on the kernel link)`,
        'postcopy-lab doctor shows how to get sch_netem here',
      );
    }
    if ((next.state === 'cut' || next.state === 'blackhole') && !this.nftOk) {
      throw new KernelUnsupportedError(
        `${fault.kind} needs nftables, which does not work here (${this.nftError}); install it (apt-get install nftables) or use --link relay`,
        'apt-get install nftables',
      );
    }
  }

  async apply(input: LinkFault): Promise<void> {
    const fault = parseLinkFault(input);
    this.requireStarted();
    const dirs = faultTargets(fault);
    if (fault.kind === 'flap') {
      for (const d of dirs) this.checkSupported(nextConfig(this.state[d], fault), fault);
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
        this.checkSupported(s, fault);
        next.set(d, s);
      }
      await this.transition(next, `${fault.kind}`);
      if (fault.kind === 'cut') await this.abortConnections();
    });
  }

  /**
   * A cut resets the migration's connections at once on both ends, as the relay does. The nft
   * reject alone only answers packets as they are sent, so a side that is only receiving (a
   * destination whose vCPUs all wait) would never hear of it. `ss -K` aborts the sockets
   * (the kernel's SOCK_DESTROY): each side sees the reset immediately.
   */
  private async abortConnections(): Promise<void> {
    const peers: Array<[string, string]> = [
      [this.namespaces.source, this.subnet.destinationAddress],
      [this.namespaces.destination, this.subnet.sourceAddress],
    ];
    await Promise.all(
      peers.map(async ([ns, peer]) => {
        try {
          await this.runner(netnsExec(ns, 'ss', ['-K', '-t', 'state', 'connected', 'dst', peer]));
        } catch {
          // A kernel without INET_DIAG_DESTROY: the reject rules still reset on the next packet.
        }
      }),
    );
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
        await this.render(d, prev[d], s);
        this.state = { ...this.state, [d]: s };
      }
    } catch (err) {
      const rollbackErrors: unknown[] = [];
      for (const d of touched) {
        try {
          await this.renderFully(d, prev[d]);
        } catch (e) {
          rollbackErrors.push(e);
        }
      }
      this.state = prev;
      const undo = rollbackErrors.length === 0 ? 'rolled back to the previous state' : `rollback failed too: ${rollbackErrors.map((e) => (e as Error).message).join('; ')}`;
      throw new KernelApplyError(`applying ${what} failed (${(err as Error).message}); ${undo}`, err, rollbackErrors.length === 0, rollbackErrors);
    }
  }

  /** Change only what differs between `from` and `to`. */
  private async render(d: Direction, from: DirState, to: DirState): Promise<void> {
    const { ns, dev } = this.dirs[d];
    const r = this.runner;
    const pFrom = qdiscPlan(from);
    const pTo = qdiscPlan(to);
    if (JSON.stringify(pFrom) !== JSON.stringify(pTo)) {
      const sameShape = pFrom.length === pTo.length && pFrom.every((q, i) => q.args[0] === pTo[i].args[0] && q.handle === pTo[i].handle);
      if (sameShape && pTo.length > 0) {
        // Same qdiscs, new parameters: change them in place (no packet is let through unshaped).
        for (const q of pTo) await r(qdiscReplace({ dev, ns, parent: q.parent, handle: q.handle }, q.args));
      } else {
        await this.renderQdiscs(d, pTo);
      }
    }
    if (JSON.stringify(nftRules(from.state, dev)) !== JSON.stringify(nftRules(to.state, dev))) await this.renderNft(d, to.state);
    if ((from.state === 'down') !== (to.state === 'down')) await r(to.state === 'down' ? linkSetDown(dev, { ns }) : linkSetUp(dev, { ns }));
  }

  /** Put a direction in `s` whatever the kernel has now (rollback and restore). */
  private async renderFully(d: Direction, s: DirState): Promise<void> {
    const { ns, dev } = this.dirs[d];
    await this.renderQdiscs(d, qdiscPlan(s));
    if (this.nftOk) await this.renderNft(d, s.state);
    await this.runner(s.state === 'down' ? linkSetDown(dev, { ns }) : linkSetUp(dev, { ns }));
  }

  private async renderQdiscs(d: Direction, plan: QdiscSpec[]): Promise<void> {
    const { ns, dev } = this.dirs[d];
    // A root qdisc of another kind cannot be replaced in place ("Invalid qdisc name: must match
    // existing qdisc"), so start again from the default one.
    await runIgnoringNotExist(this.runner, qdiscDelRoot(dev, { ns }));
    for (const q of plan) await this.runner(qdiscAdd({ dev, ns, parent: q.parent, handle: q.handle }, q.args));
  }

  /** Flush and refill the direction's chain in one nft transaction: all or nothing. */
  private async renderNft(d: Direction, state: LinkDirectionState): Promise<void> {
    const { ns, dev } = this.dirs[d];
    const b = nftBatch(ns, [chainFlush(TABLE, CHAIN), ...nftRules(state, dev)]);
    await this.runner(b.argv, { input: b.input });
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
          await this.renderFully(d, CLEAR);
          this.state = { ...this.state, [d]: { ...CLEAR } };
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length) throw new AggregateError(errors, `restore failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
    });
  }

  /**
   * The link as we set it, plus byte counters. Reading the counters takes a few `ip netns exec`
   * calls (~0.1-0.25 s here), too slow for a UI polling at 10 Hz: by default the counters come
   * from the last read and a new read starts in the background when they are older than
   * COUNTER_MAX_AGE_MS. `{ fresh: true }` waits for a new read (tests, the end of a drill).
   */
  async snapshot(opts: { fresh?: boolean } = {}): Promise<LinkSnapshot> {
    if (this.started && !this.stopped) {
      if (opts.fresh) await this.refreshCounters();
      else if (Date.now() - this.countersAt > COUNTER_MAX_AGE_MS) void this.refreshCounters().catch(() => undefined);
    }
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
      bytesForwarded: this.lastCounters[d].forwarded,
      bytesDropped: this.lastCounters[d].dropped,
    });
    const a = dir('source-to-destination');
    const b = dir('destination-to-source');
    return {
      kind: 'kernel',
      up: this.started && !this.stopped && a.state === 'up' && b.state === 'up',
      flapping: this.flaps.size > 0,
      connections: this.lastConnections,
      'source-to-destination': a,
      'destination-to-source': b,
    };
  }

  private countersAt = 0;
  private countersReading: Promise<void> | null = null;

  /** One read at a time; callers arriving during a read share it. */
  private refreshCounters(): Promise<void> {
    this.countersReading ??= this.readCounters().finally(() => {
      this.countersAt = Date.now();
      this.countersReading = null;
    });
    return this.countersReading;
  }

  /** Byte counters, best effort: a failed read keeps the last values (snapshot never throws). */
  private async readCounters(): Promise<void> {
    await Promise.all([
      this.readConnections(),
      ...DIRECTIONS.map(async (d) => {
        const { ns, dev } = this.dirs[d];
        try {
          const { stdout } = await this.runner(linkStats(dev, { ns }));
          const rows = JSON.parse(stdout) as Array<{ stats64?: { tx?: { bytes?: number } } }>;
          this.lastCounters[d].forwarded = rows[0]?.stats64?.tx?.bytes ?? this.lastCounters[d].forwarded;
        } catch {
          /* keep the last value */
        }
        if (this.nftOk) {
          try {
            const { stdout } = await this.runner(nft(ns, listCounter(TABLE, COUNTER)));
            this.lastCounters[d].dropped = parseCounter(stdout).bytes;
          } catch {
            /* keep the last value */
          }
        }
      }),
    ]);
  }

  private async readConnections(): Promise<void> {
    try {
      const { stdout } = await this.runner(
        netnsExec(this.namespaces.source, 'ss', ['-H', '-t', '-n', 'state', 'established', 'dst', this.subnet.destinationAddress]),
      );
      this.lastConnections = stdout.split('\n').filter((l) => l.trim() !== '').length;
    } catch {
      /* keep the last value */
    }
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
    if (this.nftOk) for (const ns of [src, dst]) await attempt(nft(ns, tableDelete(TABLE)));
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
