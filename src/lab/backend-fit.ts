/**
 * Whether a lab can run on a backend, and why not. This is about labs (their `x-` features and
 * declared `backends`), so it lives in the lab layer: the driver knows nothing of labs.
 */
import type { BackendKind } from '../driver/backend.js';
import { EMULATED_VERSIONS } from '../sim/versions.js';
import { inRange } from './qemu-range.js';
import type { Lab, LabStep } from './schema.js';

/** The sim-only features a lab uses: `x-` capabilities, parameters and commands, and the recovery source. */
export function simOnlyFeatures(lab: Lab): string[] {
  const found = new Set<string>();
  for (const k of Object.keys(lab.setup.capabilities)) if (k.startsWith('x-')) found.add(`capability ${k}`);
  for (const k of Object.keys(lab.setup.parameters)) if (k.startsWith('x-')) found.add(`parameter ${k}`);
  for (const step of lab.steps) {
    for (const a of step.actions) {
      // The recovery source speaks the sim's migration stream, not QEMU's.
      if (a.type === 'vm' && a.do === 'recovery-source') found.add('action { vm: source, do: recovery-source }');
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

/**
 * Why `lab` cannot run on a backend whose VMs are QEMU `version` (real, or emulated by the
 * sim), in one sentence: which versions the lab holds for, and why; undefined when it can.
 */
export function versionProblem(lab: Lab, backend: { kind: BackendKind; qemuVersion: string }): string | undefined {
  if (!lab.qemu || inRange(lab.qemu.range, backend.qemuVersion)) return undefined;
  const range = lab.qemu.range.source;
  const what = backend.kind === 'qemu' ? `this QEMU is ${backend.qemuVersion}` : `the sim emulates QEMU ${backend.qemuVersion}`;
  const why = lab.qemu.because ? `: ${lab.qemu.because.replace(/[.\s]+$/, '')}` : '';
  const emulable = EMULATED_VERSIONS.filter((v) => inRange(lab.qemu!.range, v));
  const fix =
    backend.kind === 'qemu'
      ? 'pass --qemu with a QEMU in that range (postcopy-lab doctor lists the installed ones)'
      : emulable.length
        ? `run it with --emulate ${emulable[emulable.length - 1]}`
        : `the sim emulates no version in that range (it emulates ${EMULATED_VERSIONS.join(' and ')})`;
  return `lab '${lab.id}' holds for QEMU ${range} only and ${what}${why}; ${fix}.`;
}

/** The notes of `step` for QEMU `version`, in the order the lab gives them. */
export function notesFor(step: Pick<LabStep, 'notes'>, version: string): string[] {
  return step.notes.filter((n) => inRange(n.range, version)).map((n) => n.text.trim());
}

/** The step text a person reads on QEMU `version`: the text, then each note that applies. */
export function stepTextFor(step: Pick<LabStep, 'text' | 'notes'>, version: string): string {
  const notes = notesFor(step, version);
  if (notes.length === 0) return step.text;
  return `${step.text.trimEnd()}\n\n${notes.map((n) => `On QEMU ${version}: ${n}`).join('\n\n')}\n`;
}
