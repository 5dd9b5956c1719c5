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
  'received-current': true,
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
  savedRam: { file: true, bytes: true, complete: true },
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
  refused: true,
  refusedSecond: true,
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

/**
 * The root name of a step's own share of a counter: `this-step.destination.pages.recoveries` is
 * what `destination.pages.recoveries` gained since the step began (src/lab/steps.ts). A bare
 * counter also counts what a person did in earlier steps (a cut recovered in "Pull the cable"
 * made blackhole's later "recover" step done before it began).
 */
export const THIS_STEP = 'this-step';

/**
 * Why `segments` is not a Snapshot path, or undefined when it is one. With `thisStep`, a
 * `this-step.` path (a Snapshot path after it) is one too.
 */
export function checkSnapshotPath(segments: readonly string[], opts: { thisStep?: boolean } = {}): string | undefined {
  if (segments[0] === THIS_STEP) {
    if (!opts.thisStep) return `${formatPath(segments)}: '${THIS_STEP}' is a step's own: it may be read in a step's until, its wait-until and its missed.when`;
    if (segments.length === 1) return `'${THIS_STEP}' needs a counter after it, like ${THIS_STEP}.destination.pages.recoveries`;
    const inner = checkSnapshotPath(segments.slice(1));
    return inner === undefined ? undefined : `${inner} (after ${THIS_STEP})`;
  }
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

export function toCondition(v: unknown, opts: { thisStep?: boolean } = {}): Condition {
  if (typeof v !== 'string') throw new FieldError(expectedGot(`${CONDITION_EXPECTED} (quote it if it starts with ! or [)`, v));
  let c: Condition;
  try {
    c = parseCondition(v);
  } catch (e) {
    if (e instanceof ConditionSyntaxError) throw new FieldError(e.message, [], { conditionColumn: e.column });
    throw e;
  }
  for (const path of conditionPaths(c)) {
    const problem = checkSnapshotPath(path, opts);
    if (problem) throw new FieldError(problem);
  }
  return c;
}
export const condition = () => leaf(CONDITION_EXPECTED, (v) => toCondition(v));
/** A condition of a step's own (until, wait-until, missed.when): it may read `this-step.` counters. */
export const stepCondition = () => leaf(CONDITION_EXPECTED, (v) => toCondition(v, { thisStep: true }));

type Tree = { [key: string]: unknown };
const plain = (v: unknown): v is Tree => v !== null && typeof v === 'object' && !Array.isArray(v);

/** What each number in `now` gained since `base`; other values and arrays left out. */
function gained(now: Tree, base: Tree | undefined): Tree {
  const out: Tree = {};
  for (const [k, v] of Object.entries(now)) {
    const b = base && Object.hasOwn(base, k) ? base[k] : undefined;
    if (typeof v === 'number' && typeof b === 'number') out[k] = v - b;
    else if (plain(v)) out[k] = gained(v, plain(b) ? b : undefined);
  }
  return out;
}

/** The state a step's condition reads: the snapshot, and under `this-step` its gains since `base` (the snapshot when the step began). */
export function stepState(now: Snapshot, base: Snapshot | null): Snapshot | (Snapshot & { [THIS_STEP]: Tree }) {
  if (!base) return now;
  return { ...now, [THIS_STEP]: gained(now as unknown as Tree, base as unknown as Tree) };
}

