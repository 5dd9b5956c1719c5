/**
 * Which QEMU module directory a daemon's mount namespace must show at the system path.
 *
 * QEMU looks for its modules in QEMU_MODULE_DIR first and then, always, in the directory it was
 * built for (/usr/lib/x86_64-linux-gnu/qemu on Debian). The QEMU 10.0 that scripts/provision.sh
 * unpacks beside the distribution's 7.2 lacks some modules (the OpenGL ones live in another
 * package), so when libvirt probes it (`qom-list-types` loads every module) it falls through to
 * 7.2's copies and aborts: "Only modules from the same build can be loaded". Inside the daemon's
 * own mount namespace we can show 10.0's module directory at the system path instead, so a
 * missing module is simply missing. The distribution's QEMU needs nothing.
 */
import { access, realpath } from 'node:fs/promises';
import path from 'node:path';

/** Where Debian's QEMU (any version) is built to look for modules. */
export const SYSTEM_QEMU_MODULE_DIR = '/usr/lib/x86_64-linux-gnu/qemu';

/**
 * The module directory of an unpacked QEMU (provision.sh's layout: PREFIX/bin/<wrapper> and
 * PREFIX/root/usr/lib/x86_64-linux-gnu/qemu), or null for a QEMU installed at the system paths.
 */
export async function unpackedModuleDir(emulator: string): Promise<string | null> {
  const real = await realpath(emulator);
  if (real.startsWith('/usr/')) return null;
  const candidate = path.join(path.dirname(path.dirname(real)), 'root', SYSTEM_QEMU_MODULE_DIR);
  try {
    await access(candidate);
    return candidate;
  } catch {
    return null;
  }
}
