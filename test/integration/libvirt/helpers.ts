/**
 * What the libvirt integration tests share: why they must skip here (said, never silent), and
 * whether a path exists.
 */
import { access, constants } from 'node:fs/promises';
import { kvmUsable } from '../../../src/qemu/launcher.js';

export const exists = (p: string, mode: number = constants.F_OK): Promise<boolean> =>
  access(p, mode).then(
    () => true,
    () => false,
  );

/**
 * Why libvirt cannot run these tests here, or undefined when it can: root (network and mount
 * namespaces), libvirtd and virsh, and as asked the distribution's QEMU (libvirt's default
 * emulator) and a usable KVM.
 */
export async function libvirtSkipReason(opts: { systemQemu?: boolean; kvm?: boolean } = {}): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network and mount namespaces, libvirtd)';
  if (!(await exists('/usr/sbin/libvirtd', constants.X_OK))) return 'no /usr/sbin/libvirtd (apt-get install libvirt-daemon-system)';
  if (!(await exists('/usr/bin/virsh', constants.X_OK))) return 'no virsh (apt-get install libvirt-clients)';
  if (opts.systemQemu && !(await exists('/usr/bin/qemu-system-x86_64', constants.X_OK))) return 'no /usr/bin/qemu-system-x86_64';
  if (opts.kvm) {
    const kvm = await kvmUsable();
    if (!kvm.usable) return `KVM not usable: ${kvm.reason}`;
  }
  return undefined;
}
