/**
 * postcopy-lab's command line. This file is the one owner of process exit and of signal
 * handling: commands return exit codes, and every started session is stopped before we exit.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import chalk from 'chalk';
import { LabError, findLab, listLabs } from './lab/load.js';
import type { Lab } from './lab/schema.js';
import { LabSession } from './lab/runner.js';
import { RelayLink } from './link/relay.js';
import type { Link } from './types.js';
import { EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, runDrill } from './commands/drill.js';
import { ownsLifecycle, type AnyBackend, type BackendKind, type VmBackend } from './driver/backend.js';
import { BACKEND_CHOICES, BACKEND_KINDS, makeBackend, makeVmBackend } from './driver/select-backend.js';
import { parseEmulatedVersion, type EmulatedVersion } from './sim/versions.js';
import { backendProblem, versionProblem } from './lab/backend-fit.js';
import { QemuNotFoundError } from './qemu/launcher.js';
import { stateDir } from './util/state-dir.js';
import { parseDuration } from './lab/duration.js';
import type { CompareFlags } from './compare/options.js';
import { parseRemoteHosts, remoteLabProblem, RemoteUriError, type RemoteHosts } from './libvirt/remote.js';
import { isCommand, PKG_VERSION, unknownCommandMessage, USAGE } from './commands/usage.js';
import { elsewhere, orderLabs, whereLabRuns } from './commands/list.js';
import { wrapWords } from './ui/format.js';

export const LABS_DIR = fileURLToPath(new URL('../../labs', import.meta.url));
async function orderedLabs(opts?: Parameters<typeof listLabs>[1]) {
  return orderLabs(await listLabs(LABS_DIR, opts));
}

class UsageError extends Error {}

type Cleanup = () => Promise<void>;
/**
 * What must run before the process exits: stopping lab sessions (their VMs, relay, namespaces)
 * and the TUI's terminal restore. Commands add and remove their own; exitWith runs them all.
 */
const cleanups = new Set<Cleanup>();
let exiting: Promise<never> | null = null;

/**
 * The only way out of the process. The first caller's code wins: a signal arriving while a
 * command finishes (or a command finishing because a signal stopped its session) does not
 * change it. `error` is printed after the cleanups, so it lands on the restored terminal
 * rather than on the TUI's alternate screen.
 */
function exitWith(code: number, error?: unknown): Promise<never> {
  exiting ??= (async () => {
    await Promise.allSettled([...cleanups].map((c) => c()));
    if (error !== undefined) process.stderr.write(`postcopy-lab: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(code);
  })();
  return exiting;
}

/** Exit codes for signals, as a shell reports them: 128 + the signal's number. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

function installSignalHandlers(): void {
  for (const [signal, code] of Object.entries(SIGNAL_EXIT)) {
    process.on(signal, () => {
      // A second Ctrl-C while we clean up means "now": the person chose not to wait.
      if (exiting && signal === 'SIGINT') process.exit(code);
      void exitWith(code);
    });
  }
  // A bug anywhere still stops every child and gives the terminal back.
  process.on('uncaughtException', (err) => void exitWith(EXIT_FAILED, err));
  process.on('unhandledRejection', (err) => void exitWith(EXIT_FAILED, err));
}

/** A fresh JSONL record path under the state dir; keeps the newest 50 runs. */
function defaultRecordPath(labId: string): string | undefined {
  try {
    const dir = path.join(stateDir(), 'runs');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const old = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
    for (const f of old.slice(0, Math.max(0, old.length - 49))) rmSync(path.join(dir, f), { force: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    return path.join(dir, `${stamp}-${labId}.jsonl`);
  } catch {
    return undefined;
  }
}

async function makeLinkFactory(kind: string, seed?: number): Promise<(runtimeDir: string) => Link> {
  // The relay's jitter and loss draws follow the run's seed too, so a drill replays the same faults.
  if (kind === 'relay') return (runtimeDir) => new RelayLink({ runtimeDir, seed });
  // Remote libvirt hosts: the backend runs no link, so nothing may ask for one.
  if (kind === 'none') return () => {
    throw new Error('there is no link on remote libvirt hosts (--link none)');
  };
  if (kind === 'kernel') {
    const { KernelLink } = await import('./kernel/kernel-link.js');
    const runId = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`.slice(0, 8);
    return () => new KernelLink({ runId });
  }
  throw new UsageError(`--link: '${kind}' is not a link (expected relay or kernel)`);
}

function num(v: string | undefined, what: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi) throw new UsageError(`${what}: '${v}' must be a number from ${lo} to ${hi}`);
  return n;
}

/**
 * --timeout: seconds, as before, or a duration like --learner-delay's (`30m`): a drill with
 * `--learner-delay 150s --timeout 30m` was refused for the second, which takes the first's form.
 */
function timeoutOption(v: string | undefined): number {
  if (v === undefined) return 300_000;
  if (/^\d+(\.\d+)?$/.test(v)) return num(v, '--timeout', 1, 86400)! * 1000;
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    throw new UsageError(`--timeout: '${v}' must be seconds from 1 to 86400 or a duration like 90s or 30m`);
  }
  if (ms < 1000 || ms > 86_400_000) throw new UsageError(`--timeout: '${v}' must be seconds from 1 to 86400 or a duration like 90s or 30m`);
  return ms;
}

function learnerDelay(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseDuration(v);
  } catch {
    throw new UsageError(`--learner-delay: '${v}' must be a duration like 30s, 500ms or 1m`);
  }
}

/**
 * A lab that runs on one backend only, and not the sim (qemu-recovery-file, the libvirt labs),
 * runs there without --backend: `postcopy-lab lab libvirt-double-failure` should not be an
 * error that names the flag it could have assumed. An explicit --backend or --qemu wins.
 */
async function withLabBackend(idOrPath: string | undefined, values: DrillFlags): Promise<DrillFlags> {
  if (!idOrPath || values.backend !== undefined || values.qemu !== undefined) return values;
  const lab = await findLab(idOrPath, LABS_DIR).catch(() => null);
  if (!lab || lab.backends.includes('sim')) return values;
  return { ...values, backend: lab.backends[0] };
}

async function loadLabOrExplain(idOrPath: string | undefined): Promise<Lab> {
  if (!idOrPath) throw new UsageError('which lab? Give a lab id (see `postcopy-lab list`) or a path to a lab file');
  return findLab(idOrPath, LABS_DIR);
}

async function main(argv: string[]): Promise<number> {
  // A real QEMU destination served from its lost source's saved RAM (src/qemu-recovery).
  if (argv[0] === 'recovery-source' && argv.includes('--qemu-frozen')) {
    const { runQemuRecoverySource, QemuRecoveryUsageError } = await import('./qemu-recovery/command.js');
    return runQemuRecoverySource(argv.slice(1), undefined, (c) => cleanups.add(c)).catch((e: unknown) => {
      throw e instanceof QemuRecoveryUsageError ? new UsageError(e.message) : e;
    });
  }
  // The recovery commands take their own options (a VM-like process and a file tool).
  if (argv[0] === 'recovery-source' || argv[0] === 'recovery-file') {
    const { runRecoverySource, runRecoveryFile, RecoveryUsageError } = await import('./recovery/command.js');
    const { RecoveryFileError } = await import('./recovery/format.js');
    try {
      return argv[0] === 'recovery-source' ? await runRecoverySource(argv.slice(1), (c) => cleanups.add(c)) : runRecoveryFile(argv.slice(1));
    } catch (e) {
      if (e instanceof RecoveryUsageError || e instanceof RecoveryFileError) throw new UsageError(e.message);
      throw e;
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        seed: { type: 'string' },
        timeout: { type: 'string' },
        link: { type: 'string' },
        backend: { type: 'string' },
        'source-uri': { type: 'string' },
        'dest-uri': { type: 'string' },
        qemu: { type: 'string' },
        emulate: { type: 'string' },
        record: { type: 'string' },
        'no-record': { type: 'boolean', default: false },
        'no-compare': { type: 'boolean', default: false },
        verbose: { type: 'boolean', short: 'v', default: false },
        hold: { type: 'boolean', default: false },
        'learner-delay': { type: 'string' },
        // compare's (src/compare/options.ts says what each takes)
        memory: { type: 'string' },
        vcpus: { type: 'string' },
        workload: { type: 'string' },
        'dirty-rate': { type: 'string' },
        'read-rate': { type: 'string' },
        bandwidth: { type: 'string' },
        latency: { type: 'string' },
        threads: { type: 'string' },
        'max-passes': { type: 'string' },
        'max-seconds': { type: 'string' },
        'postcopy-after': { type: 'string' },
        'max-cpu-throttle': { type: 'string' },
        strategies: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/, ''));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return EXIT_OK;
  }
  if (values.version) {
    process.stdout.write(PKG_VERSION + '\n');
    return EXIT_OK;
  }
  if (process.env.NO_COLOR) chalk.level = 0;
  const [word, ...rest] = positionals;
  if (word !== undefined && !isCommand(word)) throw new UsageError(unknownCommandMessage(word));
  const command = word;
  // Checked for every command, so a misspelt backend is refused even where it is not used.
  parseEmulate(values.emulate, parseBackend(values.backend, values.qemu));
  parseRemote(values, parseBackend(values.backend, values.qemu));

  switch (command) {
    case 'drill':
      return drillCommand(rest[0], await withLabBackend(rest[0], values), argv);
    case 'compare':
      return compareCommand(values);
    case 'list': {
      const labs = await orderedLabs({
        onError: (e) => process.stderr.write(`${e.message}\n`),
      });
      if (values.json) for (const l of labs) process.stdout.write(JSON.stringify(l) + '\n');
      else {
        const w = Math.max(...labs.map((l) => l.id.length));
        // On a terminal, each summary wrapped to its width under the id's column (lines of 150
        // to 268 characters ran past an 80-column one); piped, one line a lab, for grep.
        const cols = process.stdout.isTTY ? process.stdout.columns : undefined;
        for (const l of labs) {
          const where = whereLabRuns(l);
          // The tag kept whole on one line (a private-use character for its spaces while wrapping: \s matches no-break ones).
          const text = `${l.summary}${where ? ` ${where.replaceAll(' ', '\ue000')}` : ''}`;
          const lines = (cols && cols - w - 2 >= 30 ? wrapWords(text, cols - w - 2) : [text]).map((x) => x.replaceAll('\ue000', ' '));
          lines.forEach((line, i) => {
            const body = where && i === lines.length - 1 && line.endsWith(where) ? `${line.slice(0, -where.length)}${chalk.dim(where)}` : line;
            process.stdout.write(`${i === 0 ? chalk.bold(l.id.padEnd(w)) : ' '.repeat(w)}  ${body}\n`);
          });
        }
      }
      return EXIT_OK;
    }
    case 'doctor': {
      const { runDoctor, formatDoctor } = await import('./kernel/doctor.js');
      const report = await runDoctor();
      process.stdout.write(values.json ? JSON.stringify(report) + '\n' : formatDoctor(report, { color: chalk.level > 0 }) + '\n');
      return EXIT_OK;
    }
    case 'cleanup': {
      const { cleanupLeftovers, formatCleanup } = await import('./kernel/cleanup.js');
      const result = await cleanupLeftovers();
      process.stdout.write((values.json ? JSON.stringify(result) : formatCleanup(result)) + '\n');
      return EXIT_OK;
    }
    case 'replay': {
      if (!rest[0]) throw new UsageError('which record? Give the path of a run record (.jsonl): the drill prints it at the end');
      const { runReplay } = await import('./commands/replay.js');
      return runReplay(rest[0], { verbose: values.verbose! });
    }
    case 'reset': {
      const { resetProgress, defaultProgressPath } = await import('./ui/progress.js');
      if (rest[0]) await loadLabOrExplain(rest[0]);
      resetProgress(rest[0], defaultProgressPath());
      process.stdout.write(rest[0] ? `progress of '${rest[0]}' forgotten\n` : 'all lab progress forgotten\n');
      return EXIT_OK;
    }
    case undefined:
    case 'lab': {
      const labId = command === 'lab' ? rest[0] : undefined;
      return runInteractive(labId, await withLabBackend(labId, values), argv);
    }
    case 'recovery-source':
    case 'recovery-file':
      // Dispatched at the top when first; after another option it would miss its own options.
      throw new UsageError(`${command} takes its own options: give it first (postcopy-lab ${command} ...)`);
    default: {
      // Every name in COMMANDS (src/commands/usage.ts) has its case above: --help and the
      // unknown-command error list exactly what this switch runs.
      const unhandled: never = command;
      throw new Error(`no case for command '${String(unhandled)}'`);
    }
  }
}

/** Everything a drill takes from the command line (also what `lab <id>` passes on without a terminal). */
interface DrillFlags {
  json?: boolean;
  seed?: string;
  timeout?: string;
  link?: string;
  backend?: string;
  qemu?: string;
  'source-uri'?: string;
  'dest-uri'?: string;
  emulate?: string;
  record?: string;
  'no-record'?: boolean;
  'no-compare'?: boolean;
  verbose?: boolean;
  hold?: boolean;
  'learner-delay'?: string;
}

async function drillCommand(idOrPath: string | undefined, values: DrillFlags, argv: string[]): Promise<number> {
  const lab = await loadLabOrExplain(idOrPath);
  const backendKind = parseBackend(values.backend, values.qemu);
  const remote = parseRemote(values, backendKind);
  const linkKind = parseLinkKind(values.link, backendKind, remote);
  const seed = num(values.seed, '--seed', 0, 2 ** 32 - 1) ?? lab.setup.seed ?? 1;
  const timeoutMs = timeoutOption(values.timeout);
  const learnerDelayMs = learnerDelay(values['learner-delay']);
  const makeLink = await makeLinkFactory(linkKind, seed);
  const backend = await backendFor(lab, backendKind, values.qemu, parseEmulate(values.emulate, backendKind), remote);
  await refuseMissingNetem(lab, linkKind);
  if (values.json) chalk.level = 0;
  const recordPath = values['no-record'] ? undefined : (values.record ?? defaultRecordPath(lab.id));
  let session: LabSession | null = null;
  const stop: Cleanup = async () => {
    await session?.stop();
  };
  cleanups.add(stop);
  const code = await runDrill({
    lab,
    json: Boolean(values.json),
    seed,
    timeoutMs,
    verbose: Boolean(values.verbose),
    hold: Boolean(values.hold),
    learnerDelayMs,
    makeLink,
    linkKind,
    backend,
    recordPath,
    recordMeta: { version: PKG_VERSION, node: process.version, link: linkKind, backend: backendKind, qemuVersion: backend.qemuVersion, argv },
    onSession: (s) => (session = s),
  });
  cleanups.delete(stop);
  if (recordPath && !values.json) process.stderr.write(chalk.dim(`event log: ${recordPath}\n`));
  // Only after a passing run: a failed one has said what matters, and the table takes a minute.
  if (code === 0 && !values['no-compare'] && !ownsLifecycle(backend)) await labComparison(lab, backend, seed, Boolean(values.json));
  return code;
}

/**
 * A lab with `compare:` ends with the comparison on its guest and link: the table after the
 * summary, or `type: "compare"` lines with --json. It informs; it never changes the exit code.
 */
async function labComparison(lab: Lab, backend: VmBackend, seed: number, json: boolean): Promise<void> {
  const { compareOptionsForLab } = await import('./compare/lab.js');
  const options = compareOptionsForLab(lab, backend, seed);
  if (!options || exiting) return;
  const { runCompareCommand } = await import('./commands/compare.js');
  if (!json) process.stdout.write(`\n${chalk.bold(`The comparison for ${lab.id}`)} (the same guest and link, one strategy after another):\n`);
  try {
    await stoppable((signal) => runCompareCommand({ compare: options, backend, json, jsonType: 'compare', signal, err: json ? process.stderr : process.stdout }));
  } catch (e) {
    process.stderr.write(`postcopy-lab: the comparison failed: ${(e as Error).message}\n`);
  }
}

/** The accelerator POSTCOPY_LAB_QEMU_ACCEL forces (kvm or tcg), else KVM when usable. */
function forcedAccel(): 'kvm' | 'tcg' | 'auto' {
  const forced = process.env.POSTCOPY_LAB_QEMU_ACCEL;
  return forced === 'kvm' || forced === 'tcg' ? forced : 'auto';
}

/** Run `work` so that Ctrl-C (or any exit) aborts it and waits for what it started to stop. */
async function stoppable<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let running: Promise<T> | null = null;
  const stop: Cleanup = async () => {
    abort.abort();
    await running?.catch(() => {});
  };
  cleanups.add(stop);
  running = work(abort.signal);
  try {
    return await running;
  } finally {
    cleanups.delete(stop);
  }
}

async function compareCommand(values: CompareFlags & { json?: boolean }): Promise<number> {
  const { parseCompareFlags, CompareOptionError } = await import('./compare/options.js');
  const { runCompareCommand } = await import('./commands/compare.js');
  let options;
  try {
    options = parseCompareFlags(values);
  } catch (e) {
    if (e instanceof CompareOptionError) throw new UsageError(e.message);
    throw e;
  }
  const backend = await makeVmBackend(options.backend, { qemu: options.qemu, emulate: options.emulate, accel: forcedAccel() });
  if (values.json) chalk.level = 0;
  // Ctrl-C stops the strategy running now (its VMs and relay) before the process exits.
  return stoppable((signal) => runCompareCommand({ compare: options, backend, json: Boolean(values.json), signal }));
}

/** --backend, with --qemu PATH implying qemu. */
function parseBackend(backend: string | undefined, qemu: string | undefined): BackendKind {
  const kind = backend ?? (qemu ? 'qemu' : 'sim');
  if (!(BACKEND_KINDS as readonly string[]).includes(kind)) {
    throw new UsageError(`--backend: '${kind}' is not a backend (expected ${BACKEND_CHOICES})`);
  }
  if (qemu && kind === 'sim') throw new UsageError(`--qemu is for the QEMU and libvirt backends, but --backend is '${kind}'`);
  return kind as BackendKind;
}

/** --source-uri/--dest-uri: null for the local pair (src/libvirt/remote.ts checks them). */
function parseRemote(values: DrillFlags & { link?: string }, backend: BackendKind): RemoteHosts | null {
  try {
    return parseRemoteHosts({ sourceUri: values['source-uri'], destUri: values['dest-uri'], backend, link: values.link, qemu: values.qemu });
  } catch (e) {
    if (e instanceof RemoteUriError) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * --link; `--backend libvirt` implies kernel (its daemons live in the kernel link's namespaces),
 * and on remote hosts none (the network between them is not ours).
 */
function parseLinkKind(link: string | undefined, backend: BackendKind, remote: RemoteHosts | null = null): string {
  if (remote) return 'none';
  if (link === 'none') throw new UsageError('--link none is for --backend libvirt with --source-uri/--dest-uri (hosts whose network is not ours); a run on this machine has a link: relay or kernel');
  if (backend !== 'libvirt') return link ?? 'relay';
  if (link !== undefined && link !== 'kernel') throw new UsageError(`--link ${link}: --backend libvirt runs its two daemons in the kernel link's namespaces, so the link is kernel (leave --link out)`);
  return 'kernel';
}

/** --emulate: a version the sim emulates, and only with the sim (a real QEMU is its own version). */
function parseEmulate(emulate: string | undefined, kind: BackendKind): EmulatedVersion | undefined {
  if (emulate === undefined) return undefined;
  if (kind !== 'sim') {
    throw new UsageError(`--emulate is for the sim backend: with --backend ${kind} the QEMU you run is its own version (choose it with --qemu PATH)`);
  }
  try {
    return parseEmulatedVersion(emulate);
  } catch (e) {
    throw new UsageError(`--emulate: ${(e as Error).message}`);
  }
}

/** The backend for one lab, refusing (exit 2) a lab that does not support it, or a missing QEMU. */
async function backendFor(lab: Lab, kind: BackendKind, qemu: string | undefined, emulate?: EmulatedVersion, remote: RemoteHosts | null = null): Promise<AnyBackend> {
  const problem = backendProblem(lab, kind) ?? (remote ? remoteLabProblem(lab) : undefined);
  if (problem) throw new UsageError(problem);
  const backend = await makeBackend(kind, { qemu, emulate, accel: forcedAccel(), remote }).catch((e: unknown) => {
    // An unreachable remote daemon: one sentence, like any bad input.
    throw e instanceof RemoteUriError ? new UsageError(e.message) : e;
  });
  // The QEMU version (real, or the one the sim emulates) must be one the lab holds for.
  const outOfRange = versionProblem(lab, backend);
  if (outOfRange) throw new UsageError(outOfRange);
  return backend;
}

/** A lab whose faults need sch_netem on a kernel link without it: refused (exit 2) before any VM starts. */
async function refuseMissingNetem(lab: Lab, linkKind: string): Promise<void> {
  const { kernelLinkProblem } = await import('./commands/netem-fit.js');
  const problem = await kernelLinkProblem(lab, linkKind);
  if (problem) throw new UsageError(problem);
}

async function runInteractive(labId: string | undefined, values: DrillFlags, argv: string[]): Promise<number> {
  const { isInteractive } = await import('./ui/interactive.js');
  if (!isInteractive(process.stdin, process.stdout, process.env)) {
    if (!labId) {
      process.stdout.write(USAGE + '\n\nNo terminal here (or CI is set), so no TUI. Labs:\n');
      for (const l of await orderedLabs()) process.stdout.write(`  ${l.id}\n`);
      return EXIT_OK;
    }
    // Without a terminal the lab runs headless, exactly as a drill, with every drill option.
    return drillCommand(labId, values, argv);
  }
  const backendKind = parseBackend(values.backend, values.qemu);
  const emulate = parseEmulate(values.emulate, backendKind);
  const remote = parseRemote(values, backendKind);
  const seedFlag = num(values.seed, '--seed', 0, 2 ** 32 - 1);
  // Ink treats an empty CI as "CI" and would draw nothing; we decided above that this is a terminal.
  if (process.env.CI !== undefined && process.env.CI.trim() === '') delete process.env.CI;
  // React's development build is several times slower and records a performance.measure()
  // entry per render that is never cleared: hundreds of MiB after a few minutes of a lab.
  process.env.NODE_ENV ??= 'production';
  const { runTui } = await import('./ui/app.js');
  const makeLink = await makeLinkFactory(parseLinkKind(values.link, backendKind, remote), seedFlag);
  const labs = (await orderedLabs()).map((l) => ({ ...l, elsewhere: elsewhere(l, backendKind) }));
  const sessions = new Set<LabSession>();
  const stopAll: Cleanup = async () => {
    await Promise.allSettled([...sessions].map((s) => s.stop()));
  };
  cleanups.add(stopAll);
  // The TUI hands us its own step (stop the lab, leave the alternate screen, raw mode off), so
  // a signal taken here gives the terminal back before the process exits.
  let restoreTerminal: Cleanup | undefined;
  // A lab with `compare:` ends with its comparison on the end screen; the TUI aborts it when
  // the screen is left, and an exit waits for its VMs and relay to stop.
  const comparisons = new Set<Promise<unknown>>();
  const stopComparisons: Cleanup = async () => {
    await Promise.allSettled([...comparisons]);
  };
  cleanups.add(stopComparisons);
  const compareLab = async (labId: string, progress: (line: string) => void, signal: AbortSignal): Promise<string | null> => {
    const { compareOptionsForLab } = await import('./compare/lab.js');
    const lab = await findLab(labId, LABS_DIR);
    const backend = await backendFor(lab, backendKind, values.qemu, emulate, remote);
    if (ownsLifecycle(backend)) return null;
    const options = compareOptionsForLab(lab, backend, seedFlag ?? lab.setup.seed ?? 1);
    if (!options) return null;
    const { runCompare, formatCompareTable } = await import('./compare/run.js');
    const { progressLine } = await import('./commands/compare.js');
    const run = runCompare(options, (p) => p.kind !== 'tick' && progress(progressLine(p)), { backend, signal });
    comparisons.add(run);
    try {
      // The end screen's width (its one-column margin on each side): no cell is cut off.
      return formatCompareTable(await run, { width: (process.stdout.columns || 100) - 2 });
    } finally {
      comparisons.delete(run);
    }
  };
  const code = await runTui({
    compareLab,
    onStop: (stop) => {
      restoreTerminal = () => stop(EXIT_FAILED);
      cleanups.add(restoreTerminal);
    },
    labs,
    initialLab: labId ? (await loadLabOrExplain(labId)).id : undefined,
    openLab: async (id, openOpts) => {
      const lab = await findLab(id, LABS_DIR);
      const backend = await backendFor(lab, backendKind, values.qemu, emulate, remote);
      await refuseMissingNetem(lab, parseLinkKind(values.link, backendKind, remote));
      const session = new LabSession(lab, {
        mode: 'interactive',
        seed: seedFlag ?? lab.setup.seed ?? 1,
        // A snapshot every 100 ms: the screen samples the session every 80 ms
        // (src/ui/use-session.ts), so it redraws about 10 times a second while pages stream
        // (at 200 ms it was 5; README: The TUI's cost).
        pollMs: 100,
        makeLink,
        backend,
        recordPath: values['no-record'] ? undefined : defaultRecordPath(lab.id),
        recordMeta: { version: PKG_VERSION, node: process.version, link: parseLinkKind(values.link, backendKind, remote), backend: backendKind, qemuVersion: backend.qemuVersion, argv },
      });
      sessions.add(session);
      try {
        await session.start();
      } catch (e) {
        await session.stop();
        throw e;
      }
      void session.run({ startAt: openOpts?.startAt });
      return session;
    },
  });
  if (restoreTerminal) cleanups.delete(restoreTerminal);
  await stopAll();
  cleanups.delete(stopAll);
  await stopComparisons();
  cleanups.delete(stopComparisons);
  return code;
}

installSignalHandlers();
main(process.argv.slice(2))
  .then((code) => exitWith(code))
  .catch((e: unknown) => {
    if (e instanceof QemuNotFoundError) {
      // One sentence: what is missing and how to get it (and that the sim needs nothing).
      process.stderr.write(`postcopy-lab: ${e.message}\n`);
      return exitWith(EXIT_BAD_INPUT);
    }
    if (e instanceof LabError || e instanceof UsageError || (e instanceof Error && e.name === 'RecordError')) {
      process.stderr.write(`postcopy-lab: ${e.message}\n`);
      if (e instanceof UsageError) process.stderr.write('Run `postcopy-lab --help` for usage.\n');
      return exitWith(EXIT_BAD_INPUT);
    }
    return exitWith(EXIT_FAILED, e);
  });
