/**
 * `--backend libvirt`: two libvirt daemons (src/libvirt/pair.ts) in the kernel link's
 * namespaces, driven as an operator drives them, through virsh. Unlike the sim and QEMU
 * backends this one owns its VMs' lifecycle (a LifecycleBackend): the destination domain only
 * exists once `virsh migrate` starts it, and libvirt's migration job must never be bypassed,
 * so the Orchestrator (which starts both VMs and speaks QMP to each) is not used.
 *
 *   - states: `virsh domstate --reason` on each side, turned into QEMU's migration states by
 *     STATE_TABLE (libvirt has no word for setup, postcopy-recover or failed), and between two
 *     polls the lifecycle events of one `virsh event --loop --all` per daemon (events.ts), so
 *     a state that lasts less than a poll (a fast resume) is still seen, in order;
 *   - counters: `virsh domjobinfo` on the source only (the destination's monitor is locked
 *     during its incoming job); `query-*` commands read on the extra read-only QMP socket;
 *   - commands: each QMP command a lab sends is mapped by src/libvirt/commands.ts or refused
 *     with the reason; a lab's `virsh` action runs the subcommand as written (argv only); the
 *     one command allowed around libvirt's job is the destination's out-of-band migrate-pause
 *     on the extra QMP socket (`via: x-extra-monitor`, commands.ts EXTRA_MONITOR);
 *   - verification: the destination paused and dumped through the extra QMP socket, checked by
 *     the project's consistency check (LibvirtSession.verifyDestination).
 */
import { LibvirtSession } from '../libvirt/session.js';
import { RemoteLibvirtSession } from '../libvirt/remote-session.js';
import type { RemoteHosts } from '../libvirt/remote.js';
import type { LibvirtRun, Running } from '../libvirt/run.js';
import { EXTRA_MONITOR_NOTE, extraMonitorProblem, mapQmpCommand } from '../libvirt/commands.js';
import { EventWatch, stateFromEvent, type EventLine } from '../libvirt/events.js';
import type { DomState } from '../libvirt/virsh.js';
import { virshActionProblem } from '../libvirt/virsh-action.js';
import { MAX_DIRTY_PAGES_PER_SECOND } from '../qemu/guest-image.js';
import { QmpClient } from '../qmp/client.js';
import type { LabEvent, LinkEndpoints, LinkSnapshot, MigrationStatus, PagesInfo, RamStats, RunState, Side, SideSnapshot, Snapshot } from '../types.js';
import type { DriverOptions, LifecycleBackend, RunDriver } from './backend.js';

const MiB = 1024 * 1024;

/**
 * libvirt's `domstate --reason` as QEMU's migration status, per side. 'job': running with a
 * migration job (domjobinfo) is `active`, without one `none`. Anything not listed is `none`.
 */
export const STATE_TABLE: ReadonlyArray<{ side: Side; state: string; reason: string | null; status: MigrationStatus | 'job' }> = [
  { side: 'source', state: 'running', reason: null, status: 'job' },
  { side: 'source', state: 'paused', reason: 'migrating', status: 'active' },
  { side: 'source', state: 'paused', reason: 'post-copy', status: 'postcopy-active' },
  { side: 'source', state: 'paused', reason: 'post-copy failed', status: 'postcopy-paused' },
  { side: 'source', state: 'shut off', reason: 'migrated', status: 'completed' },
  { side: 'destination', state: 'paused', reason: 'migrating', status: 'active' },
  { side: 'destination', state: 'running', reason: 'post-copy', status: 'postcopy-active' },
  { side: 'destination', state: 'running', reason: 'post-copy failed', status: 'postcopy-paused' },
  { side: 'destination', state: 'paused', reason: 'post-copy failed', status: 'postcopy-paused' },
  { side: 'destination', state: 'running', reason: 'migrated', status: 'completed' },
];

export function migrationStatus(side: Side, s: DomState | null, jobActive: boolean): MigrationStatus {
  if (!s) return 'none';
  const row = STATE_TABLE.find((r) => r.side === side && r.state === s.state && (r.reason === null || r.reason === s.reason));
  if (!row) return 'none';
  return row.status === 'job' ? (jobActive ? 'active' : 'none') : row.status;
}

function runState(s: DomState | null): RunState | 'unknown' {
  if (!s) return 'unknown';
  if (s.state === 'running') return 'running';
  if (s.state === 'paused') return 'paused';
  if (s.state === 'shut off') return 'shutdown';
  return 'unknown';
}

/** The virsh subcommands that last as long as the migration (run in the background). */
const LONG = new Set(['migrate']);
/**
 * A short virsh command's limit: above libvirt's own 30 s wait for a domain's state-change lock,
 * so a person who tries `virsh suspend` on a destination whose incoming job holds it reads
 * libvirt's answer ("cannot acquire state change lock (held by monitor=...)"), not ours.
 */
const SHORT_VIRSH_TIMEOUT_MS = 45_000;
/** How long a background `virsh migrate` is watched for an immediate refusal before it counts as started. */
const IMMEDIATE_REFUSAL_MS = 1500;

/**
 * virsh's own options for the long `virsh migrate` (before the subcommand): a keepalive of
 * 10 s × 30 missed, five minutes. Its connection to the destination daemon crosses the lab's
 * link; with virsh's default (5 s × 5, about 30 s) a silent blackhole killed it while a person
 * still read libvirt-blackhole's step 4, and libvirt then marked the source `post-copy failed`
 * by itself: the refusal of `--postcopy-resume` the step is about never came. A cut (RST) ends
 * the connection at once whatever the keepalive.
 */
export const MIGRATE_KEEPALIVE = ['-k', '10', '-K', '30'];

/**
 * libvirt says `post-copy failed` as soon as its own migrate-pause returns (domjobabort
 * --postcopy), and a link cut shows there as soon as the event arrives, but `--postcopy-resume`
 * then asks the source QEMU itself (query-migrate) and refuses unless it already reached
 * postcopy-paused: between the two, "QEMU reports migration is still running". Seen once in
 * seven suite runs, over qemu+tcp. An operator would simply run it again; so does the backend,
 * a few times, and says so.
 */
const RESUME_ATTEMPTS = 4;
const RESUME_RETRY_MS = 500;
const RESUME_RETRY_NOTE = 'libvirt already reports post-copy failed, but the source QEMU had not yet reached postcopy-paused';

/** Whether libvirt refused `--postcopy-resume` only because the source QEMU was not paused yet (worth another try). */
export function resumeBeforeQemuPaused(args: readonly string[], refusal: string): boolean {
  return args.includes('--postcopy-resume') && /QEMU reports migration is still running/i.test(refusal);
}

export interface LibvirtBackendOptions {
  /** The QEMU libvirt runs (its version is the backend's); absent on remote hosts: their daemons' default. */
  emulator?: string;
  version: { major: number; minor: number; text: string };
  /** libvirt's own version ("9.0"), when known: `virsh --version` for the local pair. */
  libvirtVersion?: string;
  /** Two daemons the user already has (--source-uri, --dest-uri) instead of the local pair. */
  remote?: RemoteHosts;
}

export class LibvirtBackend implements LifecycleBackend {
  readonly kind = 'libvirt' as const;
  readonly qemuVersion: string;
  readonly libvirtVersion?: string;

  constructor(readonly opts: LibvirtBackendOptions) {
    this.qemuVersion = `${opts.version.major}.${opts.version.minor}`;
    this.libvirtVersion = opts.libvirtVersion;
  }

  driver(o: DriverOptions): RunDriver {
    return new LibvirtDriver(this.opts, o);
  }
}

class LibvirtDriver implements RunDriver {
  private session: LibvirtRun | null = null;
  private readonly statuses = new Map<Side, MigrationStatus>();
  private readonly background = new Set<Promise<unknown>>();
  private verified: boolean | null = null;
  /** Completed recoveries: the destination out of postcopy-paused into postcopy-active or completed. */
  private recoveries = 0;
  private lastProgress: { value: number; at: number } | null = null;
  private readonly startedAt = performance.now();
  private stopped = false;
  /** One `virsh event --loop` per daemon, stopped with the run. */
  private readonly watches: EventWatch[] = [];
  /** Per side, how many states events have given: a poll that read across one is stale. */
  private readonly eventSeq = new Map<Side, number>();

  constructor(
    private readonly opts: LibvirtBackendOptions,
    private readonly o: DriverOptions,
  ) {}

  get link(): LibvirtRun['link'] {
    return this.session?.link ?? null;
  }

  async start(): Promise<LinkEndpoints> {
    const g = this.o.guest;
    // The kernel link's interface names carry the run id: keep it short (8 characters).
    const runId = `lv${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`.slice(0, 8);
    const memoryMiB = Math.max(32, Math.ceil(g.memoryBytes / MiB));
    const dirty = Math.min(MAX_DIRTY_PAGES_PER_SECOND, Math.round(g.dirtyRate * Math.max(1, g.vcpus)));
    const qemu = `QEMU ${this.opts.version.major}.${this.opts.version.minor}`;
    const guest = `guest ${memoryMiB} MiB writing ${dirty} pages/s`;
    const remote = this.opts.remote;
    if (remote) {
      this.session = new RemoteLibvirtSession({ runId, hosts: remote, emulator: this.opts.emulator, memoryMiB, dirtyPagesPerSecond: dirty });
      this.o.onEvent({ kind: 'info', text: `libvirt backend on your hosts: source ${remote.source.uri}, destination ${remote.destination.uri} (run ${runId}), ${qemu} (${this.opts.emulator ?? "the daemons' default emulator"}), ${guest}; link: none (the network between your hosts is not postcopy-lab's to break)` });
      this.o.onEvent({ kind: 'warning', text: `not available on remote hosts: ${this.session.qmpMissing}` });
    } else {
      this.session = new LibvirtSession({ runId, emulator: this.opts.emulator!, memoryMiB, dirtyPagesPerSecond: dirty });
      this.o.onEvent({ kind: 'info', text: `libvirt backend: two libvirtd in the kernel link's namespaces (run ${runId}), ${qemu} (${this.opts.emulator}), ${guest}` });
    }
    const endpoints = await this.session.start();
    this.o.onEvent({ kind: 'info', side: 'source', text: `domain ${this.session.domain} defined and started on the source daemon; the destination daemon is ${this.session.destUri}` });
    this.watchEvents(this.session);
    return endpoints;
  }

  /** States between polls: `virsh event --loop --all` against each daemon (argv; run in the source's namespace, so cleanup finds a leftover). */
  private watchEvents(s: LibvirtRun): void {
    for (const side of ['source', 'destination'] as const) {
      const w = new EventWatch(
        s.virshArgv(side, ['event', '--loop', '--all']),
        (e) => this.onLibvirtEvent(s, side, e),
        (why) => {
          if (!this.stopped) this.o.onEvent({ kind: 'warning', side, text: `${why}; the ${side}'s states are polled (virsh domstate --reason) from now on` });
        },
      );
      w.start();
      this.watches.push(w);
    }
  }

  private onLibvirtEvent(s: LibvirtRun, side: Side, e: EventLine): void {
    if (this.stopped) return;
    const st = stateFromEvent(e, s.domain);
    // A running source is `active` only with a migration job, which only domjobinfo says: the poll decides.
    if (!st || (side === 'source' && st.state === 'running')) return;
    this.eventSeq.set(side, (this.eventSeq.get(side) ?? 0) + 1);
    this.note(side, migrationStatus(side, st, false));
  }

  private get s(): LibvirtRun {
    if (!this.session || this.stopped) throw new Error('the libvirt run is not running');
    return this.session;
  }

  /** The template values a libvirt lab names: the domain and the destination daemon's URI. */
  vars(): Record<string, string> {
    return { 'libvirt.domain': this.s.domain, 'libvirt.dest-uri': this.s.destUri };
  }

  status(side: Side): MigrationStatus {
    return this.statuses.get(side) ?? 'none';
  }

  oobOffered(): boolean {
    // The lab's commands go through virsh; there is no out-of-band path but the extra socket.
    return false;
  }

  async send(side: Side, execute: string, args: Record<string, unknown> | undefined, oob: boolean): Promise<unknown> {
    const s = this.s;
    const plan = mapQmpCommand(side, execute, args, { domain: s.domain, destUri: s.destUri });
    if (plan.kind === 'refused') throw new Error(`refused on the libvirt backend: ${plan.reason}`);
    if (plan.kind === 'qmp-read') {
      const socket = s.qmpSocket(side);
      if (!socket) throw new Error(`${execute}: ${s.qmpMissing}`);
      const q = await QmpClient.connect(socket, { retryUntilMs: 2000, timeoutMs: 10_000 });
      try {
        return oob ? await q.executeOob(execute, args) : await q.execute(execute, args);
      } finally {
        q.close();
      }
    }
    if (plan.note) this.o.onEvent({ kind: 'info', side, text: `libvirt: ${execute} is \`virsh ${plan.args.join(' ')}\`: ${plan.note}` });
    // A QMP command answered: a virsh that printed nothing succeeded, as QMP's `{"return": {}}`.
    const out = await this.virsh(plan.side, plan.args);
    return out === '' ? {} : out;
  }

  /** The one command allowed around libvirt's job (commands.ts EXTRA_MONITOR): the destination's out-of-band migrate-pause. */
  async sendViaExtraMonitor(side: Side, execute: string, _args: Record<string, unknown> | undefined, oob: boolean): Promise<unknown> {
    const problem = extraMonitorProblem(side, execute, oob);
    if (problem) throw new Error(`refused on the libvirt backend: ${problem}`);
    await this.s.pauseDestinationOutOfBand();
    this.o.onEvent({ kind: 'info', side, text: `migrate-pause ${EXTRA_MONITOR_NOTE}` });
    return {};
  }

  /**
   * A virsh subcommand against `side`'s daemon; `migrate` runs in the background (it lasts as
   * long as the migration) unless `awaitEnd` (a lab that expects it to be refused at once).
   */
  async virsh(side: Side, args: string[], opts: { awaitEnd?: boolean } = {}): Promise<string> {
    const problem = virshActionProblem(args);
    if (problem) throw new Error(problem);
    const s = this.s;
    const line = `virsh ${args.join(' ')}`;
    if (!LONG.has(args[0]) || opts.awaitEnd) {
      const r = await s.virsh(side, args, { timeoutMs: SHORT_VIRSH_TIMEOUT_MS });
      return r.stdout.trim();
    }
    if (side !== 'source') throw new Error(`${line}: migrate runs against the source daemon (virsh: source)`);
    let running: Running;
    for (let attempt = 1; ; attempt++) {
      running = (await s.perform({ kind: 'virsh', side, args: [...MIGRATE_KEEPALIVE, ...args], long: true })) as Running;
      // libvirt refuses a bad migrate at once (a resume of a migration that has not failed, a
      // domain that is not there): say so to whoever typed it, not "started" and a warning later.
      let timer: NodeJS.Timeout | undefined;
      const early = await Promise.race([running.done, new Promise<null>((r) => (timer = setTimeout(() => r(null), IMMEDIATE_REFUSAL_MS)))]);
      clearTimeout(timer);
      if (!early || early.exitCode === 0) break;
      const why = early.stderr.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
      if (attempt < RESUME_ATTEMPTS && resumeBeforeQemuPaused(args, why)) {
        this.o.onEvent({ kind: 'info', side, text: `${line}: libvirt answered "${why}": ${RESUME_RETRY_NOTE}; trying again in ${RESUME_RETRY_MS / 1000} s (attempt ${attempt + 1} of ${RESUME_ATTEMPTS})` });
        await new Promise((r) => setTimeout(r, RESUME_RETRY_MS));
        if (this.stopped) throw new Error(`${line}: the run stopped while it waited to try again`);
        continue;
      }
      throw new Error(`${line}: refused by libvirt (exit ${early.exitCode})${why ? `: ${why}` : ''}`);
    }
    this.o.onEvent({ kind: 'info', side, text: `${line}: started (it returns when the migration ends or fails)` });
    const done = running.done.then((r) => {
      if (this.stopped) return;
      const why = r.stderr.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
      this.o.onEvent({ kind: r.exitCode === 0 ? 'info' : 'warning', side, text: `${line}: ${r.exitCode === 0 ? 'completed' : `failed (exit ${r.exitCode})${why ? `: ${why}` : ''}`}` });
    });
    this.background.add(done);
    void done.finally(() => this.background.delete(done));
    return 'started';
  }

  async snapshot(): Promise<Snapshot> {
    const s = this.s;
    // Stamped when the reads start: the virsh calls take most of a second, and the link (read
    // at once) must not look newer than a link change logged while they ran.
    const t = Math.round(performance.now() - this.startedAt);
    const [src, dst, link] = await Promise.all([this.readSource(s), this.readDestination(s), this.linkSnapshot(s)]);
    return { t, source: src, destination: dst, link };
  }

  private async readSource(s: LibvirtRun): Promise<SideSnapshot> {
    const seq = this.eventSeq.get('source') ?? 0;
    const st = await s.state('source').catch(() => null);
    let ram: Partial<RamStats> | undefined;
    let jobActive = false;
    if (st && st.state !== 'shut off') {
      const job = await s.jobInfo().catch(() => null);
      jobActive = job?.jobType === 'Unbounded';
      if (job && jobActive) {
        ram = { total: job.dataTotal ?? 0, transferred: job.dataProcessed ?? 0, remaining: job.dataRemaining ?? 0 };
        // domjobinfo's "Memory bandwidth" (bytes/s) as query-migrate's mbps (megabits/s).
        if (job.memoryBandwidth !== null) ram.mbps = (job.memoryBandwidth * 8) / 1e6;
      }
    }
    const status = this.polled('source', seq, migrationStatus('source', st, jobActive));
    // Stalled: no byte processed by the source's job while pages should move (a silent link).
    const now = performance.now();
    const progress = ram?.transferred ?? 0;
    const moving = status === 'active' || status === 'postcopy-active';
    if (!this.lastProgress || this.lastProgress.value !== progress || !moving) this.lastProgress = { value: progress, at: now };
    const stalledMs = moving ? Math.round(now - this.lastProgress.at) : 0;
    return { side: 'source', alive: st !== null && st.state !== 'shut off', runState: runState(st), status, ram, stalledMs };
  }

  private async readDestination(s: LibvirtRun): Promise<SideSnapshot> {
    const seq = this.eventSeq.get('destination') ?? 0;
    const st = await s.state('destination').catch(() => null);
    const status = this.polled('destination', seq, migrationStatus('destination', st, false));
    return {
      side: 'destination',
      alive: st !== null && st.state !== 'shut off',
      runState: runState(st),
      status,
      stalledMs: 0,
      pages: destinationPages(this.verified, this.recoveries, Math.floor((s.layout?.endAddress ?? 0) / 4096)),
    };
  }

  private async linkSnapshot(s: LibvirtRun): Promise<LinkSnapshot> {
    try {
      if (s.link) return await s.link.snapshot();
    } catch {
      // Reported as down below.
    }
    // Remote hosts: no link of ours, never broken by us ('up' only says so; nothing is measured).
    const up = s.link === null;
    const dir = { state: up ? ('up' as const) : ('down' as const), latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0 };
    return { kind: 'kernel', up, flapping: false, connections: 0, 'source-to-destination': dir, 'destination-to-source': { ...dir } };
  }

  /**
   * A polled status, unless an event gave the side a state while the poll was out (the poll may
   * have read the state before it): then the event's stands, and the next poll reads afresh.
   */
  private polled(side: Side, seqAtStart: number, seen: MigrationStatus): MigrationStatus {
    return (this.eventSeq.get(side) ?? 0) === seqAtStart ? this.note(side, seen) : this.status(side);
  }

  /** Log a state change once, as the Orchestrator does. */
  private note(side: Side, seen: MigrationStatus): MigrationStatus {
    const prev = this.statuses.get(side) ?? 'none';
    // QEMU's query-migrate says completed from then on; libvirt's reason changes once the
    // destination is paused for its memory check ("paused (user)"), which is no new migration.
    const status = prev === 'completed' && seen === 'none' ? 'completed' : seen;
    // A paused destination that runs on (or has already completed: without its events, a fast
    // resume can finish between two polls) was recovered.
    if (side === 'destination' && prev === 'postcopy-paused' && (status === 'postcopy-active' || status === 'completed')) this.recoveries++;
    if (prev !== status) {
      this.statuses.set(side, status);
      this.o.onEvent({ kind: 'state', side, text: `${prev} -> ${status}`, data: { from: prev, to: status } } as Omit<LabEvent, 't'>);
    }
    return status;
  }

  async verify(): Promise<void> {
    if (this.stopped || !this.session) return;
    if (this.session.qmpMissing) {
      this.o.onEvent({ kind: 'warning', side: 'destination', text: `memory not verified: ${this.session.qmpMissing}` });
      return;
    }
    if (this.status('destination') !== 'completed') {
      this.o.onEvent({ kind: 'warning', side: 'destination', text: `memory not verified: the migration did not complete on the destination (status ${this.status('destination')})` });
      return;
    }
    // A completed migration's `virsh migrate` returns within moments (libvirt's Confirm phase);
    // states from events can reach the end of the run before it does: let it log its end
    // before the summary, rather than be killed at stop.
    if (this.background.size) await Promise.race([Promise.allSettled([...this.background]), new Promise((r) => setTimeout(r, 10_000).unref())]);
    try {
      const r = await this.session.verifyDestination();
      this.verified = r.ok;
      this.o.onEvent({ kind: r.ok ? 'info' : 'error', side: 'destination', text: `memory ${r.ok ? 'verified' : 'NOT consistent'} (pmemsave on the extra QMP socket + check): ${r.explanation}` });
    } catch (e) {
      this.o.onEvent({ kind: 'error', side: 'destination', text: `memory check could not run: ${(e as Error).message}` });
    }
  }

  killVm(): Promise<void> {
    return Promise.reject(new Error(LIFECYCLE_REFUSAL));
  }

  startVm(): Promise<void> {
    return Promise.reject(new Error(LIFECYCLE_REFUSAL));
  }

  startRecoverySource(): Promise<void> {
    return Promise.reject(new Error("a recovery source needs the sim backend: it speaks the sim's migration stream, which libvirt's QEMU cannot read"));
  }

  process(): 'vm' {
    return 'vm';
  }

  recoveryFile(): null {
    return null;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.allSettled(this.watches.map((w) => w.stop()));
    try {
      await this.session?.stop();
    } catch (e) {
      this.o.onEvent({ kind: 'warning', text: `${(e as Error).message} (postcopy-lab cleanup removes what is left)` });
    }
    await Promise.allSettled([...this.background]);
  }
}

const LIFECYCLE_REFUSAL = 'on the libvirt backend the VMs are libvirt domains: use a virsh action (virsh destroy, start) instead of a vm action';

/** The destination's memory verdict and recoveries as the snapshot carries them; libvirt gives no page counters (all 0). */
function destinationPages(verified: boolean | null, recoveries: number, guestPages: number): PagesInfo {
  return {
    'page-size': 4096,
    // The guest's RAM below its written range's end; 'received' is known only once it verified.
    total: guestPages,
    sent: 0,
    received: verified ? guestPages : 0,
    requested: 0,
    'in-flight': 0,
    missing: 0,
    'duplicates-discarded': 0,
    resent: 0,
    'blocked-vcpus': 0,
    'fault-latency-us': { p50: 0, p99: 0, count: 0 },
    'blocktime-ms': 0,
    'blocktime-worst-vcpu-ms': 0,
    'wire-bytes': 0,
    walker: { active: false, position: 0, total: 0, done: false },
    guest: { progress: 0, 'ops-per-second': 0, 'window-ms': 0 },
    recoveries,
    'recovery-attempts': recoveries,
    verified,
    // libvirt gives no page counts for the destination: the zeros above are placeholders.
    'counts-unknown': true,
  };
}
