/**
 * The lab file format (DESIGN.md, "Labs and drills: one file format"): a zod schema that reads
 * the YAML as authors write it (kebab-case keys, "2s", "256M", condition text) and produces the
 * normalized `Lab` the runner uses (milliseconds, bytes, parsed conditions, defaults filled).
 *
 * Every message is written for the lab author and says what was expected; zod records where
 * (the issue path), and load.ts turns that path into a file, line and column.
 */
import { z } from 'zod';
import type {
  LinkDirectionSnapshot,
  LinkFault,
  LinkSnapshot,
  PagesInfo,
  RamStats,
  Side,
  SideSnapshot,
  Snapshot,
} from '../types.js';
import { FAULT_DIRECTIONS, FAULT_KINDS, LinkFaultError, parseLinkFault } from '../link/fault-model.js';
import { ConditionSyntaxError, conditionPaths, formatPath, parseCondition, type Condition } from './condition.js';
import { parseDuration, parseSize, UnitError } from './duration.js';
import { findTemplateVariables, knownTemplateNames, PARAM_PREFIX, SETUP_TEMPLATE_VARIABLES, TEMPLATE_VARIABLES, TemplateError, unknownVariableMessage } from './template.js';
import { HOLD_PARAMETER_NAMES, type HoldParameter, type LabHold } from './hold.js';

// ---------------------------------------------------------------------------------------------
// The normalized lab

export const BACKENDS = ['sim', 'qemu'] as const;
export type Backend = (typeof BACKENDS)[number];

export const WORKLOADS = ['sequential', 'random', 'hotset'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** Step and wait-until timeout when the lab gives none. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** migrate-set-parameters members whose value is a size: "50M" becomes 52428800. */
export const SIZE_PARAMETERS: readonly string[] = [
  'max-bandwidth',
  'max-postcopy-bandwidth',
  'avail-switchover-bandwidth',
  'xbzrle-cache-size',
];

export interface LabSetup {
  memoryBytes: number;
  pageSize: number;
  vcpus: number;
  workload: Workload;
  /** Present exactly when workload is 'hotset' (defaults: fraction 0.1, share 0.9). */
  hotset?: { fraction: number; share: number };
  /** Guest writes per second per vCPU. */
  dirtyRate: number;
  /** Guest reads per second per vCPU. */
  readRate: number;
  /** Applied with migrate-set-capabilities on both sides. */
  capabilities: Record<string, boolean>;
  /** Applied with migrate-set-parameters on both sides; size parameters already in bytes. */
  parameters: Record<string, number | string | boolean>;
  /**
   * Merged over `parameters` when a person runs the lab (the TUI): a slower link gives a
   * human time to read and act; a drill keeps the fast ones.
   */
  interactiveParameters: Record<string, number | string | boolean>;
  /** Faults applied to the link before the first step. */
  link: LinkFault[];
  seed?: number;
}

/** One thing a step does; the runner performs these for "show me" and in drills. */
export type LabAction =
  | {
      type: 'qmp';
      side: Side;
      execute: string;
      /** May hold `${incoming.listen}` etc.; expand with expandTemplates before sending. */
      arguments: Record<string, unknown>;
      /** Send as exec-oob. */
      oob: boolean;
      /** When set, the command must fail with an error whose desc contains this text. */
      expectError?: string;
      /**
       * When set, an error whose desc contains this text is acceptable and the step goes on
       * (for a state that depends on the network: e.g. a destination still listening).
       */
      allowError?: string;
    }
  | { type: 'link'; fault: LinkFault }
  | { type: 'restore' }
  | { type: 'wait'; ms: number }
  | { type: 'wait-until'; condition: Condition; timeoutMs: number };

export interface LabStep {
  /** 0-based position in the lab. */
  index: number;
  title: string;
  text: string;
  /** At least one, revealed one at a time. */
  hints: string[];
  actions: LabAction[];
  /** Proves the step is done. */
  until: Condition;
  timeoutMs: number;
  /** What to hold while the step waits for a person (src/lab/hold.ts). */
  hold?: LabHold;
}

export interface Lab {
  id: string;
  title: string;
  summary: string;
  backends: Backend[];
  setup: LabSetup;
  steps: LabStep[];
  /** Final conditions, all of which must hold. */
  expect: Condition[];
  /** Shown when the lab ends. */
  summaryText: string;
}

// ---------------------------------------------------------------------------------------------
// Messages

/** A value as a message shows it: 'text', 42, true, "nothing (an empty value)", "a list". */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'nothing (an empty value)';
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 37)}...` : v}'`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("recieved"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `word` when it is close enough to be a likely typo. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance && d <= limit) {
      best = c;
      bestDistance = d;
    }
  }
  if (best !== undefined || word.length < 3) return best;
  // An abbreviation ("dir" for "direction", "dest" for "destination"), when only one fits.
  const prefixed = candidates.filter((c) => c.toLowerCase().startsWith(word.toLowerCase()));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

const didYouMean = (word: string, candidates: readonly string[]): string => {
  const s = suggest(word, candidates);
  return s === undefined ? '' : ` (did you mean '${s}'?)`;
};

// ---------------------------------------------------------------------------------------------
// Building blocks. Leaves are plain functions that throw FieldError; `leaf` runs one inside zod
// so that the issue lands on the right path.

type PathKey = string | number;

/** A problem with one field; `subPath` is relative to the field being checked. */
class FieldError extends Error {
  constructor(
    message: string,
    readonly subPath: PathKey[] = [],
    readonly params: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const missing = (expected: string): string => `required field is missing (expected ${expected})`;
const expectedGot = (expected: string, v: unknown): string => `expected ${expected}, got ${describeValue(v)}`;

function leaf<T>(expected: string, parse: (v: unknown) => T) {
  return z.unknown().transform((v, ctx): T => {
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: missing(expected), params: { missing: true } });
      return z.NEVER;
    }
    try {
      return parse(v);
    } catch (e) {
      if (e instanceof FieldError) {
        ctx.addIssue({ code: 'custom', message: e.message, path: e.subPath, params: e.params });
        return z.NEVER;
      }
      if (e instanceof UnitError || e instanceof TemplateError || e instanceof LinkFaultError) {
        ctx.addIssue({ code: 'custom', message: e.message });
        return z.NEVER;
      }
      throw e;
    }
  });
}

const zodError = (expected: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? missing(expected) : expectedGot(expected, iss.input);

function text(expected: string, opts: { nonEmpty?: boolean } = {}) {
  return leaf(expected, (v) => {
    if (typeof v !== 'string') throw new FieldError(expectedGot(expected, v));
    if (opts.nonEmpty && v.trim() === '') throw new FieldError(`expected ${expected}, got an empty string`);
    return v;
  });
}

function oneOf<const T extends readonly string[]>(values: T, what = 'one of') {
  const list = values.join(', ');
  return leaf(`${what} ${list}`, (v) => {
    if (typeof v !== 'string' || !values.includes(v)) {
      throw new FieldError(`${expectedGot(`${what} ${list}`, v)}${typeof v === 'string' ? didYouMean(v, values) : ''}`);
    }
    return v as T[number];
  });
}

function numberIn(what: string, opts: { min?: number; max?: number; int?: boolean; above?: number }) {
  return leaf(what, (v) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FieldError(expectedGot(what, v));
    if (opts.int && !Number.isSafeInteger(v)) throw new FieldError(expectedGot(what, v));
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max) || (opts.above !== undefined && v <= opts.above)) {
      throw new FieldError(expectedGot(what, v));
    }
    return v;
  });
}

const boolean = (what = 'true or false') =>
  leaf(what, (v) => {
    if (typeof v !== 'boolean') throw new FieldError(expectedGot(what, v));
    return v;
  });

const DURATION_EXPECTED = 'a duration like 500ms, 2s or 1m';
function toDuration(v: unknown): number {
  if (typeof v === 'number') {
    // A bare number is ambiguous (is `timeout: 30` seconds or milliseconds?), so lab files
    // always spell the unit. 0 needs none.
    if (v === 0) return 0;
    throw new FieldError(`${expectedGot(DURATION_EXPECTED, v)} (a bare number is ambiguous: write ${v}ms or ${v}s)`);
  }
  if (typeof v !== 'string') throw new FieldError(expectedGot(DURATION_EXPECTED, v));
  return parseDuration(v);
}
const duration = () => leaf(DURATION_EXPECTED, toDuration);

const SIZE_EXPECTED = 'a size like 4096, 64K, 256M or 1G';
function toSize(v: unknown): number {
  if (typeof v !== 'string' && typeof v !== 'number') throw new FieldError(expectedGot(SIZE_EXPECTED, v));
  return parseSize(v);
}
const size = () => leaf(SIZE_EXPECTED, toSize);

function list<T extends z.ZodType>(item: T, expected: string, minItems = 0) {
  return z
    .array(item, { error: zodError(expected) })
    .min(minItems, { error: `expected ${expected}, with at least ${minItems === 1 ? 'one item' : `${minItems} items`}` });
}

function plainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A mapping with exactly the keys of `shape`. Unknown keys are reported one by one, on the key,
 * with a suggestion, alongside any other problem in the same mapping.
 */
function strictObject<S extends z.ZodRawShape>(shape: S, expected: string) {
  const object = z.object(shape);
  const keys = Object.keys(shape);
  return z.unknown().transform((v, ctx): z.output<typeof object> => {
    if (!plainObject(v)) {
      ctx.addIssue({ code: 'custom', message: v === undefined ? missing(expected) : expectedGot(expected, v), params: { missing: v === undefined } });
      return z.NEVER;
    }
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) {
        ctx.addIssue({ code: 'custom', path: [k], message: `unknown field '${k}'${didYouMean(k, keys)}`, params: { unknownKey: true } });
      }
    }
    const r = object.safeParse(v, { reportInput: true });
    if (!r.success) {
      for (const issue of r.error.issues) ctx.addIssue({ ...issue } as Parameters<typeof ctx.addIssue>[0]);
      return z.NEVER;
    }
    return r.data;
  });
}

/** Runs `schema` on `v` inside a transform, passing its issues up with their paths. */
function delegate<T extends z.ZodType>(schema: T, v: unknown, ctx: z.RefinementCtx, at: PathKey[] = []): z.output<T> | typeof z.NEVER {
  const r = schema.safeParse(v, { reportInput: true });
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [...at, ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
  return z.NEVER;
}

// ---------------------------------------------------------------------------------------------
// Conditions, checked against the shape of the Snapshot so a misspelt path fails at load time
// instead of silently reading `undefined` until the step times out.

type FieldTree = true | { readonly [key: string]: FieldTree };

// `satisfies Record<keyof X, ...>` makes tsc fail here when types.ts gains or loses a field.
const RAM_FIELDS = {
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

const PAGES_FIELDS = {
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
  map: true,
} satisfies Record<keyof PagesInfo, FieldTree>;

const SIDE_FIELDS = {
  side: true,
  alive: true,
  runState: true,
  status: true,
  ram: RAM_FIELDS,
  pages: PAGES_FIELDS,
  error: true,
  stalledMs: true,
} satisfies Record<keyof SideSnapshot, FieldTree>;

const DIRECTION_FIELDS = {
  state: true,
  latencyMs: true,
  jitterMs: true,
  rateBytesPerSec: true,
  lossPercent: true,
  bytesForwarded: true,
  bytesDropped: true,
} satisfies Record<keyof LinkDirectionSnapshot, FieldTree>;

const LINK_FIELDS = {
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

const CONDITION_EXPECTED = 'a condition like destination.status == "completed"';

function toCondition(v: unknown): Condition {
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
const condition = () => leaf(CONDITION_EXPECTED, toCondition);

// ---------------------------------------------------------------------------------------------
// Link faults. Lab files may write units (`ms: 2s`, `bytesPerSec: 10M`) and get a suggestion
// for a misspelt name; after converting, the fault model (src/link/fault-model.ts) decides what
// is valid (ranges, whole numbers), so a lab can never hold a fault the links would refuse.

const msField = () => leaf('milliseconds, or a duration like 500ms or 2s', (v) => (typeof v === 'number' ? v : toDuration(v)));
const direction = () => oneOf(FAULT_DIRECTIONS).optional();
/** Any number: its range is the fault model's to check. */
const faultNumber = () => leaf('a number', (v) => v);

const FAULT_SHAPES = {
  up: { kind: z.literal('up'), direction: direction() },
  cut: { kind: z.literal('cut'), direction: direction() },
  blackhole: { kind: z.literal('blackhole'), direction: direction() },
  down: { kind: z.literal('down'), direction: direction() },
  latency: { kind: z.literal('latency'), direction: direction(), ms: msField(), jitterMs: msField().optional() },
  loss: { kind: z.literal('loss'), direction: direction(), percent: faultNumber() },
  bandwidth: { kind: z.literal('bandwidth'), direction: direction(), bytesPerSec: size() },
  flap: {
    kind: z.literal('flap'),
    direction: direction(),
    upMs: msField(),
    downMs: msField(),
    mode: oneOf(['cut', 'blackhole'] as const).optional(),
    count: faultNumber().optional(),
  },
} satisfies Record<LinkFault['kind'], z.ZodRawShape>;

const FAULT_SCHEMAS = Object.fromEntries(
  Object.entries(FAULT_SHAPES).map(([kind, shape]) => [kind, strictObject(shape, `a ${kind} fault`)]),
) as unknown as Record<LinkFault['kind'], z.ZodType>;

const FAULT_EXPECTED = `a link fault like { kind: cut, direction: both } (kind: ${FAULT_KINDS.join(', ')})`;

const linkFault = () =>
  z.unknown().transform((v, ctx): LinkFault => {
    if (!plainObject(v)) {
      ctx.addIssue({ code: 'custom', message: v === undefined ? missing(FAULT_EXPECTED) : expectedGot(FAULT_EXPECTED, v) });
      return z.NEVER;
    }
    const kind = v['kind'];
    if (typeof kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(kind)) {
      const message =
        kind === undefined
          ? missing(`a fault kind: one of ${FAULT_KINDS.join(', ')}`)
          : `${expectedGot(`a fault kind: one of ${FAULT_KINDS.join(', ')}`, kind)}${typeof kind === 'string' ? didYouMean(kind, FAULT_KINDS) : ''}`;
      ctx.addIssue({ code: 'custom', path: kind === undefined ? [] : ['kind'], message, params: { missing: kind === undefined } });
      return z.NEVER;
    }
    const converted = delegate(FAULT_SCHEMAS[kind as LinkFault['kind']], v, ctx);
    if (converted === z.NEVER) return z.NEVER;
    try {
      return parseLinkFault(converted);
    } catch (e) {
      if (e instanceof LinkFaultError) {
        ctx.addIssue({ code: 'custom', path: e.field ? [e.field] : [], message: e.message });
        return z.NEVER;
      }
      throw e;
    }
  });

// ---------------------------------------------------------------------------------------------
// Actions: a mapping whose one action key (qmp, link, wait, wait-until) says what it is.

const SIDES = ['source', 'destination'] as const satisfies readonly Side[];
const ACTION_KEYS = ['qmp', 'link', 'wait', 'wait-until'] as const;
const ACTION_EXPECTED = `an action: a mapping with one of ${ACTION_KEYS.join(', ')}`;

/** Reports each `${name}` in QMP arguments that is not a template variable, on its own path. */
function checkTemplates(value: unknown, path: PathKey[], ctx: z.RefinementCtx): void {
  if (typeof value === 'string') {
    try {
      for (const name of findTemplateVariables(value)) {
        // param.* names depend on the lab's setup: the whole lab's check looks at those.
        if (name.startsWith(PARAM_PREFIX)) continue;
        if (!([...TEMPLATE_VARIABLES, ...SETUP_TEMPLATE_VARIABLES] as readonly string[]).includes(name)) {
          const guess = suggest(name, [...TEMPLATE_VARIABLES, ...SETUP_TEMPLATE_VARIABLES]);
          ctx.addIssue({ code: 'custom', path, message: `${unknownVariableMessage(name)}${guess ? ` (did you mean '\${${guess}}'?)` : ''}` });
        }
      }
    } catch (e) {
      if (e instanceof TemplateError) ctx.addIssue({ code: 'custom', path, message: e.message });
      else throw e;
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkTemplates(v, [...path, i], ctx));
  } else if (plainObject(value)) {
    for (const [k, v] of Object.entries(value)) checkTemplates(v, [...path, k], ctx);
  }
}

const qmpArguments = () =>
  leaf('a mapping of QMP arguments', (v) => {
    if (!plainObject(v)) throw new FieldError(expectedGot('a mapping of QMP arguments, like { uri: "${incoming.listen}" }', v));
    return v;
  });

const QMP_ACTION = strictObject(
  {
    qmp: oneOf(SIDES, 'the side to send to:'),
    execute: text('a QMP command name like migrate-incoming', { nonEmpty: true }),
    arguments: qmpArguments().optional(),
    oob: boolean().optional(),
    'expect-error': text('part of the expected error text').optional(),
    'allow-error': text('part of an error text that is acceptable').optional(),
  },
  'a qmp action',
);
const LINK_ACTION = strictObject({ link: z.unknown() }, 'a link action');
const WAIT_ACTION = strictObject({ wait: duration() }, 'a wait action');
const WAIT_UNTIL_ACTION = strictObject({ 'wait-until': condition(), timeout: duration().optional() }, 'a wait-until action');

const LINK_VALUE_EXPECTED = `${FAULT_EXPECTED}, or "restore"`;

const action = () =>
  z.unknown().transform((v, ctx): LabAction => {
    if (!plainObject(v)) {
      ctx.addIssue({ code: 'custom', message: expectedGot(ACTION_EXPECTED, v) });
      return z.NEVER;
    }
    const present = ACTION_KEYS.filter((k) => Object.hasOwn(v, k));
    if (present.length === 0) {
      // A misspelt or invented action key is the likely cause: point at it and name the known ones.
      const keys = Object.keys(v);
      const k = keys.find((key) => suggest(key, ACTION_KEYS)) ?? keys[0];
      if (k === undefined) {
        ctx.addIssue({ code: 'custom', message: expectedGot(ACTION_EXPECTED, v) });
        return z.NEVER;
      }
      const s = suggest(k, ACTION_KEYS);
      const message = s
        ? `unknown field '${k}' (did you mean '${s}'?)`
        : `unknown action '${k}' (an action is one of ${ACTION_KEYS.join(', ')})`;
      ctx.addIssue({ code: 'custom', path: [k], message, params: { unknownKey: true } });
      return z.NEVER;
    }
    if (present.length > 1) {
      ctx.addIssue({ code: 'custom', message: `an action has exactly one of ${ACTION_KEYS.join(', ')}; this one has ${present.join(' and ')} (make each its own list item)` });
      return z.NEVER;
    }
    switch (present[0]!) {
      case 'qmp': {
        const a = delegate(QMP_ACTION, v, ctx);
        if (a === z.NEVER) return z.NEVER;
        const args = a.arguments ?? {};
        const before = ctx.issues.length;
        checkTemplates(args, ['arguments'], ctx);
        if (ctx.issues.length > before) return z.NEVER;
        return {
          type: 'qmp',
          side: a.qmp,
          execute: a.execute,
          arguments: args,
          oob: a.oob ?? false,
          ...(a['expect-error'] !== undefined ? { expectError: a['expect-error'] } : {}),
          ...(a['allow-error'] !== undefined ? { allowError: a['allow-error'] } : {}),
        };
      }
      case 'link': {
        if (delegate(LINK_ACTION, v, ctx) === z.NEVER) return z.NEVER;
        const value = v['link'];
        if (value === 'restore') return { type: 'restore' };
        if (!plainObject(value)) {
          const hint = typeof value === 'string' ? didYouMean(value, ['restore']) : '';
          ctx.addIssue({ code: 'custom', path: ['link'], message: `${expectedGot(LINK_VALUE_EXPECTED, value)}${hint}` });
          return z.NEVER;
        }
        const fault = delegate(linkFault(), value, ctx, ['link']);
        return fault === z.NEVER ? z.NEVER : { type: 'link', fault };
      }
      case 'wait': {
        const a = delegate(WAIT_ACTION, v, ctx);
        return a === z.NEVER ? z.NEVER : { type: 'wait', ms: a.wait };
      }
      case 'wait-until': {
        const a = delegate(WAIT_UNTIL_ACTION, v, ctx);
        return a === z.NEVER ? z.NEVER : { type: 'wait-until', condition: a['wait-until'], timeoutMs: a.timeout ?? DEFAULT_TIMEOUT_MS };
      }
    }
  });

// ---------------------------------------------------------------------------------------------
// Setup, steps, the whole lab

const sizeParameters = () =>
  leaf('a mapping of migration parameters', (v) => {
    if (!plainObject(v)) throw new FieldError(expectedGot('a mapping of migration parameters, like { downtime-limit: 300 }', v));
    const out: [string, number | string | boolean][] = [];
    for (const [k, value] of Object.entries(v)) {
      if (SIZE_PARAMETERS.includes(k)) {
        if (typeof value !== 'string' && typeof value !== 'number') throw new FieldError(expectedGot(SIZE_EXPECTED, value), [k]);
        try {
          out.push([k, parseSize(value)]);
        } catch (e) {
          if (e instanceof UnitError) throw new FieldError(e.message, [k]);
          throw e;
        }
      } else if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') {
        out.push([k, value]);
      } else {
        throw new FieldError(expectedGot('a number, a string or true/false', value), [k]);
      }
    }
    // Object.fromEntries keeps a key such as "__proto__" an ordinary key.
    return Object.fromEntries(out);
  });

const capabilities = () =>
  leaf('a mapping of capability: true/false', (v) => {
    if (!plainObject(v)) throw new FieldError(expectedGot('a mapping of capability: true/false, like { postcopy-ram: true }', v));
    for (const [k, value] of Object.entries(v)) {
      if (typeof value !== 'boolean') throw new FieldError(expectedGot('true or false', value), [k]);
    }
    return Object.fromEntries(Object.entries(v)) as Record<string, boolean>;
  });

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

const SETUP = strictObject(
  {
    memory: size(),
    'page-size': size().optional(),
    vcpus: numberIn('a whole number of vCPUs from 1 to 64', { int: true, min: 1, max: 64 }).optional(),
    workload: oneOf(WORKLOADS).optional(),
    hotset: strictObject(
      {
        fraction: numberIn('the hot fraction of memory, above 0 and at most 1', { above: 0, max: 1 }),
        share: numberIn('the share of accesses that hit the hot set, from 0 to 1', { min: 0, max: 1 }),
      },
      'a hot set like { fraction: 0.1, share: 0.9 }',
    ).optional(),
    'dirty-rate': numberIn('guest writes per second per vCPU (0 or more)', { min: 0 }).optional(),
    'read-rate': numberIn('guest reads per second per vCPU (0 or more)', { min: 0 }).optional(),
    capabilities: capabilities().optional(),
    parameters: sizeParameters().optional(),
    'interactive-parameters': sizeParameters().optional(),
    link: list(linkFault(), 'a list of link faults').optional(),
    seed: numberIn('a whole number seed (0 or more)', { int: true, min: 0 }).optional(),
  },
  'a setup mapping with at least memory',
).transform((s, ctx): LabSetup => {
  const pageSize = s['page-size'] ?? 4096;
  const workload = s.workload ?? 'random';
  let ok = true;
  if (!isPowerOfTwo(pageSize) || pageSize < 512 || pageSize > 65536) {
    ctx.addIssue({ code: 'custom', path: ['page-size'], message: `expected a power of two from 512 to 65536, got ${pageSize}` });
    ok = false;
  }
  if (ok && (s.memory < pageSize || s.memory % pageSize !== 0)) {
    ctx.addIssue({ code: 'custom', path: ['memory'], message: `expected a whole number of ${pageSize}-byte pages (at least one), got ${s.memory} bytes` });
    ok = false;
  }
  if (s.hotset !== undefined && workload !== 'hotset') {
    ctx.addIssue({ code: 'custom', path: ['hotset'], message: `hotset is only used with workload: hotset (this lab's workload is ${workload})` });
    ok = false;
  }
  if (!ok) return z.NEVER;
  return {
    memoryBytes: s.memory,
    pageSize,
    vcpus: s.vcpus ?? 2,
    workload,
    ...(workload === 'hotset' ? { hotset: s.hotset ?? { fraction: 0.1, share: 0.9 } } : {}),
    dirtyRate: s['dirty-rate'] ?? 1000,
    readRate: s['read-rate'] ?? 10000,
    capabilities: s.capabilities ?? {},
    parameters: s.parameters ?? {},
    interactiveParameters: s['interactive-parameters'] ?? {},
    link: s.link ?? [],
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
  };
});

const HOLD_EXPECTED = `a hold like { while: 'source.status == "postcopy-active"', max-postcopy-bandwidth: 64K } (parameters: ${HOLD_PARAMETER_NAMES.join(', ')})`;

/** `hold:` — an optional `while` and at least one of the parameters a hold may set. */
const hold = () =>
  z.unknown().transform((v, ctx): LabHold => {
    if (!plainObject(v)) {
      ctx.addIssue({ code: 'custom', message: expectedGot(HOLD_EXPECTED, v) });
      return z.NEVER;
    }
    const parameters: Partial<Record<HoldParameter, number>> = {};
    let cond: Condition | null = null;
    let ok = true;
    for (const [k, value] of Object.entries(v)) {
      try {
        if (k === 'while') cond = toCondition(value);
        else if (k === 'x-walk-window') {
          if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new FieldError(expectedGot('a whole number of requests, 1 or more', value));
          parameters[k] = value;
        } else if ((HOLD_PARAMETER_NAMES as readonly string[]).includes(k)) {
          parameters[k as HoldParameter] = toSize(value);
        } else {
          throw new FieldError(
            `unknown hold parameter '${k}'${didYouMean(k, [...HOLD_PARAMETER_NAMES, 'while'])} (a hold sets ${HOLD_PARAMETER_NAMES.join(', ')}, with an optional while)`,
            [],
            { unknownKey: true },
          );
        }
      } catch (e) {
        ok = false;
        if (e instanceof FieldError) ctx.addIssue({ code: 'custom', path: [k, ...e.subPath], message: e.message, params: e.params });
        else if (e instanceof UnitError) ctx.addIssue({ code: 'custom', path: [k], message: e.message });
        else throw e;
      }
    }
    if (!ok) return z.NEVER;
    if (Object.keys(parameters).length === 0) {
      ctx.addIssue({ code: 'custom', message: `a hold sets at least one parameter (expected ${HOLD_EXPECTED})` });
      return z.NEVER;
    }
    return { while: cond, parameters };
  });

const STEP = strictObject(
  {
    title: text('a step title', { nonEmpty: true }),
    text: text('the step text'),
    hints: list(text('a hint', { nonEmpty: true }), 'a list of hints', 1),
    do: list(action(), 'a list of actions').optional(),
    until: condition(),
    timeout: duration().optional(),
    hold: hold().optional(),
  },
  'a step mapping with title, text, hints and until',
).superRefine((step, ctx) => {
  // Hints and text show the addresses too: a misspelt placeholder would reach the person as is.
  checkTemplates(step.text, ['text'], ctx);
  checkTemplates(step.hints, ['hints'], ctx);
});

const backends = () =>
  list(oneOf(BACKENDS, 'a backend:'), 'a list of backends', 1).transform((bs, ctx) => {
    const dup = bs.find((b, i) => bs.indexOf(b) !== i);
    if (dup) ctx.addIssue({ code: 'custom', message: `backend '${dup}' is listed twice` });
    return bs;
  });

/** The schema of a whole lab file's contents (after YAML parsing), producing a `Lab`. */
export const LAB_SCHEMA = strictObject(
  {
    id: leaf('an id of lower-case letters, digits and dashes', (v) => {
      if (typeof v !== 'string' || !/^[a-z0-9-]+$/.test(v)) throw new FieldError(expectedGot('an id of lower-case letters, digits and dashes, like link-cut-recovery', v));
      return v;
    }),
    title: text('a title', { nonEmpty: true }),
    summary: text('a one-line summary', { nonEmpty: true }),
    backends: backends().optional(),
    setup: SETUP,
    steps: list(STEP, 'a list of steps', 1),
    expect: list(condition(), 'a list of final conditions', 1),
    'summary-text': text('the text shown at the end'),
  },
  'a lab: a mapping with id, title, summary, setup, steps, expect and summary-text',
).transform((l, ctx): Lab => {
  // A hold puts back the values in effect before it; those must be the lab's own, not a
  // backend's default (which differs between the sim and QEMU versions).
  const parameterNames = [...new Set([...Object.keys(l.setup.parameters), ...Object.keys(l.setup.interactiveParameters)])];
  const known = knownTemplateNames(parameterNames);
  const checkParams = (value: unknown, path: PathKey[]) => {
    let names: string[];
    try {
      names = findTemplateVariables(value);
    } catch {
      return; // an unterminated ${ was reported where it is
    }
    for (const name of names) {
      if (name.startsWith(PARAM_PREFIX) && !known.includes(name)) {
        const guess = suggest(name, known);
        ctx.addIssue({
          code: 'custom',
          path,
          message: `unknown template variable '\${${name}}': this lab's setup does not set ${name.slice(PARAM_PREFIX.length)} (known: ${known.map((k) => `\${${k}}`).join(', ')})${guess ? ` (did you mean '\${${guess}}'?)` : ''}`,
        });
      }
    }
  };
  l.steps.forEach((s, i) => {
    checkParams(s.text, ['steps', i, 'text']);
    checkParams(s.hints, ['steps', i, 'hints']);
    (s.do ?? []).forEach((a, j) => {
      if (a.type === 'qmp') checkParams(a.arguments, ['steps', i, 'do', j, 'arguments']);
    });
  });
  l.steps.forEach((s, i) => {
    for (const k of Object.keys(s.hold?.parameters ?? {})) {
      if (!Object.hasOwn(l.setup.parameters, k)) {
        ctx.addIssue({
          code: 'custom',
          path: ['steps', i, 'hold', k],
          message: `a hold on ${k} needs the value it restores: set ${k} in setup.parameters (and interactive-parameters if a person's run differs)`,
        });
      }
    }
  });
  return {
    id: l.id,
    title: l.title,
    summary: l.summary,
    backends: l.backends ?? ['sim'],
    setup: l.setup,
    steps: l.steps.map((s, index) => ({
      index,
      title: s.title,
      text: s.text,
      hints: s.hints,
      actions: s.do ?? [],
      until: s.until,
      timeoutMs: s.timeout ?? DEFAULT_TIMEOUT_MS,
      ...(s.hold ? { hold: s.hold } : {}),
    })),
    expect: l.expect,
    summaryText: l['summary-text'],
  };
});
