/**
 * The shapes every part of postcopy-lab agrees on: migration states, the live Snapshot the
 * UI and the lab conditions read, and the Link interface that the relay and the kernel link
 * both implement. Kept free of runtime code so any module (and any test) can import it.
 */

/** QEMU's MigrationStatus values that the sim uses, spelled as QEMU spells them. */
export const MIGRATION_STATES = [
  'none',
  'setup',
  'active',
  'device',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover-setup',
  'postcopy-recover',
  'completed',
  'failed',
  'cancelling',
  'cancelled',
] as const;
export type MigrationStatus = (typeof MIGRATION_STATES)[number];

/** QEMU's RunState values as `query-status` reports them (the subset the sim reaches). */
export type RunState = 'running' | 'paused' | 'inmigrate' | 'postmigrate' | 'finish-migrate' | 'prelaunch' | 'shutdown';

export type Side = 'source' | 'destination';

/** A direction of the link, named from the migration's point of view. */
export type Direction = 'source-to-destination' | 'destination-to-source';
export const DIRECTIONS: readonly Direction[] = ['source-to-destination', 'destination-to-source'];

/** The `ram` object of `query-migrate`, with QEMU's member names. */
export interface RamStats {
  total: number;
  transferred: number;
  remaining: number;
  duplicate: number;
  normal: number;
  'normal-bytes': number;
  'page-size': number;
  'pages-per-second': number;
  mbps: number;
  'dirty-pages-rate': number;
  'dirty-sync-count': number;
  'precopy-bytes': number;
  'postcopy-bytes': number;
  'postcopy-requests': number;
}

/**
 * What `x-query-pages` returns: the sim's per-page view, summarised.
 *
 * The counters, defined once. The panel, the drill's lines, the end screen and `--json` all
 * read these fields and nothing else; a field that does not apply to a side is 0 there and the
 * panel shows `–`.
 *
 * | field                     | side        | meaning                                                                 |
 * |---------------------------|-------------|-------------------------------------------------------------------------|
 * | `sent`                    | source      | pages put on the wire at least once (a page sent again counts once; bytes are query-migrate's `transferred`) |
 * | `received`                | destination | pages placed (in precopy a placed page may be replaced by a newer copy)  |
 * | `resent`                  | source      | pages sent after a recovery whose content had gone out before (lost in flight, or sent twice); a page the guest wrote since and sent anew is a new copy, not a re-send |
 * | `duplicates-discarded`    | destination | arrivals dropped because the page was already placed (UFFDIO_COPY's EEXIST) |
 * | `requested` / `in-flight` | destination | pages someone waits for / of those, requests sent on the current connection |
 * | `missing`                 | both        | source: pages still to send as the source sees them (precopy: this pass plus dirtied since); destination: neither placed nor requested |
 * | `blocked-vcpus`           | destination | vCPUs blocked on missing pages right now (with threads per vCPU: every thread blocked) |
 * | `blocktime-ms`            | destination | sum over vCPUs of the time each was blocked: vCPU·ms, so 2 vCPUs blocked 1 s = 2000 |
 * | `blocktime-worst-vcpu-ms` | destination | the longest total blocked time of any single vCPU, ms                   |
 * | `wire-bytes`              | both        | bytes moved on this side's migration connection(s): source sent, destination received; "stalled" is this not moving |
 * | `guest.ops-per-second`    | both        | guest operations per second done on this side, over the last `window-ms` (≈2 s) |
 *
 * Remaining pages: the source's is `missing`; the destination's is `total - received`, which
 * means something only in postcopy (in precopy the source may still replace every page).
 */
export interface PagesInfo {
  'page-size': number;
  total: number;
  /** Source: pages put on the wire at least once. Destination: 0 (see `received`). */
  sent: number;
  /** Destination: pages placed. Source: 0 (the source cannot know; see `sent`). */
  received: number;
  /** Destination: pages a vCPU or the walker waits for (request sent or queued while the link is down). Source: requests queued. */
  requested: number;
  /** Destination: of `requested`, those whose request has been sent on the current connection. */
  'in-flight': number;
  /** Destination: pages neither placed nor requested. Source: pages still to send. */
  missing: number;
  /** Destination: pages that arrived when already present and were dropped (UFFDIO_COPY's EEXIST). Source: 0. */
  'duplicates-discarded': number;
  /** Source: pages sent after a recovery whose current content had been sent before (each re-sending counts). Destination: 0 (what arrives again is `duplicates-discarded` or placed). */
  resent: number;
  /** Destination: vCPUs currently blocked on missing pages (every one of their guest threads blocked). */
  'blocked-vcpus': number;
  /** Destination: page-fault round trip, request sent to page placed, microseconds. */
  'fault-latency-us': { p50: number; p99: number; count: number };
  /** Destination: time vCPUs spent blocked on missing pages (every thread blocked), summed over vCPUs (vCPU·ms), including blocks under way. */
  'blocktime-ms': number;
  /** Destination: the most any single vCPU has been blocked in all, ms. */
  'blocktime-worst-vcpu-ms': number;
  /** Bytes moved on the migration connection(s) in this migration: source sent, destination received. */
  'wire-bytes': number;
  walker: { active: boolean; position: number; total: number; done: boolean };
  /**
   * The guest on this side: `progress` is its operations in all (carried over from the source
   * at switchover), `ops-per-second` those done here over the last `window-ms` (0 before the
   * first measurement: the rate is unknown then, not zero).
   */
  guest: { progress: number; 'ops-per-second': number; 'window-ms': number };
  /** Completed recoveries (resume handshakes) in this migration. */
  recoveries: number;
  /** Recovery attempts started: source `migrate resume=true` calls; destination recovery channels accepted. */
  'recovery-attempts': number;
  /** null until the migration completes; then whether every page matched the source's frozen content. */
  verified: boolean | null;
  /** Destination: pages whose content did not match (first few), when verification failed. */
  mismatches?: number[];
  /**
   * Destination: of `received`, pages placed from a recovery file (served by a recovery source,
   * src/recovery/) rather than by the live source. Absent before any recovery source connected.
   */
  'from-file'?: number;
  /**
   * True where the backend reports no page counts for this side (libvirt's destination: its
   * monitor is locked during the incoming job): `received`, `requested`, `missing` and the rest
   * are unknown, not zero, and only `recoveries` and `verified` mean anything.
   */
  'counts-unknown'?: boolean;
  /**
   * True where the backend cannot see vCPU blocktime (QEMU's destination without the
   * postcopy-blocktime capability): `blocktime-ms`, `blocktime-worst-vcpu-ms` and
   * `blocked-vcpus` are unknown, not zero.
   */
  'blocktime-unknown'?: boolean;
  /**
   * True where blocktime is measured but not yet reported: QEMU's destination with
   * postcopy-blocktime on gives it in query-migrate only once the incoming migration has
   * completed (7.2 and 10.0). Until then the blocktime fields are unknown, not zero.
   */
  'blocktime-at-end'?: boolean;
  /**
   * True where `received` is not counted at the destination but is what the source no longer
   * has to send (QEMU: its total less `remaining`): the pages sent and not written since. It
   * goes down when a dirty-bitmap sync puts back pages the guest wrote again (at the
   * switchover), so the panel says "current" rather than "received" for it.
   */
  'received-current'?: boolean;
  /**
   * Counters this backend does not have for this side (QEMU: requests in flight, discarded
   * duplicates and vCPUs blocked now on the destination, re-sent pages on the source):
   * unknown, not zero.
   */
  unreported?: Array<'requested' | 'duplicates-discarded' | 'resent' | 'blocked-vcpus'>;
  /**
   * A coarse map of guest memory when `map-cells` is given: one character per cell, each a
   * range of pages. 'R' all present, 'r' some present, 'q' some requested or in flight, '.' none, 'F' all present
   * and some of them placed from a recovery file.
   */
  map?: string;
}

/** One side as the driver last saw it. Fields mirror QMP replies; `alive` is ours. */
export interface SideSnapshot {
  side: Side;
  alive: boolean;
  /** query-status .status */
  runState: RunState | 'unknown';
  /** query-migrate .status ('none' before any migration) */
  status: MigrationStatus;
  ram?: Partial<RamStats>;
  pages?: PagesInfo;
  /** Last error text reported by query-migrate's error-desc, if any. */
  error?: string;
  /**
   * Milliseconds since a byte last moved on this side's migration connection(s) (`wire-bytes`;
   * for QEMU's destination, the bytes the link delivered to it), counted only while the state
   * says pages should move (`active`, `postcopy-active`); 0 otherwise. A silent blackhole shows
   * up here: QEMU does not notice it, the operator sees the wire go quiet.
   */
  stalledMs: number;
  /**
   * The vCPU throttle in force on this side, percent (query-migrate's `cpu-throttle-percentage`,
   * set by auto-converge; 0 when none, and on a destination). Absent where the side was not read.
   */
  throttle?: number;
  /**
   * The guest's speed on this side (the backend's `readGuest`; absent where it cannot say):
   * `rate` operations per second over the last ~2 s, `nominal` its normal (unthrottled,
   * unblocked) speed, `percent` the one as a percentage of the other.
   */
  guest?: SideGuest;
  /**
   * The source's recovery file as its query-migrate reports it (`x-recovery-file`: mode, file,
   * state, digest once written, sizes); absent when no x-recovery-file capability is on.
   */
  recoveryFile?: RecoveryFileInfo;
  /**
   * Present when this side is a recovery source (postcopy-lab recovery-source) that took the
   * lost source's place: query-migrate's `x-recovery-source` (pages held and served, and after
   * a resume what the destination lacked and which of those the file did not hold).
   */
  recoverySource?: RecoverySourceInfo;
  /**
   * A QEMU source: the last pmemsave it accepted (its guest-physical RAM in a file). Ours: QEMU
   * reports no such thing. qemu-recovery-file waits for it before the source host is lost.
   */
  savedRam?: SavedRam;
}

/** A QEMU source's last accepted pmemsave: where, how much, and whether it holds all of guest RAM. */
export interface SavedRam {
  file: string;
  bytes: number;
  /** `bytes` covers the whole of guest RAM (`${guest.ram-bytes}`): a stand-in source can serve it. */
  complete: boolean;
}

/** query-migrate's `x-recovery-file` on a sim source (src/recovery/spill.ts). */
export interface RecoveryFileInfo {
  mode: 'on-failure' | 'continuous';
  file: string;
  /** spilling, writing, written, failed. */
  state: string;
  'window-bytes': number;
  'bytes-written': number;
  /** The guest's identity (sha-256 of the frozen versions), once the file is written. */
  digest?: string;
  'file-bytes'?: number;
  'held-pages'?: number;
  'unsent-pages'?: number;
  'window-pages'?: number;
  'write-ms'?: number;
  'elapsed-ms'?: number;
  error?: string;
}

/** query-migrate's `x-recovery-source` on a recovery source (src/recovery/recovery-source.ts). */
export interface RecoverySourceInfo {
  file: string;
  'held-pages': number;
  'served-pages': number;
  'window-bytes': number;
  'destination-lacked'?: number;
  'missing-pages'?: number;
  'missing-first'?: number[];
  'minimum-bytes'?: number;
}

export interface SideGuest {
  rate: number;
  nominal: number;
  percent: number;
}

export type LinkDirectionState = 'up' | 'cut' | 'blackhole' | 'down';

export interface LinkDirectionSnapshot {
  state: LinkDirectionState;
  latencyMs: number;
  jitterMs: number;
  /** Bytes per second; 0 means unlimited. */
  rateBytesPerSec: number;
  lossPercent: number;
  bytesForwarded: number;
  bytesDropped: number;
}

export interface LinkSnapshot {
  kind: 'relay' | 'kernel';
  /** Derived convenience flags for lab conditions. */
  up: boolean;
  flapping: boolean;
  connections: number;
  /**
   * Relay only: connections the source made that the relay could not pass on, because the
   * destination refused them (nothing listened behind the link yet). The relay has accepted
   * them, so the source sees a reset, not "connection refused"; on the kernel link the source
   * is refused itself and this is absent.
   */
  refused?: number;
  /**
   * Relay only: of `refused`, those made while another connection to the same destination
   * address was open: a second channel the destination did not expect (postcopy-preempt's
   * channel to a destination without the capability), not a source that came too early.
   */
  refusedSecond?: number;
  'source-to-destination': LinkDirectionSnapshot;
  'destination-to-source': LinkDirectionSnapshot;
}

/** One published view of the whole lab, read by the UI and by lab conditions. */
export interface Snapshot {
  /** Milliseconds since the run started. */
  t: number;
  source: SideSnapshot;
  destination: SideSnapshot;
  link: LinkSnapshot;
}

/**
 * A fault (or a repair) applied to the link. `direction` defaults to both. Units are explicit:
 * milliseconds, bytes per second, percent.
 */
export type LinkFault =
  | { kind: 'up'; direction?: Direction | 'both' }
  | { kind: 'cut'; direction?: Direction | 'both' }
  | { kind: 'blackhole'; direction?: Direction | 'both' }
  | { kind: 'down'; direction?: Direction | 'both' }
  | { kind: 'latency'; direction?: Direction | 'both'; ms: number; jitterMs?: number }
  | { kind: 'loss'; direction?: Direction | 'both'; percent: number }
  | { kind: 'bandwidth'; direction?: Direction | 'both'; bytesPerSec: number }
  | { kind: 'flap'; direction?: Direction | 'both'; upMs: number; downMs: number; mode?: 'cut' | 'blackhole'; count?: number };

/** A network address a migration URI can name. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * The two listening addresses a lab needs, each seen from both ends: where the destination
 * listens (`listen`, for migrate-incoming / migrate-recover) and where the source connects to
 * reach it (`connect`, for migrate). Through the relay they differ; on the kernel link they are
 * the same address inside the destination's namespace.
 */
export interface LinkEndpoints {
  incoming: { listen: HostPort; connect: HostPort };
  recover: { listen: HostPort; connect: HostPort };
}

/**
 * The link between source and destination. Two implementations: the userspace relay
 * (src/link/relay*.ts) and the kernel link (src/kernel/*). The orchestrator calls start()
 * before starting the VMs, wraps each VM's command with `wrapCommand` (the kernel link runs
 * each VM inside its network namespace), applies faults, and calls stop() on every exit path.
 */
export interface Link {
  readonly kind: 'relay' | 'kernel';
  start(): Promise<LinkEndpoints>;
  /** Returns the argv to run a VM of `side` on this link (identity for the relay). */
  wrapCommand(side: Side, file: string, args: string[]): { file: string; args: string[] };
  apply(fault: LinkFault): Promise<void>;
  /** Remove every fault: both directions up, no latency, no cap. */
  restore(): Promise<void>;
  snapshot(): Promise<LinkSnapshot>;
  /** Idempotent; never throws for things that are already gone. */
  stop(): Promise<void>;
}

/** A line of the run's event log (also what the JSONL recorder writes). */
export interface LabEvent {
  /** Milliseconds since the run started. */
  t: number;
  kind: 'state' | 'event' | 'fault' | 'qmp' | 'step' | 'hint' | 'hold' | 'info' | 'warning' | 'error';
  side?: Side;
  text: string;
  data?: unknown;
}

export interface StepView {
  index: number;
  title: string;
  text: string;
  hints: string[];
  /** How many hints the person has asked to see. */
  hintsShown: number;
  status: 'pending' | 'active' | 'done' | 'failed';
  /** The step's `do`, rendered as the commands a person would type (for "show me"). */
  actions: string[];
  /** The step's `until` condition source text. */
  until?: string;
  /** The step's own `do` breaks the link (a fault key is then part of the step, not a mistake). */
  breaksLink?: boolean;
  /** The step's own `do` starts a fresh migration (a failed one is then restarted, not a dead end). */
  startsMigration?: boolean;
  /** The step's own `do` starts a fresh destination (a spent one, failed or cancelled, is then replaced, not reused). */
  startsFreshDestination?: boolean;
  /** The kinds of link-breaking fault the step's own `do` applies ('cut', 'blackhole', 'down'): another kind is a mistake worth a question. */
  linkFaults?: LinkFault['kind'][];
  /** The link-breaking faults the step's own `do` applies before its recovery commands (reach.ts faultsBeforeRecovery). */
  faultsBeforeRecovery?: LinkFault[];
  /** The sides the step's own `do` sends a postcopy recovery command to (migrate-recover, migrate with resume). */
  recoverySides?: Side[];
  /** The step's own `do` kills, restarts or replaces a VM (qemu-recovery-file's "Lose the source host"). */
  actsOnVm?: boolean;
  /**
   * When the step's own `do` is only VM actions, which no console command can do (postcopy-preempt's
   * "Fresh VMs"): what `s` does, as the key bar names it ("restart both VMs"). s is then the step's key.
   */
  vmOnly?: string;
  /** The step's own `do` sends migrate-pause (blackhole's "Pause both sides yourself"): p is its key. */
  pauses?: boolean;
}

/**
 * Why a run ended without success, as a value (callers compare these, never message texts):
 * - `condition-timeout`: a step's `until` (or a `wait-until`) stayed false past its timeout;
 * - `step-unreachable`: the migration moved past the point where the step could happen;
 * - `refused`: a side refused a command of the lab (or accepted one the lab expected to fail);
 * - `setup`: starting the VMs and the link, or the lab's setup commands, failed;
 * - `expect`: a final expectation does not hold;
 * - `verification`: the destination's memory was not verified;
 * - `vm-died`: a VM process ended on its own;
 * - `guest-lost`: both sides are in states from which neither can run the guest again;
 * - `stopped`: someone stopped the lab (quit, a signal); `timeout`: the drill's --timeout;
 * - `error`: anything else (a bug: the message says what).
 */
export type FailureReason =
  | 'condition-timeout'
  | 'step-unreachable'
  | 'refused'
  | 'setup'
  | 'expect'
  | 'verification'
  | 'vm-died'
  | 'guest-lost'
  /** A recovery source refused to resume: the destination lacks pages its recovery file does not hold. */
  | 'recovery-incomplete'
  | 'stopped'
  | 'timeout'
  | 'error';

/** Why the session is being stopped from outside. */
export type StopReason = Extract<FailureReason, 'stopped' | 'timeout'>;

export interface RunSummary {
  ok: boolean;
  labId: string;
  durationMs: number;
  verified: boolean;
  /**
   * Why the run failed, when it did: the reason, which step, which condition, the values seen.
   * `reason` is always set by the session; records written before it existed lack it.
   */
  failure?: { reason?: FailureReason; step?: number; stepTitle?: string; condition?: string; seen?: Record<string, unknown>; message: string };
  /**
   * The counters at the end, from the final snapshot with PagesInfo's definitions (see there).
   * Optional ones are absent in records written before they existed.
   */
  /** Source `sent`: pages put on the wire at least once. */
  pagesSent?: number;
  /** The source at the end was a recovery source in the lost source's place: `pagesSent` is what it sent, not the whole migration's. */
  sentByRecoverySource?: true;
  /** Destination `received`: pages placed. */
  pagesReceived?: number;
  /** Destination `from-file`: of those, pages a recovery source served from its file (absent when none connected). */
  pagesFromFile?: number;
  /** Source `resent`: pages sent again after a recovery. */
  pagesResent: number;
  /** Destination `duplicates-discarded`. */
  duplicatesDiscarded: number;
  /** Destination `blocktime-ms`: summed over vCPUs, in vCPU·ms (not wall-clock time). */
  blocktimeMs: number;
  /** Destination `blocktime-worst-vcpu-ms`: the most one vCPU was blocked, ms. */
  blocktimeWorstVcpuMs?: number;
  /** Destination `blocktime-unknown`: blocktime was not measured (QEMU without postcopy-blocktime), said so, never as zero. */
  blocktimeNotMeasured?: true;
  /** Destination `blocktime-at-end` at the end: measured, but the run ended before QEMU reported it (it does on completion). */
  blocktimeAtEnd?: true;
  /** Counters the backend does not have (PagesInfo.unreported): said as "not reported", never as zeros. */
  notReported?: Array<'pagesResent' | 'duplicatesDiscarded'>;
  /** Completed recoveries (the destination's count). */
  recoveries: number;
  /**
   * The backend reports no page counters (libvirt): pagesSent, pagesResent, duplicatesDiscarded
   * and blocktime are placeholders, said as "not reported", never as zeros.
   */
  countsNotReported?: true;
  /** The lab's closing text (`summary-text`), on a successful run only. */
  summaryText?: string;
  /**
   * A lab whose declared outcome is a failure (`outcome: { failure: recovery-incomplete }`)
   * ended exactly so: the run is ok, and this says how it ended.
   */
  expectedFailure?: { reason: FailureReason; message: string };
  /**
   * A failure the lab declares for this QEMU version (`expected-failures`: the bug it shows):
   * the run still failed (a drill exits 1), but the person did nothing wrong, and the end screen
   * says the bug was reproduced rather than "Lab failed". "QEMU 7.2: <the lab's words>".
   */
  knownBug?: string;
}

/** Why the waiting step can no longer happen (a VM's death ends the run instead). */
export type UnreachableCause = 'migration-failed' | 'migration-completed' | 'switched-to-postcopy';

/** A step that can no longer happen, as the interactive lab says it (src/lab/reach.ts). */
export interface Unreachable {
  cause: UnreachableCause;
  /** The step, 1-based. */
  step: number;
  /** What happened and why, in one or two sentences. */
  message: string;
  /** True when redoing the earlier steps on the same VMs can bring the step back (a precopy failure). */
  retry: boolean;
}

/** What the screen shows about the current step's hold (src/lab/hold.ts). */
export interface HoldStatus {
  /** The step (0-based) the hold belongs to. */
  step: number;
  /** held: in effect; idle: its `while` is false; released: by the person (Space). */
  state: 'held' | 'idle' | 'released';
  /** The held values in words: "max-postcopy-bandwidth 64 KiB/s". */
  text: string;
  /** The slowest held rate, bytes/s, for "held for you at 64 KiB/s"; null when no rate is held. */
  rate: number | null;
}

/** What the lab session publishes; the TUI renders it, the drill prints it. */
export interface SessionState {
  snapshot: Snapshot | null;
  /**
   * The destination took a migrate-recover and listens for the source's resume (until it takes
   * a channel or moves on): the paused lines then show the resume alone.
   */
  recoverListening?: boolean;
  steps: StepView[];
  currentStep: number;
  /** Bounded: the most recent events only. */
  events: LabEvent[];
  /** One point per sample, bounded to the last minute. */
  /** `remaining` is null before the source's migration starts (query-migrate says 0 then, which is not what is left). */
  history: { t: number; mbps: number; remaining: number | null }[];
  finished: RunSummary | null;
  /** Interactive: the current step can no longer happen, and why; null (or absent) while it can. */
  blocked?: Unreachable | null;
  /** Interactive: the current step went another way (its lab's `missed`), and the way back; null while it has not. */
  missed?: { step: number; text: string } | null;
  /** A retry or rewind replaying steps for the person: the step being replayed (1-based) and the step it leads to. */
  replaying?: { why: 'retry' | 'rewind'; step: number; to: number } | null;
  /** The run's addresses (`incoming.connect`, `recover.listen` ...), once the link is up. */
  addresses?: Readonly<Record<string, string>>;
  /** The current step's hold (src/lab/hold.ts); absent or null when it has none. */
  hold?: HoldStatus | null;
  /** When the current step began: its index and the link's `refusedSecond` then (a refusal during the step is the step's). */
  stepStart?: { step: number; refusedSecond: number } | null;
}

/**
 * The one lab runner's interface, served to both the TUI and the headless drill. State lives
 * outside React: subscribe() notifies on change, getState() returns the current immutable view.
 */
export interface LabSessionApi {
  readonly labId: string;
  readonly title: string;
  readonly summary: string;
  /** The lab's closing text (`summary-text`), for the end of a successful run. */
  readonly summaryText: string;
  subscribe(listener: () => void): () => void;
  getState(): SessionState;
  /** Every event as it happens, unbounded (SessionState.events keeps only the recent ones). */
  onEvent(listener: (e: LabEvent) => void): () => void;
  /** Run a QMP command on one side; resolves to the `return` value, rejects with a QMP error. */
  qmp(side: Side, execute: string, args?: Record<string, unknown>): Promise<unknown>;
  /** A console line such as `migrate-recover {"uri": "tcp:127.0.0.1:4445"}`; text is the reply as shown. */
  qmpLine(side: Side, line: string): Promise<{ ok: boolean; text: string }>;
  applyLink(fault: LinkFault): Promise<void>;
  restoreLink(): Promise<void>;
  /** Run the current step's `do` for the person; rejects with what was refused, so the screen says so. */
  showMe(): Promise<void>;
  /** Reveal the next hint of the current step. */
  nextHint(): void;
  /**
   * Redo the steps before the waiting one on the same VMs, then wait for it again; false when
   * the state offers no retry (SessionState.blocked.retry).
   */
  retry(): boolean;
  /** Space: release the current step's hold, or hold again. */
  toggleHold(): void;
  /** Stop every process and remove everything the run created. Idempotent. */
  stop(): Promise<void>;
}
