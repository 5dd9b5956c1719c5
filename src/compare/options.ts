/**
 * What a comparison runs: the guest, the link, the backend, the bound on precopy and the
 * strategies. Defaults describe the thread's case: a guest that dirties memory faster than the
 * link carries it (4 vCPUs × 3000 random writes/s of 4 KiB pages, up to 47 MiB/s dirtied, on
 * a 32 MiB/s link): plain precopy never converges, auto-converge does at about 50% throttle,
 * and each strategy takes 10–30 s on the sim.
 */
import type { BackendKind } from '../driver/backend.js';
import { BACKEND_CHOICES, BACKEND_KINDS } from '../driver/select-backend.js';
import { parseDuration, parseSize } from '../lab/duration.js';
import { WORKLOADS, type Workload } from '../lab/schema.js';
import type { GuestSpec } from '../driver/backend.js';
import type { LinkFault } from '../types.js';
import { parseEmulatedVersion, type EmulatedVersion } from '../sim/versions.js';
import { DEFAULT_POSTCOPY_AFTER, MAX_POSTCOPY_AFTER, planStrategies, STRATEGY_BASES, StrategyError } from './strategies.js';

/** The guest a comparison runs: the orchestrator's GuestSpec, the seed aside (one per run). */
export type CompareGuest = Omit<GuestSpec, 'seed'>;

export interface CompareOptions {
  guest: CompareGuest;
  /** Applied to the relay before each migration (bandwidth, latency, …). */
  link: LinkFault[];
  backend: BackendKind;
  qemu?: string;
  emulate?: EmulatedVersion;
  seed: number;
  /** A precopy still running after this many passes, or seconds, is cancelled: did not converge. */
  maxPasses: number;
  maxSeconds: number;
  /** N of postcopy-after (when the strategy name does not carry it). */
  postcopyAfter: number;
  /** max-cpu-throttle for auto-converge; QEMU's default (99) when absent. */
  maxCpuThrottle?: number;
  strategies: string[];
  /** migrate-set-parameters on the source before each migration (a lab's own, e.g. max-bandwidth). */
  parameters?: Record<string, number | string | boolean>;
}

const MiB = 1024 * 1024;

export const COMPARE_DEFAULTS = {
  memory: '128M',
  vcpus: 4,
  workload: 'random' as Workload,
  dirtyRate: 3000,
  readRate: 8000,
  bandwidth: '32M',
  latency: '0ms',
  seed: 1,
  maxPasses: 30,
  maxSeconds: 30,
} as const;

/** A bad option: the message names the option and what it takes. */
export class CompareOptionError extends Error {}

/** The command line's strings, as parseArgs gives them. */
export interface CompareFlags {
  memory?: string;
  vcpus?: string;
  workload?: string;
  'dirty-rate'?: string;
  'read-rate'?: string;
  bandwidth?: string;
  latency?: string;
  threads?: string;
  backend?: string;
  qemu?: string;
  emulate?: string;
  seed?: string;
  'max-passes'?: string;
  'max-seconds'?: string;
  'postcopy-after'?: string;
  'max-cpu-throttle'?: string;
  strategies?: string;
}

function int(v: string | undefined, flag: string, lo: number, hi: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < lo || n > hi) throw new CompareOptionError(`${flag}: '${v}' must be a whole number from ${lo} to ${hi}`);
  return n;
}

function size(v: string, flag: string, what: string): number {
  try {
    return parseSize(v);
  } catch {
    throw new CompareOptionError(`${flag}: '${v}' must be ${what}, like 32M or 1G (binary units)`);
  }
}

/** Command-line flags → options; throws CompareOptionError naming the option and what is allowed. */
export function parseCompareFlags(f: CompareFlags): CompareOptions {
  const memoryBytes = size(f.memory ?? COMPARE_DEFAULTS.memory, '--memory', 'a guest size');
  if (memoryBytes < 4096 || memoryBytes % 4096 !== 0 || memoryBytes > 64 * 1024 ** 3) {
    throw new CompareOptionError(`--memory: '${f.memory}' must be a whole number of 4 KiB pages, from 4K to 64G`);
  }
  const workload = f.workload ?? COMPARE_DEFAULTS.workload;
  if (!(WORKLOADS as readonly string[]).includes(workload)) throw new CompareOptionError(`--workload: '${workload}' is not a workload (expected ${WORKLOADS.join(', ')})`);
  const bandwidth = size(f.bandwidth ?? COMPARE_DEFAULTS.bandwidth, '--bandwidth', 'bytes per second');
  if (bandwidth < 64 * 1024 || bandwidth > 10 * 1024 ** 3) throw new CompareOptionError(`--bandwidth: '${f.bandwidth}' must be from 64K to 10G per second (the link's cap; it has to be finite for a comparison)`);
  let latencyMs: number;
  try {
    latencyMs = parseDuration(f.latency ?? COMPARE_DEFAULTS.latency);
  } catch {
    throw new CompareOptionError(`--latency: '${f.latency}' must be a duration like 5ms or 0.1s`);
  }
  if (latencyMs > 10_000) throw new CompareOptionError(`--latency: '${f.latency}' must be at most 10s`);
  const backend = f.backend ?? (f.qemu ? 'qemu' : 'sim');
  if (!(BACKEND_KINDS as readonly string[]).includes(backend)) throw new CompareOptionError(`--backend: '${backend}' is not a backend (expected ${BACKEND_CHOICES})`);
  if (backend === 'libvirt') throw new CompareOptionError('--backend libvirt: compare runs strategies on the sim or QEMU backend only (libvirt sets its own migration options); use --backend qemu');
  if (f.qemu && backend !== 'qemu') throw new CompareOptionError(`--qemu is for the QEMU backend, but --backend is '${backend}'`);
  let emulate: EmulatedVersion | undefined;
  if (f.emulate !== undefined) {
    if (backend !== 'sim') throw new CompareOptionError(`--emulate is for the sim backend: with --backend ${backend} the QEMU you run is its own version (choose it with --qemu PATH)`);
    try {
      emulate = parseEmulatedVersion(f.emulate);
    } catch (e) {
      throw new CompareOptionError(`--emulate: ${(e as Error).message}`);
    }
  }
  const postcopyAfter = int(f['postcopy-after'], '--postcopy-after', 1, MAX_POSTCOPY_AFTER, DEFAULT_POSTCOPY_AFTER);
  const strategies = f.strategies === undefined ? STRATEGY_BASES.map(String) : f.strategies.split(',').map((s) => s.trim());
  try {
    planStrategies(strategies, postcopyAfter);
  } catch (e) {
    if (e instanceof StrategyError) throw new CompareOptionError(`--strategies: ${e.message}`);
    throw e;
  }
  const threads = f.threads === undefined ? undefined : int(f.threads, '--threads', 1, 64, 1);
  const link: LinkFault[] = [{ kind: 'bandwidth', bytesPerSec: bandwidth }];
  if (latencyMs > 0) link.push({ kind: 'latency', ms: latencyMs });
  return {
    guest: {
      memoryBytes,
      pageSize: 4096,
      vcpus: int(f.vcpus, '--vcpus', 1, 64, COMPARE_DEFAULTS.vcpus),
      workload: workload as Workload,
      ...(workload === 'hotset' ? { hotset: { fraction: 0.1, share: 0.9 } } : {}),
      dirtyRate: int(f['dirty-rate'], '--dirty-rate', 0, 1_000_000, COMPARE_DEFAULTS.dirtyRate),
      readRate: int(f['read-rate'], '--read-rate', 0, 1_000_000, COMPARE_DEFAULTS.readRate),
      ...(threads !== undefined ? { threadsPerVcpu: threads } : {}),
    },
    link,
    backend: backend as BackendKind,
    ...(f.qemu ? { qemu: f.qemu } : {}),
    ...(emulate ? { emulate } : {}),
    seed: int(f.seed, '--seed', 0, 2 ** 32 - 1, COMPARE_DEFAULTS.seed),
    maxPasses: int(f['max-passes'], '--max-passes', 1, 10_000, COMPARE_DEFAULTS.maxPasses),
    maxSeconds: int(f['max-seconds'], '--max-seconds', 1, 3600, COMPARE_DEFAULTS.maxSeconds),
    postcopyAfter,
    ...(f['max-cpu-throttle'] !== undefined ? { maxCpuThrottle: int(f['max-cpu-throttle'], '--max-cpu-throttle', 1, 99, 99) } : {}),
    strategies,
  };
}

/** The options as a JSON record states them (each result line carries them). */
export function describeOptions(o: CompareOptions, qemuVersion: string): Record<string, unknown> {
  const bw = o.link.find((f): f is Extract<LinkFault, { kind: 'bandwidth' }> => f.kind === 'bandwidth');
  const lat = o.link.find((f): f is Extract<LinkFault, { kind: 'latency' }> => f.kind === 'latency');
  return {
    memory: o.guest.memoryBytes,
    vcpus: o.guest.vcpus,
    workload: o.guest.workload,
    dirtyRate: o.guest.dirtyRate,
    readRate: o.guest.readRate,
    threads: o.guest.threadsPerVcpu ?? 1,
    bandwidth: bw?.bytesPerSec ?? null,
    latencyMs: lat?.ms ?? 0,
    backend: o.backend,
    qemuVersion,
    seed: o.seed,
    maxPasses: o.maxPasses,
    maxSeconds: o.maxSeconds,
    postcopyAfter: o.postcopyAfter,
    ...(o.maxCpuThrottle !== undefined ? { maxCpuThrottle: o.maxCpuThrottle } : {}),
  };
}

/** "256 MiB, 4 vCPUs random, 4000 writes/s per vCPU (62 MiB/s) on a 32 MiB/s link": the run in one line. */
export function describeRun(o: CompareOptions, qemuVersion: string): string {
  const d = describeOptions(o, qemuVersion);
  const dirtied = (o.guest.vcpus * o.guest.dirtyRate * o.guest.pageSize) / MiB;
  const mib = (n: number) => `${(n / MiB).toFixed(n % MiB ? 1 : 0)} MiB/s`;
  const cap = o.parameters?.['max-bandwidth'];
  const bw = typeof d.bandwidth === 'number' ? `a ${mib(d.bandwidth)} link` : typeof cap === 'number' ? `a link used at max-bandwidth ${mib(cap)}` : 'an uncapped link';
  const threads = o.guest.threadsPerVcpu && o.guest.threadsPerVcpu > 1 ? `, ${o.guest.threadsPerVcpu} threads per vCPU` : '';
  return (
    `${o.guest.memoryBytes / MiB} MiB guest, ${o.guest.vcpus} vCPUs ${o.guest.workload}${threads}, ${o.guest.dirtyRate} writes/s per vCPU ` +
    `(up to ${dirtied.toFixed(0)} MiB/s dirtied) on ${bw}${d.latencyMs ? ` with ${d.latencyMs} ms latency` : ''}; ` +
    `${o.backend === 'sim' ? `sim as QEMU ${qemuVersion}` : `QEMU ${qemuVersion}`}, seed ${o.seed}; precopy bound ${o.maxPasses} passes or ${o.maxSeconds} s`
  );
}
