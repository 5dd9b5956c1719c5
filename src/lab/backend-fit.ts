/**
 * Whether a lab can run on a backend, and why not. This is about labs (their `x-` features and
 * declared `backends`), so it lives in the lab layer: the driver knows nothing of labs.
 */
import type { BackendKind } from '../driver/backend.js';
import type { Lab } from './schema.js';

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
