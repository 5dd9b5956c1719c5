/**
 * A lab's `compare:` field → the comparison to run at its end: the lab's guest and link (its
 * setup), the backend the lab ran on, and the lab's strategies and bound.
 */
import type { Lab } from '../lab/schema.js';
import type { VmBackend } from '../driver/backend.js';
import { COMPARE_DEFAULTS, type CompareOptions } from './options.js';
import { DEFAULT_POSTCOPY_AFTER } from './strategies.js';

/** The comparison a lab asks for, or null when it has no `compare:`. */
export function compareOptionsForLab(lab: Lab, backend: VmBackend, seed: number): CompareOptions | null {
  const c = lab.compare;
  if (!c) return null;
  const g = lab.setup;
  return {
    guest: { memoryBytes: g.memoryBytes, pageSize: g.pageSize, vcpus: g.vcpus, workload: g.workload, ...(g.hotset ? { hotset: g.hotset } : {}), dirtyRate: g.dirtyRate, readRate: g.readRate },
    // Shaping faults only: a lab that starts with a cut link would compare nothing.
    link: g.link.filter((f) => f.kind === 'bandwidth' || f.kind === 'latency' || f.kind === 'loss'),
    backend: backend.kind,
    seed,
    maxPasses: c.maxPasses ?? COMPARE_DEFAULTS.maxPasses,
    maxSeconds: c.maxSeconds ?? COMPARE_DEFAULTS.maxSeconds,
    postcopyAfter: c.postcopyAfter ?? DEFAULT_POSTCOPY_AFTER,
    ...(c.maxCpuThrottle !== undefined ? { maxCpuThrottle: c.maxCpuThrottle } : {}),
    strategies: c.strategies,
    // The lab's own parameters (its max-bandwidth may be its "link"); capabilities are each strategy's.
    parameters: { ...g.parameters },
  };
}
