/**
 * Leftovers of runs that did not get to clean up (SIGKILL, a crash, a power cut of the
 * terminal): network namespaces named `pcl-...`, nft tables named `pcl-...` in the root
 * namespace, owner markers, and runtime directories `postcopy-lab-*` with their sockets. A
 * namespace or directory whose owner process is still alive belongs to a run in progress: it is
 * reported as active and left alone (namespaces: unless asked). The runtime directories need no
 * privileges, so they are cleaned even where the kernel part cannot be inspected.
 */
import { netnsDel, netnsList } from './ip.js';
import { listTables, nft, parseTables, tableDelete } from './nft.js';
import { OWNER_DIR, isOwnerAlive, listOwners, removeOwner, type OwnerMarker } from './owner.js';
import { run as defaultRun, pidsInNamespace, runIgnoringNotExist, type Runner } from './run.js';
import { PREFIX } from './validate.js';
import { cleanupRuntimeDirs, findRuntimeDirs, type RuntimeDir } from '../util/runtime-dir.js';
import { cleanupLibvirtLeftovers } from '../libvirt/cleanup.js';

export interface LeftoverNamespace {
  name: string;
  /** The run it belongs to, when the name says so (`pcl-<runId>-src|dst`). */
  runId?: string;
  /** Its owner process is alive: a run in progress, not a leftover. */
  active: boolean;
  ownerPid?: number;
  /** Processes still inside (a VM the killed run left behind, say). */
  pids: number[];
}

export interface Leftovers {
  namespaces: LeftoverNamespace[];
  /** nft tables with our prefix in the root namespace, as `family name`. */
  nftTables: { family: string; name: string }[];
  /** Owner markers whose run has no namespace left and whose owner is gone. */
  staleMarkers: string[];
  /** Runs' socket directories, live and dead (only when no runId is asked for). */
  runtimeDirs: RuntimeDir[];
  /** What could not be inspected (e.g. nft missing), in words. */
  notes: string[];
}

export interface LeftoverOptions {
  /** Only this run's leftovers. */
  runId?: string;
  runner?: Runner;
  ownerDir?: string;
  /** Where runtime directories are looked for; default XDG_RUNTIME_DIR and the temp dir. */
  runtimeDirBases?: string[];
}

const RUN_NS_RE = /^pcl-(.+)-(src|dst)$/;
const PROBE_NS_RE = /^pcl-probe-(\d+)-/;

/** Every network namespace name, via `ip -j netns list`. */
export async function listNamespaces(runner: Runner = defaultRun): Promise<string[]> {
  const { stdout } = await runner(netnsList());
  if (stdout.trim() === '') return [];
  const rows = JSON.parse(stdout) as Array<{ name: string }>;
  return rows.map((r) => r.name);
}

export async function findLeftovers(opts: LeftoverOptions = {}): Promise<Leftovers> {
  const runner = opts.runner ?? defaultRun;
  const ownerDir = opts.ownerDir ?? OWNER_DIR;
  const notes: string[] = [];
  const owners = new Map<string, OwnerMarker>((await listOwners(ownerDir)).map((m) => [m.runId, m]));

  let names: string[] = [];
  try {
    names = (await listNamespaces(runner)).filter((n) => n.startsWith(PREFIX));
  } catch (err) {
    notes.push(`could not list network namespaces: ${(err as Error).message}`);
  }

  const namespaces: LeftoverNamespace[] = [];
  for (const name of names) {
    const runMatch = RUN_NS_RE.exec(name);
    const probeMatch = PROBE_NS_RE.exec(name);
    const runId = runMatch && !probeMatch ? runMatch[1] : undefined;
    if (opts.runId !== undefined && runId !== opts.runId) continue;
    let active = false;
    let ownerPid: number | undefined;
    if (probeMatch) {
      ownerPid = Number(probeMatch[1]);
      active = isOwnerAlive({ pid: ownerPid, pidStart: null });
    } else if (runId !== undefined) {
      const owner = owners.get(runId);
      if (owner) {
        ownerPid = owner.pid;
        active = isOwnerAlive(owner);
      }
    }
    namespaces.push({ name, runId, active, ownerPid, pids: await pidsInNamespace(runner, name) });
  }

  let nftTables: { family: string; name: string }[] = [];
  if (opts.runId === undefined) {
    try {
      const { stdout } = await runner(nft(undefined, listTables()));
      nftTables = parseTables(stdout).filter((t) => t.name.startsWith(PREFIX));
    } catch (err) {
      notes.push(`could not list nft tables: ${(err as Error).message}`);
    }
  }

  const withNs = new Set(namespaces.map((n) => n.runId));
  const staleMarkers = [...owners.values()]
    .filter((m) => (opts.runId === undefined || m.runId === opts.runId) && !withNs.has(m.runId) && !isOwnerAlive(m))
    .map((m) => m.runId);

  const runtimeDirs = opts.runId === undefined ? await findRuntimeDirs(opts.runtimeDirBases) : [];
  return { namespaces, nftTables, staleMarkers, runtimeDirs, notes };
}

export interface CleanupOptions extends LeftoverOptions {
  /** Also remove namespaces whose owner is still running (a live run). Default false. */
  includeActive?: boolean;
  /** Where libvirt pairs live (src/libvirt/pair.ts); for tests. */
  libvirtStateRoot?: string;
}

export interface CleanupResult {
  /** libvirtPairs: the directories of libvirt pairs removed, with their daemons and QEMUs (src/libvirt/cleanup.ts). */
  removed: { namespaces: string[]; nftTables: string[]; markers: string[]; runtimeDirs: string[]; libvirtPairs: string[] };
  skipped: { name: string; reason: string }[];
  /** Processes that were inside removed namespaces and still run (not killed by cleanup). */
  orphanedPids: number[];
  errors: string[];
}

/** Remove this tool's leftovers. Never throws for one item: each failure is listed in `errors`. */
export async function cleanupLeftovers(opts: CleanupOptions = {}): Promise<CleanupResult> {
  const runner = opts.runner ?? defaultRun;
  const ownerDir = opts.ownerDir ?? OWNER_DIR;
  const found = await findLeftovers(opts);
  const result: CleanupResult = { removed: { namespaces: [], nftTables: [], markers: [], runtimeDirs: [], libvirtPairs: [] }, skipped: [], orphanedPids: [], errors: [...found.notes] };
  const doneRuns = new Set<string>();
  const keptRuns = new Set<string>();

  // libvirt pairs first: their daemons and QEMUs are found through the namespaces removed below.
  const pairs = await cleanupLibvirtLeftovers({ runner, runId: opts.runId, includeActive: opts.includeActive, stateRoot: opts.libvirtStateRoot });
  result.removed.libvirtPairs.push(...pairs.removed);
  result.skipped.push(...pairs.skipped);
  result.errors.push(...pairs.errors);

  for (const ns of found.namespaces) {
    if (ns.active && !opts.includeActive) {
      result.skipped.push({ name: ns.name, reason: `in use by a running postcopy-lab (pid ${ns.ownerPid})` });
      if (ns.runId) keptRuns.add(ns.runId);
      continue;
    }
    try {
      await runIgnoringNotExist(runner, netnsDel(ns.name));
      result.removed.namespaces.push(ns.name);
      result.orphanedPids.push(...ns.pids);
      if (ns.runId) doneRuns.add(ns.runId);
    } catch (err) {
      result.errors.push(`${ns.name}: ${(err as Error).message}`);
      if (ns.runId) keptRuns.add(ns.runId);
    }
  }

  for (const t of found.nftTables) {
    try {
      await runIgnoringNotExist(runner, nft(undefined, tableDelete(t.name, t.family)));
      result.removed.nftTables.push(`${t.family} ${t.name}`);
    } catch (err) {
      result.errors.push(`nft table ${t.family} ${t.name}: ${(err as Error).message}`);
    }
  }

  for (const runId of [...doneRuns, ...found.staleMarkers]) {
    if (keptRuns.has(runId)) continue;
    try {
      await removeOwner(runId, ownerDir);
      result.removed.markers.push(runId);
    } catch (err) {
      result.errors.push(`marker ${runId}: ${(err as Error).message}`);
    }
  }

  if (opts.runId === undefined) {
    const dirs = await cleanupRuntimeDirs(opts.runtimeDirBases);
    result.removed.runtimeDirs.push(...dirs.removed);
    result.errors.push(...dirs.errors);
  }
  return result;
}

/** What cleanup did, for a person: one line per thing removed, skipped or failed. */
export function formatCleanup(r: CleanupResult): string {
  const lines = [
    ...r.removed.libvirtPairs.map((p) => `removed libvirt pair ${p} (its daemons and QEMUs stopped)`),
    ...r.removed.namespaces.map((n) => `removed namespace ${n}`),
    ...r.removed.nftTables.map((t) => `removed nft table ${t}`),
    ...r.removed.runtimeDirs.map((d) => `removed runtime directory ${d}`),
    ...r.skipped.map((s) => `kept ${s.name}: ${s.reason}`),
    ...(r.orphanedPids.length ? [`still running (not killed): ${r.orphanedPids.join(' ')}`] : []),
    ...r.errors.map((e) => `could not clean: ${e}`),
  ];
  const removed = r.removed.namespaces.length + r.removed.nftTables.length + r.removed.runtimeDirs.length + r.removed.libvirtPairs.length;
  if (removed === 0) lines.unshift('nothing to clean up: no namespaces, nft tables, libvirt pairs or runtime directories of a dead postcopy-lab run');
  return lines.join('\n');
}
