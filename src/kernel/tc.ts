/**
 * Argument arrays for `tc`: netem (delay, jitter, loss), tbf (rate) and htb qdiscs.
 * Units come in explicitly (ms, bytes per second, percent) and leave rendered so tc cannot
 * misread them (see validate.ts). Pure functions; pass the result to run().
 */
import { type Argv, inNs } from './argv.js';
import { KernelValidationError } from './errors.js';
import { renderPercent, renderRate, renderSize, renderTime, validateIfName, validateMs, validatePercent } from './validate.js';

export interface NetemOptions {
  delayMs?: number;
  jitterMs?: number;
  lossPercent?: number;
  /** Queue length in packets (netem's default, 1000, is short for a long delay at a high rate). */
  limit?: number;
}

/** `netem [limit N] [delay Xms [Yms]] [loss Z%]`: only what is non-zero. */
export function netemArgs(o: NetemOptions): string[] {
  const delay = validateMs(o.delayMs ?? 0, 'delayMs');
  const jitter = validateMs(o.jitterMs ?? 0, 'jitterMs');
  const loss = validatePercent(o.lossPercent ?? 0, 'lossPercent');
  const args = ['netem'];
  if (o.limit !== undefined) {
    if (!Number.isInteger(o.limit) || o.limit < 1) throw new KernelValidationError('limit', `limit must be a whole number of packets, at least 1, got ${o.limit}`);
    args.push('limit', String(o.limit));
  }
  if (delay > 0 || jitter > 0) {
    args.push('delay', renderTime(delay, 'delayMs'));
    if (jitter > 0) args.push(renderTime(jitter, 'jitterMs'));
  }
  if (loss > 0) args.push('loss', renderPercent(loss, 'lossPercent'));
  return args;
}

export interface TbfOptions {
  bytesPerSec: number;
  /** Bucket size. Default: 20 ms worth of the rate, at least 16 KiB (well over an MTU). */
  burstBytes?: number;
  /** How long a packet may wait in the queue before it is dropped. Default 200 ms. */
  latencyMs?: number;
}

/** The burst tbf needs to reach its rate with a coarse timer, and never less than 16 KiB. */
export function defaultBurst(bytesPerSec: number): number {
  return Math.max(16_384, Math.ceil(bytesPerSec / 50));
}

/** `tbf rate NNNbit burst NNNb latency NNms`. */
export function tbfArgs(o: TbfOptions): string[] {
  const rate = renderRate(o.bytesPerSec);
  const burst = renderSize(o.burstBytes ?? defaultBurst(o.bytesPerSec), 'burstBytes');
  const latency = o.latencyMs ?? 200;
  if (!(latency > 0)) throw new KernelValidationError('latencyMs', `tbf latencyMs must be milliseconds greater than 0, got ${latency}`);
  return ['tbf', 'rate', rate, 'burst', burst, 'latency', renderTime(latency, 'latencyMs')];
}

/** `htb default N` (root htb; classes are added with htbClassAdd). */
export function htbArgs(o: { defaultClass?: number } = {}): string[] {
  const d = o.defaultClass ?? 1;
  if (!Number.isInteger(d) || d < 0) throw new KernelValidationError('defaultClass', `defaultClass must be a whole number, got ${d}`);
  return ['htb', 'default', d.toString(16)];
}

const HANDLE_RE = /^[0-9a-f]{1,4}:[0-9a-f]{0,4}$/i;

function handle(h: string, field: string): string {
  if (!HANDLE_RE.test(h)) throw new KernelValidationError(field, `${field} ${JSON.stringify(h)} is not a tc handle (like 1: or 1:1)`);
  return h;
}

export interface QdiscPlace {
  dev: string;
  ns?: string;
  /** 'root' or a class id such as `1:1`. */
  parent?: string;
  /** e.g. `1:` */
  handle?: string;
}

function place(p: QdiscPlace): string[] {
  const parent = p.parent ?? 'root';
  return [
    'dev',
    validateIfName(p.dev),
    ...(parent === 'root' ? ['root'] : ['parent', handle(parent, 'parent')]),
    ...(p.handle === undefined ? [] : ['handle', handle(p.handle, 'handle')]),
  ];
}

/** `tc [-n NS] qdisc replace dev DEV root|parent P [handle H] KIND ARGS...`. */
export function qdiscReplace(p: QdiscPlace, kindArgs: readonly string[]): Argv {
  return ['tc', ...inNs(p.ns), 'qdisc', 'replace', ...place(p), ...kindArgs];
}

/** `tc [-n NS] qdisc add dev DEV root|parent P [handle H] KIND ARGS...`. */
export function qdiscAdd(p: QdiscPlace, kindArgs: readonly string[]): Argv {
  return ['tc', ...inNs(p.ns), 'qdisc', 'add', ...place(p), ...kindArgs];
}

/** `tc [-n NS] qdisc del dev DEV root`: back to the device's default qdisc. */
export function qdiscDelRoot(dev: string, opts: { ns?: string } = {}): Argv {
  return ['tc', ...inNs(opts.ns), 'qdisc', 'del', 'dev', validateIfName(dev), 'root'];
}

/** `tc [-n NS] -s -j qdisc show dev DEV`. */
export function qdiscShow(dev: string, opts: { ns?: string } = {}): Argv {
  return ['tc', ...inNs(opts.ns), '-s', '-j', 'qdisc', 'show', 'dev', validateIfName(dev)];
}

/** `tc [-n NS] class add dev DEV parent P classid C htb rate NNNbit`. */
export function htbClassAdd(o: { dev: string; ns?: string; parent: string; classid: string; bytesPerSec: number }): Argv {
  return [
    'tc',
    ...inNs(o.ns),
    'class',
    'add',
    'dev',
    validateIfName(o.dev),
    'parent',
    handle(o.parent, 'parent'),
    'classid',
    handle(o.classid, 'classid'),
    'htb',
    'rate',
    renderRate(o.bytesPerSec),
  ];
}

/** The shorthand the docs use: `tc qdisc replace dev X root netem delay 10ms 2ms loss 1%`. */
export function netemReplaceRoot(dev: string, o: NetemOptions & { ns?: string }): Argv {
  return qdiscReplace({ dev, ns: o.ns }, netemArgs(o));
}

/** `tc qdisc replace dev X root tbf rate ... burst ... latency ...`. */
export function tbfReplaceRoot(dev: string, o: TbfOptions & { ns?: string }): Argv {
  return qdiscReplace({ dev, ns: o.ns }, tbfArgs(o));
}
