/**
 * Every QEMU installed on this machine: the distribution's (on PATH) and the ones unpacked
 * beside it under /opt/qemu-<version>/bin (scripts/provision.sh puts Debian's
 * bookworm-backports QEMU 10.0 there). `doctor` lists them; the tests run the QEMU matrix over
 * them; `--qemu PATH` picks one.
 */
import { readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { findQemu, qemuVersion, type QemuVersion } from './launcher.js';

/** Where provisioning unpacks extra QEMU versions: <root>/qemu-<version>/bin/qemu-system-x86_64. */
export const EXTRA_QEMU_ROOT = '/opt';

export interface InstalledQemu {
  bin: string;
  version: QemuVersion;
  /** "7.2", "10.0": what labs and `--emulate` call it. */
  short: string;
}

export function shortVersion(v: Pick<QemuVersion, 'major' | 'minor'>): string {
  return `${v.major}.${v.minor}`;
}

async function extraBins(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^qemu-\d+\.\d+/.test(n))
    .sort()
    .map((n) => join(root, n, 'bin', 'qemu-system-x86_64'));
}

/**
 * The QEMUs found, oldest first, one per binary (a symlink and its target count once), with
 * the versions they report. A binary that cannot say its version is left out.
 */
export async function installedQemus(root = EXTRA_QEMU_ROOT): Promise<InstalledQemu[]> {
  const candidates: string[] = [];
  try {
    candidates.push(await findQemu());
  } catch {
    // none on PATH
  }
  candidates.push(...(await extraBins(root)));
  const seen = new Set<string>();
  const found: InstalledQemu[] = [];
  for (const bin of candidates) {
    let real: string;
    try {
      real = await realpath(bin);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    try {
      const version = await qemuVersion(bin);
      found.push({ bin, version, short: shortVersion(version) });
    } catch {
      // not runnable: doctor reports it separately
    }
  }
  return found.sort((a, b) => a.version.major - b.version.major || a.version.minor - b.version.minor);
}
