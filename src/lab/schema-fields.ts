/**
 * The lab file's building blocks: field parsers that run inside zod and put each problem on the
 * right path, with messages written for the lab author (what was expected, what was seen, a
 * suggestion for a misspelt name). src/lab/schema.ts assembles them into the lab format.
 */
import { z } from 'zod';
import { LinkFaultError } from '../link/fault-model.js';
import { parseDuration, parseSize, UnitError } from './duration.js';
import { TemplateError } from './template.js';

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
export function editDistance(a: string, b: string): number {
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

export const didYouMean = (word: string, candidates: readonly string[]): string => {
  const s = suggest(word, candidates);
  return s === undefined ? '' : ` (did you mean '${s}'?)`;
};

// ---------------------------------------------------------------------------------------------
// Building blocks. Leaves are plain functions that throw FieldError; `leaf` runs one inside zod
// so that the issue lands on the right path.

export type PathKey = string | number;

/** A problem with one field; `subPath` is relative to the field being checked. */
export class FieldError extends Error {
  constructor(
    message: string,
    readonly subPath: PathKey[] = [],
    readonly params: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const missing = (expected: string): string => `required field is missing (expected ${expected})`;
export const expectedGot = (expected: string, v: unknown): string => `expected ${expected}, got ${describeValue(v)}`;

export function leaf<T>(expected: string, parse: (v: unknown) => T) {
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

export const zodError = (expected: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? missing(expected) : expectedGot(expected, iss.input);

export function text(expected: string, opts: { nonEmpty?: boolean } = {}) {
  return leaf(expected, (v) => {
    if (typeof v !== 'string') throw new FieldError(expectedGot(expected, v));
    if (opts.nonEmpty && v.trim() === '') throw new FieldError(`expected ${expected}, got an empty string`);
    return v;
  });
}

export function oneOf<const T extends readonly string[]>(values: T, what = 'one of') {
  const list = values.join(', ');
  return leaf(`${what} ${list}`, (v) => {
    if (typeof v !== 'string' || !values.includes(v)) {
      throw new FieldError(`${expectedGot(`${what} ${list}`, v)}${typeof v === 'string' ? didYouMean(v, values) : ''}`);
    }
    return v as T[number];
  });
}

export function numberIn(what: string, opts: { min?: number; max?: number; int?: boolean; above?: number }) {
  return leaf(what, (v) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FieldError(expectedGot(what, v));
    if (opts.int && !Number.isSafeInteger(v)) throw new FieldError(expectedGot(what, v));
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max) || (opts.above !== undefined && v <= opts.above)) {
      throw new FieldError(expectedGot(what, v));
    }
    return v;
  });
}

export const boolean = (what = 'true or false') =>
  leaf(what, (v) => {
    if (typeof v !== 'boolean') throw new FieldError(expectedGot(what, v));
    return v;
  });

export const DURATION_EXPECTED = 'a duration like 500ms, 2s or 1m';
export function toDuration(v: unknown): number {
  if (typeof v === 'number') {
    // A bare number is ambiguous (is `timeout: 30` seconds or milliseconds?), so lab files
    // always spell the unit. 0 needs none.
    if (v === 0) return 0;
    throw new FieldError(`${expectedGot(DURATION_EXPECTED, v)} (a bare number is ambiguous: write ${v}ms or ${v}s)`);
  }
  if (typeof v !== 'string') throw new FieldError(expectedGot(DURATION_EXPECTED, v));
  return parseDuration(v);
}
export const duration = () => leaf(DURATION_EXPECTED, toDuration);

export const SIZE_EXPECTED = 'a size like 4096, 64K, 256M or 1G';
export function toSize(v: unknown): number {
  if (typeof v !== 'string' && typeof v !== 'number') throw new FieldError(expectedGot(SIZE_EXPECTED, v));
  return parseSize(v);
}
export const size = () => leaf(SIZE_EXPECTED, toSize);

export function list<T extends z.ZodType>(item: T, expected: string, minItems = 0) {
  return z
    .array(item, { error: zodError(expected) })
    .min(minItems, { error: `expected ${expected}, with at least ${minItems === 1 ? 'one item' : `${minItems} items`}` });
}

export function plainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A mapping with exactly the keys of `shape`. Unknown keys are reported one by one, on the key,
 * with a suggestion, alongside any other problem in the same mapping.
 */
export function strictObject<S extends z.ZodRawShape>(shape: S, expected: string) {
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
export function delegate<T extends z.ZodType>(schema: T, v: unknown, ctx: z.RefinementCtx, at: PathKey[] = []): z.output<T> | typeof z.NEVER {
  const r = schema.safeParse(v, { reportInput: true });
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [...at, ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
  return z.NEVER;
}

/** Step and wait-until timeout when the lab gives none. */
export const DEFAULT_TIMEOUT_MS = 60_000;
