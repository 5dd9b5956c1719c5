/**
 * The QEMU matrix for tests: every QEMU installed here (src/qemu/installed.ts), or the one
 * POSTCOPY_LAB_QEMU names. A suite runs `describe.each(QEMUS)` and skips, saying why, only
 * when the list is empty.
 */
import { installedQemus, shortVersion, type InstalledQemu } from '../../src/qemu/installed.js';
import { qemuVersion } from '../../src/qemu/launcher.js';

async function list(): Promise<InstalledQemu[]> {
  const forced = process.env.POSTCOPY_LAB_QEMU;
  if (forced) {
    const version = await qemuVersion(forced);
    return [{ bin: forced, version, short: shortVersion(version) }];
  }
  return installedQemus();
}

export const QEMUS: InstalledQemu[] = await list().catch(() => []);
export const NO_QEMU = QEMUS.length === 0 ? 'no QEMU installed here (scripts/provision.sh --ci installs 7.2 and 10.0)' : undefined;
