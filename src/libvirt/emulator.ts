/**
 * Whether the QEMU a libvirt run names keeps the distribution's QEMU modules out.
 *
 * QEMU looks for its modules in QEMU_MODULE_DIR and then, always, in the directory it was built
 * for (/usr/lib/x86_64-linux-gnu/qemu on Debian), where the distribution's 7.2 keeps its own.
 * When libvirt probes a QEMU (`qom-list-types` loads every module), a 10.0 that fell through to
 * 7.2's copies aborted: "Only modules from the same build can be loaded". scripts/provision.sh
 * now unpacks 10.0 with a qemu-bundle beside its binary, which moves every compiled-in path into
 * its own prefix, so nothing is needed inside the daemons' mount namespaces. An unpacked QEMU
 * without it (provisioned by an earlier script) is refused here, saying how to fix it, instead
 * of failing in libvirt's probe.
 */
import { access, realpath } from 'node:fs/promises';
import path from 'node:path';

/**
 * Throws when `emulator` is an unpacked QEMU (provision.sh's layout: PREFIX/bin/<wrapper> and
 * PREFIX/root/usr/bin/qemu-system-x86_64) without PREFIX/root/usr/bin/qemu-bundle.
 */
export async function checkUnpackedQemu(emulator: string): Promise<void> {
  const real = await realpath(emulator);
  if (real.startsWith('/usr/')) return;
  const prefix = path.dirname(path.dirname(real));
  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );
  if (!(await exists(path.join(prefix, 'root/usr/bin/qemu-system-x86_64')))) return;
  if (await exists(path.join(prefix, 'root/usr/bin/qemu-bundle/usr'))) return;
  throw new Error(
    `${emulator} is an unpacked QEMU without ${prefix}/root/usr/bin/qemu-bundle, so it would load the distribution's QEMU modules and libvirt's probe of it would fail; run scripts/provision.sh --ci again (it adds the link without a download)`,
  );
}
