/**
 * Validation of LinkFault values arriving from outside (the relay's control socket, lab files,
 * the QMP-style console): every rejection names the field, the rule and the value seen, and
 * shows the right form, because the person reading it is usually mid-lab.
 */
import { z } from 'zod';
import type { LinkFault } from '../types.js';

const FAULT_EXAMPLES: Record<LinkFault['kind'], string> = {
  up: '{"kind":"up"}',
  cut: '{"kind":"cut","direction":"source-to-destination"}',
  blackhole: '{"kind":"blackhole"}',
  down: '{"kind":"down"}',
  latency: '{"kind":"latency","ms":100,"jitterMs":10}',
  loss: '{"kind":"loss","percent":5}',
  bandwidth: '{"kind":"bandwidth","bytesPerSec":1048576}',
  flap: '{"kind":"flap","upMs":2000,"downMs":500,"mode":"cut","count":3}',
};
const KINDS = Object.keys(FAULT_EXAMPLES) as LinkFault['kind'][];

const show = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value));

const direction = z
  .enum(['source-to-destination', 'destination-to-source', 'both'], {
    error: (iss) =>
      `direction must be "source-to-destination", "destination-to-source" or "both", got ${show(iss.input)}`,
  })
  .optional();

function num(what: string, rule: 'gte0' | 'gt0' | 'percent' | 'int>0'): z.ZodNumber {
  // zod 4's number() already rejects NaN and ±Infinity.
  const s = z.number({
    error: (iss) =>
      iss.input === undefined ? `${what} is required (a number)` : `${what} must be a finite number, got ${show(iss.input)}`,
  });
  switch (rule) {
    case 'gte0':
      return s.min(0, { error: (iss) => `${what} must be ≥ 0, got ${show(iss.input)}` });
    case 'gt0':
      return s.gt(0, { error: (iss) => `${what} must be > 0, got ${show(iss.input)}` });
    case 'percent':
      return s
        .min(0, { error: (iss) => `${what} must be between 0 and 100, got ${show(iss.input)}` })
        .max(100, { error: (iss) => `${what} must be between 0 and 100, got ${show(iss.input)}` });
    case 'int>0':
      return s
        .int({ error: (iss) => `${what} must be a whole number, got ${show(iss.input)}` })
        .gt(0, { error: (iss) => `${what} must be > 0, got ${show(iss.input)}` });
  }
}

const strict = <T extends z.ZodRawShape>(kind: string, shape: T) =>
  z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys'
        ? `unknown field${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')} in a ${kind} fault`
        : undefined,
  });

const SCHEMAS = {
  up: strict('up', { kind: z.literal('up'), direction }),
  cut: strict('cut', { kind: z.literal('cut'), direction }),
  blackhole: strict('blackhole', { kind: z.literal('blackhole'), direction }),
  down: strict('down', { kind: z.literal('down'), direction }),
  latency: strict('latency', {
    kind: z.literal('latency'),
    direction,
    ms: num('latency ms', 'gte0'),
    jitterMs: num('latency jitterMs', 'gte0').optional(),
  }),
  loss: strict('loss', { kind: z.literal('loss'), direction, percent: num('loss percent', 'percent') }),
  bandwidth: strict('bandwidth', {
    kind: z.literal('bandwidth'),
    direction,
    bytesPerSec: num('bandwidth bytesPerSec', 'gt0'),
  }),
  flap: strict('flap', {
    kind: z.literal('flap'),
    direction,
    upMs: num('flap upMs', 'gt0'),
    downMs: num('flap downMs', 'gt0'),
    mode: z
      .enum(['cut', 'blackhole'], { error: (iss) => `flap mode must be "cut" or "blackhole", got ${show(iss.input)}` })
      .optional(),
    count: num('flap count', 'int>0').optional(),
  }),
} satisfies Record<LinkFault['kind'], z.ZodType>;

/** Thrown by parseLinkFault; `message` is meant to be shown to a person as is. */
export class LinkFaultError extends Error {
  override readonly name = 'LinkFaultError';
}

/** Checks that `input` is a LinkFault; throws LinkFaultError naming what is wrong and the right form. */
export function parseLinkFault(input: unknown): LinkFault {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new LinkFaultError(`a fault must be an object such as ${FAULT_EXAMPLES.latency}, got ${show(input)}`);
  }
  const kind = (input as { kind?: unknown }).kind;
  if (typeof kind !== 'string' || !(KINDS as string[]).includes(kind)) {
    throw new LinkFaultError(
      `${kind === undefined ? 'a fault needs a "kind"' : `unknown fault kind ${show(kind)}`}; expected one of ${KINDS.join(', ')}, e.g. ${FAULT_EXAMPLES.latency}`,
    );
  }
  const k = kind as LinkFault['kind'];
  const result = SCHEMAS[k].safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => issue.message).join('; ');
    throw new LinkFaultError(`${problems} (the right form: ${FAULT_EXAMPLES[k]})`);
  }
  return result.data as LinkFault;
}
