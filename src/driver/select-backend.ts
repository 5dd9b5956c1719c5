/**
 * Choosing a backend for a run: whether a lab can run on it (and why not), and building the
 * QEMU backend (binary, version, accelerator) with the messages a person needs when it cannot.
 */
import type { Lab } from '../lab/schema.js';
import { chooseAccel, findQemu, qemuVersion } from '../qemu/launcher.js';
import type { BackendKind, VmBackend } from './backend.js';
import { QemuBackend } from './qemu-backend.js';
import { SimBackend } from './sim-backend.js';

export const BACKEND_KINDS: readonly BackendKind[] = ['sim', 'qemu'];

/** The sim-only features a lab uses: `x-` capabilities, parameters and commands. */
export function simOnlyFeatures(lab: Lab): string[] {
  const found = new Set<string>();
  for (const k of Object.keys(lab.setup.capabilities)) if (k.startsWith('x-')) found.add(`capability ${k}`);
  for (const k of Object.keys(lab.setup.parameters)) if (k.startsWith('x-')) found.add(`parameter ${k}`);
  for (const step of lab.steps) {
    for (const a of step.actions) {
      if (a.type !== 'qmp') continue;
      if (a.execute.startsWith('x-')) found.add(`command ${a.execute}`);
      if (a.execute === 'migrate-set-capabilities' || a.execute === 'migrate-set-parameters') {
        const caps = (a.arguments as { capabilities?: { capability?: string }[] }).capabilities ?? [];
        for (const c of caps) if (c.capability?.startsWith('x-')) found.add(`capability ${c.capability}`);
        for (const k of Object.keys(a.arguments)) if (k.startsWith('x-')) found.add(`parameter ${k}`);
      }
    }
  }
  return [...found];
}

/** Why `lab` cannot run on `backend` (one sentence), or undefined when it can. */
export function backendProblem(lab: Lab, backend: BackendKind): string | undefined {
  if (lab.backends.includes(backend)) return undefined;
  const declared = `lab '${lab.id}' runs on ${lab.backends.join(' and ')} only (its file says backends: [${lab.backends.join(', ')}])`;
  if (backend === 'qemu') {
    const x = simOnlyFeatures(lab);
    const why = x.length
      ? `: it uses ${x.join(', ')}, the sim's own experimental features, which QEMU does not have`
      : ': it relies on what only the sim reports';
    return `${declared}${why}. Run it with --backend sim (the default).`;
  }
  return `${declared}. Run it with --backend ${lab.backends[0]}.`;
}

export interface QemuBackendChoice {
  /** A path to qemu-system-x86_64; else PATH is searched. */
  qemu?: string;
  /** Force an accelerator (POSTCOPY_LAB_QEMU_ACCEL); default: KVM when usable, else TCG. */
  accel?: 'kvm' | 'tcg' | 'auto';
}

/** Build a backend. QEMU: throws QemuNotFoundError (its message is the install sentence). */
export async function makeBackend(kind: BackendKind, choice: QemuBackendChoice = {}): Promise<VmBackend> {
  if (kind === 'sim') return new SimBackend();
  const bin = await findQemu(choice.qemu);
  const version = await qemuVersion(bin);
  const accel = await chooseAccel(choice.accel ?? 'auto');
  return new QemuBackend({ bin, version, accel: accel.accel, accelNote: accel.note });
}
