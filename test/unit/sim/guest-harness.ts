/**
 * The Guest workload on vitest's fake clock, as its unit tests drive it: hooks that record
 * every access, and a run of a given length.
 */
import { vi } from 'vitest';
import { Guest, type AccessResult, type MemoryHooks, type WorkloadSpec } from '../../../src/sim/workload.js';

export interface Access {
  vcpu: number;
  page: number;
  write: boolean;
}

/** Hooks that record every access and answer with `decide` (default: always ok). */
export function recorder(decide: (a: Access) => AccessResult = () => 'ok'): MemoryHooks & { log: Access[] } {
  const log: Access[] = [];
  return {
    log,
    access(vcpu, page, write) {
      const a = { vcpu, page, write };
      log.push(a);
      return decide(a);
    },
  };
}

/** Starts a guest, advances the fake clock by `ms`, stops it. */
export function run(s: WorkloadSpec, pages: number, ms: number, hooks = recorder()): { guest: Guest; log: Access[] } {
  const guest = new Guest(s, pages, hooks);
  guest.start();
  vi.advanceTimersByTime(ms);
  guest.stop();
  return { guest, log: hooks.log };
}
