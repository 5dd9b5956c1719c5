/**
 * Names and units, checked before anything runs and rendered so that tc cannot misread them.
 *
 * Our API takes explicit units: bytes per second, milliseconds, percent. tc has its own and a
 * classic trap: `mbps` is megaBYTES per second and `mbit` megabits. We always render rates in
 * plain bits (`8000000bit`), sizes in plain bytes (`16384b`), times in `ms` (or `us` when not a
 * whole millisecond) and percentages with an explicit `%`.
 */
import { FAULT_LIMITS } from '../link/fault-model.js';
import { KernelValidationError } from './errors.js';

/** Everything this tool creates carries this prefix, so cleanup can find it and nothing else. */
export const PREFIX = 'pcl-';

/** Linux's IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME = 15;

const IFNAME_RE = /^[a-zA-Z0-9_.-]+$/;
const NETNS_RE = /^[a-zA-Z0-9_.-]+$/;
/** nft identifiers: a letter first, then letters, digits, `_`, `-`, `.`. */
const NFT_NAME_RE = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;
const RUN_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

/**
 * The fault ranges are the fault model's (src/link/fault-model.ts), which refuses a bad fault
 * before the kernel link sees it; the checks here only make sure tc is never handed a value
 * it could misread.
 */
export const LIMITS = {
  maxLatencyMs: FAULT_LIMITS.maxLatencyMs,
  maxRateBytesPerSec: FAULT_LIMITS.maxRateBytesPerSec,
  maxRunIdLength: 40,
} as const;

export function validateIfName(name: string, field = 'interface'): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_IFNAME || !IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new KernelValidationError(
      field,
      `${field} ${JSON.stringify(name)} is not a valid interface name: 1 to ${MAX_IFNAME} characters from [a-zA-Z0-9_.-]`,
    );
  }
  return name;
}

export function validateNetnsName(name: string, field = 'namespace'): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 64 || !NETNS_RE.test(name) || name.startsWith('.')) {
    throw new KernelValidationError(
      field,
      `${field} ${JSON.stringify(name)} is not a valid namespace name: 1 to 64 characters from [a-zA-Z0-9_.-], not starting with "."`,
    );
  }
  return name;
}

export function validateNftName(name: string, field = 'nft name'): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 64 || !NFT_NAME_RE.test(name)) {
    throw new KernelValidationError(
      field,
      `${field} ${JSON.stringify(name)} is not a valid nftables name: a letter, then up to 63 of [a-zA-Z0-9_.-]`,
    );
  }
  return name;
}

export function validateRunId(runId: string): string {
  if (typeof runId !== 'string' || runId.length === 0 || runId.length > LIMITS.maxRunIdLength || !RUN_ID_RE.test(runId)) {
    throw new KernelValidationError(
      'runId',
      `runId ${JSON.stringify(runId)} is not valid: 1 to ${LIMITS.maxRunIdLength} characters from [a-zA-Z0-9_-], starting with a letter or digit`,
    );
  }
  return runId;
}

function finite(field: string, v: number, range: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new KernelValidationError(field, `${field} must be a finite number (${range}), got ${String(v)}`);
  }
  return v;
}

/** A rate tbf can take, in bytes per second: > 0 and at most 1 Tbit/s ("no cap" is no tbf at all). */
export function validateRate(bytesPerSec: number, field = 'bytesPerSec'): number {
  const range = `bytes per second, greater than 0 and at most ${LIMITS.maxRateBytesPerSec}`;
  finite(field, bytesPerSec, range);
  if (bytesPerSec <= 0 || bytesPerSec > LIMITS.maxRateBytesPerSec) {
    throw new KernelValidationError(field, `${field} must be ${range}, got ${bytesPerSec}`);
  }
  if (Math.round(bytesPerSec * 8) < 1) {
    throw new KernelValidationError(field, `${field} must be at least 0.125 bytes per second (1 bit/s), got ${bytesPerSec}`);
  }
  return bytesPerSec;
}

/** A delay or jitter in milliseconds: 0 to 60000. */
export function validateMs(ms: number, field = 'ms', max: number = LIMITS.maxLatencyMs): number {
  const range = `milliseconds, from 0 to ${max}`;
  finite(field, ms, range);
  if (ms < 0 || ms > max) throw new KernelValidationError(field, `${field} must be ${range}, got ${ms}`);
  return ms;
}

export function validatePercent(percent: number, field = 'percent'): number {
  const range = 'percent, from 0 to 100';
  finite(field, percent, range);
  if (percent < 0 || percent > 100) throw new KernelValidationError(field, `${field} must be ${range}, got ${percent}`);
  return percent;
}

export function validatePort(port: number, field = 'port'): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new KernelValidationError(field, `${field} must be an integer from 1 to 65535, got ${String(port)}`);
  }
  return port;
}

/** bytes/s → tc's unambiguous bit rate, e.g. 1_000_000 → `8000000bit`. */
export function renderRate(bytesPerSec: number): string {
  validateRate(bytesPerSec);
  return `${Math.round(bytesPerSec * 8)}bit`;
}

/** ms → `10ms`, or `10500us` when not a whole millisecond. */
export function renderTime(ms: number, field = 'ms'): string {
  validateMs(ms, field);
  if (Number.isInteger(ms)) return `${ms}ms`;
  return `${Math.round(ms * 1000)}us`;
}

/** A byte size as tc reads it: `16384b`. */
export function renderSize(bytes: number, field = 'bytes'): string {
  if (!Number.isInteger(bytes) || bytes <= 0) {
    throw new KernelValidationError(field, `${field} must be a whole number of bytes greater than 0, got ${String(bytes)}`);
  }
  return `${bytes}b`;
}

/** 1 → `1%`, 0.25 → `0.25%` (at most four decimals; tc's own resolution is finer than that). */
export function renderPercent(percent: number, field = 'percent'): string {
  validatePercent(percent, field);
  const s = percent.toFixed(4).replace(/\.?0+$/, '');
  return `${s}%`;
}

export interface Subnet {
  /** The network address, e.g. `10.213.0.0`. */
  network: string;
  prefixLength: number;
  /** The first and second host addresses: the source and the destination. */
  sourceAddress: string;
  destinationAddress: string;
}

function ipToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/**
 * An IPv4 CIDR for the link, e.g. `10.213.0.0/24`. Its first two host addresses go to the
 * source and the destination. They only ever exist inside this run's namespaces, so two runs may
 * use the same range at once.
 */
export function parseSubnet(cidr: string, field = 'subnet'): Subnet {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(String(cidr));
  const ip = m ? ipToInt(m[1]) : undefined;
  const prefixLength = m ? Number(m[2]) : NaN;
  if (!m || ip === undefined || !(prefixLength >= 8 && prefixLength <= 30)) {
    throw new KernelValidationError(field, `${field} ${JSON.stringify(cidr)} must be an IPv4 CIDR with a prefix from /8 to /30, e.g. 10.213.0.0/24`);
  }
  const size = 2 ** (32 - prefixLength);
  const network = ip - (ip % size);
  return {
    network: intToIp(network),
    prefixLength,
    sourceAddress: intToIp(network + 1),
    destinationAddress: intToIp(network + 2),
  };
}
