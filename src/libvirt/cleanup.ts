/**
 * Leftovers of libvirt pairs whose run was killed (SIGKILL, a crash): daemons and the QEMUs
 * they started still running in the run's network namespaces, mount namespaces bound to files,
 * the run's directories. A pair whose owner process is alive is a run in progress and is left
 * alone unless asked. Called by `postcopy-lab cleanup` before the namespaces are deleted (the
 * processes are found through them).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { isOwnerAlive } from '../kernel/owner.js';
import { run as defaultRun, type Runner } from '../kernel/run.js';
import { PREFIX } from '../kernel/validate.js';
import { LIBVIRT_STATE_ROOT, removePairState, type PairMarker } from './pair.js';

export interface LibvirtLeftover {
  runId: string;
  root: string;
  active: boolean;
  ownerPid?: number;
  namespaces: string[];
}

export interface LibvirtCleanupResult {
  removed: string[];
  skipped: { name: string; reason: string }[];
  errors: string[];
}

export interface LibvirtCleanupOptions {
  stateRoot?: string;
  runner?: Runner;
  /** Only this run's pair. */
  runId?: string;
  /** Also remove pairs whose owner still runs. Default false. */
  includeActive?: boolean;
}

export async function findLibvirtLeftovers(opts: Pick<LibvirtCleanupOptions, 'stateRoot' | 'runId'> = {}): Promise<LibvirtLeftover[]> {
  const stateRoot = opts.stateRoot ?? LIBVIRT_STATE_ROOT;
  let names: string[];
  try {
    names = (await readdir(stateRoot, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
  const out: LibvirtLeftover[] = [];
  for (const runId of names) {
    if (opts.runId !== undefined && runId !== opts.runId) continue;
    const root = path.join(stateRoot, runId);
    let marker: PairMarker | null = null;
    try {
      marker = JSON.parse(await readFile(path.join(root, 'pair.json'), 'utf8')) as PairMarker;
    } catch {
      // Killed between making the directory and writing the marker: nobody owns it.
    }
    out.push({
      runId,
      root,
      active: marker ? isOwnerAlive(marker) : false,
      ownerPid: marker?.pid,
      // The kernel link's names for the run's namespaces, when the marker is missing.
      namespaces: marker?.namespaces ?? [`${PREFIX}${runId}-src`, `${PREFIX}${runId}-dst`],
    });
  }
  return out;
}

/** Remove dead pairs. Never throws for one pair: its failure is listed in `errors`. */
export async function cleanupLibvirtLeftovers(opts: LibvirtCleanupOptions = {}): Promise<LibvirtCleanupResult> {
  const runner = opts.runner ?? defaultRun;
  const result: LibvirtCleanupResult = { removed: [], skipped: [], errors: [] };
  for (const p of await findLibvirtLeftovers(opts)) {
    if (p.active && !opts.includeActive) {
      result.skipped.push({ name: `libvirt pair ${p.runId}`, reason: `in use by a running postcopy-lab (pid ${p.ownerPid})` });
      continue;
    }
    const errors = await removePairState(runner, p.root, p.namespaces);
    if (errors.length) result.errors.push(...errors.map((e) => `libvirt pair ${p.runId}: ${e}`));
    else result.removed.push(p.root);
  }
  return result;
}
