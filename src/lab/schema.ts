/**
 * The lab file format (DESIGN.md, "Labs and drills: one file format"): a zod schema that reads
 * the YAML as authors write it (kebab-case keys, "2s", "256M", condition text) and produces the
 * normalized `Lab` the runner uses (milliseconds, bytes, parsed conditions, defaults filled).
 *
 * Every message is written for the lab author and says what was expected; zod records where
 * (the issue path), and load.ts turns that path into a file, line and column.
 */
import { z } from 'zod';
import type { FailureReason, LinkFault, Side } from '../types.js';
import type { Condition } from './condition.js';
import { parseSize, UnitError } from './duration.js';
import { findTemplateVariables, knownTemplateNames, PARAM_PREFIX } from './template.js';
import { suggest, didYouMean, type PathKey, FieldError, expectedGot, leaf, text, oneOf, numberIn, duration, SIZE_EXPECTED, toSize, size, list, plainObject, strictObject, DEFAULT_TIMEOUT_MS } from './schema-fields.js';
import { toCondition, condition, stepCondition } from './snapshot-fields.js';
import { action, checkTemplates, linkFault } from './schema-actions.js';
import { parseRange, QemuRangeError, RANGE_EXPECTED, type QemuRange } from './qemu-range.js';
import { HOLD_PARAMETER_NAMES, type HoldParameter, type LabHold } from './hold.js';
import { MAX_POSTCOPY_AFTER, planStrategies, StrategyError, STRATEGIES_EXPECTED } from '../compare/strategies.js';

// ---------------------------------------------------------------------------------------------
// The normalized lab

export const BACKENDS = ['sim', 'qemu', 'libvirt'] as const;
export type Backend = (typeof BACKENDS)[number];

export const WORKLOADS = ['sequential', 'random', 'hotset'] as const;
export type Workload = (typeof WORKLOADS)[number];


/** migrate-set-parameters members whose value is a size: "50M" becomes 52428800. */
export const SIZE_PARAMETERS: readonly string[] = [
  'max-bandwidth',
  'max-postcopy-bandwidth',
  'avail-switchover-bandwidth',
  'xbzrle-cache-size',
  'x-recovery-file-window',
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
  /** A virsh subcommand against a side's libvirt daemon (argv only; --backend libvirt). */
  /** `expectError`: it must fail with that text, and is awaited even when it is a `migrate` (which otherwise runs in the background). */
  | { type: 'virsh'; side: Side; args: string[]; allowError?: string; expectError?: string }
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
      /**
       * libvirt only: send on the destination's extra QMP socket, around libvirt's job. Only
       * an out-of-band migrate-pause to the destination (src/libvirt/commands.ts EXTRA_MONITOR).
       */
      via?: 'x-extra-monitor';
    }
  | { type: 'link'; fault: LinkFault }
  | { type: 'restore' }
  /**
   * An operator's hand on a VM process: `kill` (SIGKILL, not reported as a death), `start` a
   * fresh one with the same command line (the destination waits for migrate-incoming; the lab's
   * capabilities and parameters are set again), `restart` (kill if running, then start), or
   * `recovery-source` (source only: once the source is gone, a recovery source serving its
   * recovery file takes its place; src/driver/orchestrator.ts).
   */
  | { type: 'vm'; side: Side; do: VmOperation }
  | { type: 'wait'; ms: number }
  | { type: 'wait-until'; condition: Condition; timeoutMs: number };

/** What a `vm` action does to a side's process (schema-actions.ts VM_OPERATIONS). */
export type VmOperation = 'kill' | 'start' | 'restart' | 'recovery-source';

/**
 * How a lab's run is meant to end when that is not a verified completion: `failure` names the
 * one reason (types.ts FailureReason) that makes the run a pass. Any other end fails it.
 */
export interface LabOutcome {
  failure: FailureReason;
}

/** The QEMU versions a lab holds for, and (optionally) why the others differ. */
export interface LabQemu {
  range: QemuRange;
  because?: string;
}

/** Text for the versions a range names: shown with the step when the QEMU in use is one of them. */
export interface VersionNote {
  range: QemuRange;
  text: string;
}

export interface LabStep {
  /** 0-based position in the lab. */
  index: number;
  title: string;
  text: string;
  /** What some QEMU versions do differently here (src/lab/qemu-range.ts); may be empty. */
  notes: VersionNote[];
  /** At least one, revealed one at a time. */
  hints: string[];
  actions: LabAction[];
  /** Proves the step is done. */
  until: Condition;
  timeoutMs: number;
  /** What to hold while the step waits for a person (src/lab/hold.ts). */
  hold?: LabHold;
  /**
   * A person's run that went another way, and the way back: while `when` holds during the step,
   * the screen says `text` and offers a rewind (double-failure's too-early reconnect succeeds
   * when the destination already listens). A drill does the step's own `do` and ignores it.
   */
  missed?: { when: Condition; text: string };
}

export interface Lab {
  id: string;
  title: string;
  summary: string;
  backends: Backend[];
  /**
   * The QEMU versions the lab holds for (real QEMU's, or the one the sim emulates); null: every
   * version. A run on another refuses to start (src/lab/backend-fit.ts).
   */
  qemu: LabQemu | null;
  /**
   * Versions on which the run ends in a known failure (a QEMU bug the lab shows), and what it
   * is: the run still fails (exit 1), and its message says this was expected.
   */
  expectedFailures: VersionNote[];
  setup: LabSetup;
  steps: LabStep[];
  /** Final conditions, all of which must hold (none when the outcome is a failure). */
  expect: Condition[];
  /** The end the lab expects instead of a verified completion; absent: completion. */
  outcome?: LabOutcome;
  /** Shown when the lab ends. */
  summaryText: string;
  /**
   * `compare:` — at the end, the drill summary and the TUI's end screen run `compare` on the
   * lab's guest and link with these strategies and show the table (src/compare/lab.ts).
   */
  compare?: LabCompare;
}

/** A lab's `compare:` field, normalized. */
export interface LabCompare {
  strategies: string[];
  maxSeconds?: number;
  maxPasses?: number;
  postcopyAfter?: number;
  maxCpuThrottle?: number;
}

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
        } else if (k === 'x-walk-rate') {
          if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new FieldError(expectedGot('a whole number of pages a second, 1 or more', value));
          parameters[k] = value;
        } else if (k === 'max-cpu-throttle') {
          if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > 99) throw new FieldError(expectedGot('a percentage from 1 to 99 (QEMU\'s range)', value));
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

const COMPARE_EXPECTED = `a comparison like { strategies: [precopy, auto-converge, postcopy] } (strategies: ${STRATEGIES_EXPECTED}; optional max-seconds, max-passes, postcopy-after, max-cpu-throttle)`;

/** `compare:` — which strategies to compare at the end, and the precopy bound. */
const compareField = () =>
  strictObject(
    {
      strategies: list(text('a strategy name', { nonEmpty: true }), 'a list of strategies', 1),
      'max-seconds': numberIn('a whole number of seconds from 1 to 3600', { int: true, min: 1, max: 3600 }).optional(),
      'max-passes': numberIn('a whole number of passes from 1 to 10000', { int: true, min: 1, max: 10_000 }).optional(),
      'postcopy-after': numberIn(`a whole number of passes from 1 to ${MAX_POSTCOPY_AFTER}`, { int: true, min: 1, max: MAX_POSTCOPY_AFTER }).optional(),
      'max-cpu-throttle': numberIn('a percentage from 1 to 99', { int: true, min: 1, max: 99 }).optional(),
    },
    COMPARE_EXPECTED,
  ).transform((c, ctx): LabCompare => {
    try {
      planStrategies(c.strategies, c['postcopy-after']);
    } catch (e) {
      if (!(e instanceof StrategyError)) throw e;
      ctx.addIssue({ code: 'custom', path: ['strategies'], message: e.message });
      return z.NEVER;
    }
    return {
      strategies: c.strategies,
      ...(c['max-seconds'] !== undefined ? { maxSeconds: c['max-seconds'] } : {}),
      ...(c['max-passes'] !== undefined ? { maxPasses: c['max-passes'] } : {}),
      ...(c['postcopy-after'] !== undefined ? { postcopyAfter: c['postcopy-after'] } : {}),
      ...(c['max-cpu-throttle'] !== undefined ? { maxCpuThrottle: c['max-cpu-throttle'] } : {}),
    };
  });

/**
 * The failures a lab may declare as its outcome: the ones that are the subject of a lesson. Not
 * a timeout, a refused command or a stop: those say the lab itself went wrong.
 */
export const OUTCOME_FAILURES = ['recovery-incomplete', 'guest-lost', 'vm-died'] as const satisfies readonly FailureReason[];

/** `outcome: { failure: recovery-incomplete }`: the run passes when it ends with exactly that failure. */
const outcomeField = () =>
  strictObject({ failure: oneOf(OUTCOME_FAILURES, 'a failure reason:') }, `an outcome like { failure: recovery-incomplete } (failures: ${OUTCOME_FAILURES.join(', ')})`).transform(
    (o): LabOutcome => ({ failure: o.failure }),
  );

const QEMU_EXPECTED = `${RANGE_EXPECTED}, or { versions: ">=10.0", because: "why the others differ" }`;

function toRange(v: unknown, subPath: PathKey[] = []): QemuRange {
  if (typeof v !== 'string') throw new FieldError(expectedGot(RANGE_EXPECTED, v), subPath);
  try {
    return parseRange(v);
  } catch (e) {
    if (e instanceof QemuRangeError) throw new FieldError(e.message, subPath);
    throw e;
  }
}

/**
 * `qemu: ">=8.2"`, or with the reason a refused run is told:
 * `qemu: { versions: ">=10.0", because: "QEMU 7.2's source ..." }` (src/lab/qemu-range.ts).
 */
const qemuVersions = () =>
  leaf(QEMU_EXPECTED, (v): LabQemu => {
    if (typeof v === 'string') return { range: toRange(v) };
    if (!plainObject(v)) throw new FieldError(expectedGot(QEMU_EXPECTED, v));
    for (const k of Object.keys(v)) {
      if (k !== 'versions' && k !== 'because') throw new FieldError(`unknown field '${k}'${didYouMean(k, ['versions', 'because'])}`, [k], { unknownKey: true });
    }
    if (v['versions'] === undefined) throw new FieldError(`required field is missing (expected ${RANGE_EXPECTED})`, ['versions']);
    const because = v['because'];
    if (because !== undefined && (typeof because !== 'string' || because.trim() === '')) {
      throw new FieldError(expectedGot('a sentence saying why other versions differ', because), ['because']);
    }
    return { range: toRange(v['versions'], ['versions']), ...(because !== undefined ? { because: because.trim() } : {}) };
  });

const NOTES_EXPECTED = 'a mapping of QEMU version range to text, like { "<9.1": "QEMU 7.2 stays in postcopy-recover ..." }';

/** `notes:` on a step: each key a range, each value the text for those versions. */
const versionNotes = () =>
  leaf(NOTES_EXPECTED, (v): VersionNote[] => {
    if (!plainObject(v)) throw new FieldError(expectedGot(NOTES_EXPECTED, v));
    const out: VersionNote[] = [];
    for (const [k, value] of Object.entries(v)) {
      let range: QemuRange;
      try {
        range = parseRange(k);
      } catch (e) {
        if (e instanceof QemuRangeError) throw new FieldError(`a note's key is a version range: ${e.message}`, [k]);
        throw e;
      }
      if (typeof value !== 'string' || value.trim() === '') throw new FieldError(expectedGot(`the text of the note for QEMU ${k}`, value), [k]);
      out.push({ range, text: value });
    }
    if (out.length === 0) throw new FieldError(`expected ${NOTES_EXPECTED}, got an empty mapping (leave notes out instead)`);
    return out;
  });

const STEP = strictObject(
  {
    title: text('a step title', { nonEmpty: true }),
    text: text('the step text'),
    notes: versionNotes().optional(),
    hints: list(text('a hint', { nonEmpty: true }), 'a list of hints', 1),
    do: list(action(), 'a list of actions').optional(),
    until: stepCondition(),
    timeout: duration().optional(),
    hold: hold().optional(),
    missed: strictObject(
      { when: stepCondition(), text: text('what went otherwise, and the way back', { nonEmpty: true }) },
      `a missed step like { when: 'source.status == "postcopy-active"', text: "The recovery succeeded: ..." }`,
    ).optional(),
  },
  'a step mapping with title, text, hints and until',
).superRefine((step, ctx) => {
  // Hints and text show the addresses too: a misspelt placeholder would reach the person as is.
  checkTemplates(step.text, ['text'], ctx);
  if (step.missed) checkTemplates(step.missed.text, ['missed', 'text'], ctx);
  for (const n of step.notes ?? []) checkTemplates(n.text, ['notes'], ctx);
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
    qemu: qemuVersions().optional(),
    'expected-failures': versionNotes().optional(),
    setup: SETUP,
    steps: list(STEP, 'a list of steps', 1),
    expect: list(condition(), 'a list of final conditions', 1).optional(),
    outcome: outcomeField().optional(),
    'summary-text': text('the text shown at the end'),
    compare: compareField().optional(),
  },
  'a lab: a mapping with id, title, summary, setup, steps, expect and summary-text',
).transform((l, ctx): Lab => {
  if (l.outcome && l.expect) {
    ctx.addIssue({ code: 'custom', path: ['expect'], message: `a lab whose outcome is a failure (${l.outcome.failure}) has no final expect: the run ends with that failure before any would be checked (remove expect, or the outcome)` });
  } else if (!l.outcome && !l.expect) {
    ctx.addIssue({ code: 'custom', path: ['expect'], message: `required field is missing (expected a list of final conditions, or an outcome: { failure: ${OUTCOME_FAILURES.join(' | ')} })`, params: { missing: true } });
  }
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
    qemu: l.qemu ?? null,
    expectedFailures: l['expected-failures'] ?? [],
    setup: l.setup,
    steps: l.steps.map((s, index) => ({
      index,
      title: s.title,
      text: s.text,
      notes: s.notes ?? [],
      hints: s.hints,
      actions: s.do ?? [],
      until: s.until,
      timeoutMs: s.timeout ?? DEFAULT_TIMEOUT_MS,
      ...(s.hold ? { hold: s.hold } : {}),
      ...(s.missed ? { missed: s.missed } : {}),
    })),
    expect: l.expect ?? [],
    ...(l.outcome ? { outcome: l.outcome } : {}),
    summaryText: l['summary-text'],
    ...(l.compare ? { compare: l.compare } : {}),
  };
});

export { describeValue, suggest } from './schema-fields.js';
export { SNAPSHOT_FIELDS, checkSnapshotPath } from './snapshot-fields.js';
export { DEFAULT_TIMEOUT_MS } from './schema-fields.js';
