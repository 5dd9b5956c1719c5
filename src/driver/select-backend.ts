/**
 * Building a backend for a run: the sim, or QEMU (binary, version, accelerator) with the
 * messages a person needs when it cannot start. Whether a lab fits a backend is the lab
 * layer's question (src/lab/backend-fit.ts).
 */
import { execa } from 'execa';
import { chooseAccel, findQemu, qemuVersion } from '../qemu/launcher.js';
import type { EmulatedVersion } from '../sim/versions.js';
import type { AnyBackend, BackendKind, VmBackend } from './backend.js';
import type { RemoteHosts } from '../libvirt/remote.js';
import { LibvirtBackend } from './libvirt-backend.js';
import { QemuBackend } from './qemu-backend.js';
import { SimBackend } from './sim-backend.js';

export const BACKEND_KINDS: readonly BackendKind[] = ['sim', 'qemu', 'libvirt'];
/** The kinds as an error message lists them: "sim, qemu or libvirt". */
export const BACKEND_CHOICES = `${BACKEND_KINDS.slice(0, -1).join(', ')} or ${BACKEND_KINDS[BACKEND_KINDS.length - 1]}`;

export interface QemuBackendChoice {
  /** A path to qemu-system-x86_64; else PATH is searched. */
  qemu?: string;
  /** Force an accelerator (POSTCOPY_LAB_QEMU_ACCEL); default: KVM when usable, else TCG. */
  accel?: 'kvm' | 'tcg' | 'auto';
  /** The QEMU version the sim behaves as (--emulate); the newest when not given. */
  emulate?: EmulatedVersion;
  /** QEMU: start both sides with KVM's dirty ring, for dirty-limit (refused, saying why, where unavailable). */
  dirtyRing?: boolean;
  /** libvirt: two daemons the user already has (--source-uri, --dest-uri) instead of the local pair. */
  remote?: RemoteHosts | null;
}

/**
 * The libvirt the local pair's daemons are ("9.0"), from `virsh --version` (client and daemons
 * are one install here; the call reaches no daemon, ~30 ms); undefined when virsh does not say.
 */
async function localLibvirtVersion(): Promise<string | undefined> {
  const r = await execa('virsh', ['--version'], { reject: false, timeout: 10_000 });
  const m = r.exitCode === 0 ? /^(\d+)\.(\d+)/.exec(String(r.stdout).trim()) : null;
  return m ? `${m[1]}.${m[2]}` : undefined;
}

/** Build a backend. QEMU: throws QemuNotFoundError (its message is the install sentence). */
export async function makeBackend(kind: 'sim' | 'qemu', choice?: QemuBackendChoice): Promise<VmBackend>;
export async function makeBackend(kind: BackendKind, choice?: QemuBackendChoice): Promise<AnyBackend>;
export async function makeBackend(kind: BackendKind, choice: QemuBackendChoice = {}): Promise<AnyBackend> {
  if (kind === 'sim') return new SimBackend(choice.emulate);
  if (kind === 'libvirt' && choice.remote) {
    // The hosts' QEMU: --qemu names its path there (and must be the same QEMU here, to know its
    // version); without it, each daemon's default, whose version the source daemon tells.
    const { remoteQemuVersion } = await import('../libvirt/remote-session.js');
    const version = choice.qemu ? await qemuVersion(choice.qemu) : await remoteQemuVersion(choice.remote.source.uri);
    return new LibvirtBackend({ emulator: choice.qemu, version, remote: choice.remote });
  }
  const bin = await findQemu(choice.qemu);
  const version = await qemuVersion(bin);
  // libvirt runs the same QEMU binary (a wrapper for an unpacked one: src/libvirt/emulator.ts).
  if (kind === 'libvirt') return new LibvirtBackend({ emulator: bin, version, libvirtVersion: await localLibvirtVersion() });
  const accel = await chooseAccel(choice.accel ?? 'auto');
  return new QemuBackend({ bin, version, accel: accel.accel, accelNote: accel.note, dirtyRing: choice.dirtyRing });
}

/** A backend the Orchestrator drives (compare, bench): libvirt owns its VMs' lifecycle and is refused. */
export async function makeVmBackend(kind: BackendKind, choice: QemuBackendChoice = {}): Promise<VmBackend> {
  if (kind === 'libvirt') throw new Error('--backend libvirt: this command runs on the sim or QEMU backend only (libvirt owns its migration job); use --backend qemu');
  return makeBackend(kind, choice);
}
