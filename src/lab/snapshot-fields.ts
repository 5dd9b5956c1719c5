/**
 * Conditions in lab files, checked against the shape of the Snapshot at load time, so a misspelt
 * path (`destination.pages.recieved`) fails with a suggestion instead of reading `undefined`
 * until the step times out.
 */
import type { LinkDirectionSnapshot, LinkSnapshot, PagesInfo, RamStats, RecoveryFileInfo, RecoverySourceInfo, SideSnapshot, Snapshot } from '../types.js';
import { ConditionSyntaxError, conditionPaths, formatPath, parseCondition, type Condition } from './condition.js';
import { didYouMean, expectedGot, FieldError, leaf, suggest } from './schema-fields.js';

// ---------------------------------------------------------------------------------------------
// Conditions, checked against the shape of the Snapshot so a misspelt path fails at load time
// instead of silently reading `undefined` until the step times out.

export type FieldTree = true | { readonly [key: string]: FieldTree };

// `satisfies Record<keyof X, ...>` makes tsc fail here when types.ts gains or loses a field.
export const RAM_FIELDS = {
  total: true,
  transferred: true,
  remaining: true,
  duplicate: true,
  normal: true,
  'normal-bytes': true,
  'page-size': true,
  'pages-per-second': true,
  mbps: true,
  'dirty-pages-rate': true,
  'dirty-sync-count': true,
  'precopy-bytes': true,
  'postcopy-bytes': true,
  'postcopy-requests': true,
} satisfies Record<keyof RamStats, FieldTree>;

export const PAGES_FIELDS = {
  'page-size': true,
  total: true,
  sent: true,
  received: true,
  requested: true,
  'in-flight': true,
  missing: true,
  'duplicates-discarded': true,
  resent: true,
  'blocked-vcpus': true,
  'fault-latency-us': { p50: true, p99: true, count: true },
  'blocktime-ms': true,
  'blocktime-worst-vcpu-ms': true,
  'wire-bytes': true,
  walker: { active: true, position: true, total: true, done: true },
  guest: { progress: true, 'ops-per-second': true, 'window-ms': true },
  recoveries: true,
  'recovery-attempts': true,
  verified: true,
  mismatches: true,
  'from-file': true,
  'counts-unknown': true,
  'blocktime-unknown': true,
  'blocktime-at-end': true,
  unreported: true,
  map: true,
} satisfies Record<keyof PagesInfo, FieldTree>;

export const SIDE_FIELDS = {
  side: true,
  alive: true,
  runState: true,
  status: true,
  ram: RAM_FIELDS,
  pages: PAGES_FIELDS,
  error: true,
  stalledMs: true,
  throttle: true,
  guest: { rate: true, nominal: true, percent: true },
  recoveryFile: {
    mode: true,
    file: true,
    state: true,
    'window-bytes': true,
    'bytes-written': true,
    digest: true,
    'file-bytes': true,
    'held-pages': true,
    'unsent-pages': true,
    'window-pages': true,
    'write-ms': true,
    'elapsed-ms': true,
    error: true,
  } satisfies Record<keyof RecoveryFileInfo, FieldTree>,
  recoverySource: {
    file: true,
    'held-pages': true,
    'served-pages': true,
    'window-bytes': true,
    'destination-lacked': true,
    'missing-pages': true,
    'missing-first': true,
    'minimum-bytes': true,
  } satisfies Record<keyof RecoverySourceInfo, FieldTree>,
} satisfies Record<keyof SideSnapshot, FieldTree>;

export const DIRECTION_FIELDS = {
  state: true,
  latencyMs: true,
  jitterMs: true,
  rateBytesPerSec: true,
  lossPercent: true,
  bytesForwarded: true,
  bytesDropped: true,
} satisfies Record<keyof LinkDirectionSnapshot, FieldTree>;

export const LINK_FIELDS = {
  kind: true,
  up: true,
  flapping: true,
  connections: true,
  'source-to-destination': DIRECTION_FIELDS,
  'destination-to-source': DIRECTION_FIELDS,
} satisfies Record<keyof LinkSnapshot, FieldTree>;

/** Every path a condition may read: the Snapshot's fields. */
export const SNAPSHOT_FIELDS = {
  t: true,
  source: SIDE_FIELDS,
  destination: SIDE_FIELDS,
  link: LINK_FIELDS,
} satisfies Record<keyof Snapshot, FieldTree>;

/** Why `segments` is not a Snapshot path, or undefined when it is one. */
export function checkSnapshotPath(segments: readonly string[]): string | undefined {
  let node: FieldTree = SNAPSHOT_FIELDS;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (node === true) {
      return `${formatPath(segments)}: ${formatPath(segments.slice(0, i))} is a value and has no field '${s}'`;
    }
    const names = Object.keys(node);
    if (!Object.hasOwn(node, s)) {
      if (i === 0) {
        const guess = suggest(s, names);
        return `unknown name '${s}' in ${formatPath(segments)} (expected one of ${names.join(', ')}${guess ? `; did you mean '${guess}'?` : ''})`;
      }
      return `unknown field '${s}' in ${formatPath(segments)}${didYouMean(s, names)}`;
    }
    node = node[s]!;
  }
  return undefined;
}

export const CONDITION_EXPECTED = 'a condition like destination.status == "completed"';

export function toCondition(v: unknown): Condition {
  if (typeof v !== 'string') throw new FieldError(expectedGot(`${CONDITION_EXPECTED} (quote it if it starts with ! or [)`, v));
  let c: Condition;
  try {
    c = parseCondition(v);
  } catch (e) {
    if (e instanceof ConditionSyntaxError) throw new FieldError(e.message, [], { conditionColumn: e.column });
    throw e;
  }
  for (const path of conditionPaths(c)) {
    const problem = checkSnapshotPath(path);
    if (problem) throw new FieldError(problem);
  }
  return c;
}
export const condition = () => leaf(CONDITION_EXPECTED, toCondition);

