/**
 * The one fault model: what a link fault may be (parsing and validation, with messages a person
 * mid-lab can act on), which directions it targets, what it does to a direction's config, and
 * how it is said in words. The relay, the kernel link, the lab schema, the runner and the TUI all
 * ask here, so "bandwidth 0 means no cap" or "up keeps shaping" is decided once. The links only
 * render a config (relay stages, tc/nft) and say what their host cannot do.
 */
import { z } from 'zod';
import { DIRECTIONS, type Direction, type LinkDirectionState, type LinkFault } from '../types.js';
import { fmtRate } from '../util/format.js';

/** The live settings of one direction. 0 means off for latency, jitter and loss, and "no cap" for rate. */
export interface DirectionConfig {
  state: LinkDirectionState;
  latencyMs: number;
  jitterMs: number;
  lossPercent: number;
  /** 0 means unlimited. */
  rateBytesPerSec: number;
}

/** A direction with nothing applied: what `restore` returns to. */
export const CLEAR_CONFIG: Readonly<DirectionConfig> = Object.freeze({ state: 'up', latencyMs: 0, jitterMs: 0, lossPercent: 0, rateBytesPerSec: 0 });

/**
 * Upper bounds: generous, but small enough that a typo (three zeros too many) is caught, and
 * the same on both links so a lab valid on one is valid on the other.
 */
export const FAULT_LIMITS = {
  maxLatencyMs: 60_000,
  /** 1 Tbit/s. */
  maxRateBytesPerSec: 125_000_000_000,
  maxFlapMs: 3_600_000,
} as const;

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
export const FAULT_KINDS = Object.keys(FAULT_EXAMPLES) as LinkFault['kind'][];
export const FAULT_DIRECTIONS: readonly (Direction | 'both')[] = ['both', ...DIRECTIONS];

// ---------------------------------------------------------------------------------------------
// Parsing and validation.

const show = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value));

const direction = z
  .enum(['source-to-destination', 'destination-to-source', 'both'], {
    error: (iss) => `direction must be "source-to-destination", "destination-to-source" or "both", got ${show(iss.input)}`,
  })
  .optional();

const finite = (what: string) =>
  // zod 4's number() already rejects NaN and ±Infinity.
  z.number({
    error: (iss) => (iss.input === undefined ? `${what} is required (a number)` : `${what} must be a finite number, got ${show(iss.input)}`),
  });

/** A number in [min, max], with one sentence for both bounds. */
const range = (what: string, min: number, max: number, unit: string) => {
  const msg = (iss: { input?: unknown }) => `${what} must be from ${min} to ${max} ${unit}, got ${show(iss.input)}`;
  return finite(what).min(min, { error: msg }).max(max, { error: msg });
};

const phaseMs = (what: string) => {
  const msg = (iss: { input?: unknown }) => `${what} must be > 0 and at most ${FAULT_LIMITS.maxFlapMs} milliseconds, got ${show(iss.input)}`;
  return finite(what).gt(0, { error: msg }).max(FAULT_LIMITS.maxFlapMs, { error: msg });
};

const rate = () => {
  const msg = (iss: { input?: unknown }) =>
    `bandwidth bytesPerSec must be 0 (no cap) or from 1 to ${FAULT_LIMITS.maxRateBytesPerSec} bytes per second, got ${show(iss.input)}`;
  return finite('bandwidth bytesPerSec').refine((v) => v === 0 || (v >= 1 && v <= FAULT_LIMITS.maxRateBytesPerSec), { error: msg });
};

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
    ms: range('latency ms', 0, FAULT_LIMITS.maxLatencyMs, 'milliseconds'),
    jitterMs: range('latency jitterMs', 0, FAULT_LIMITS.maxLatencyMs, 'milliseconds').optional(),
  }),
  loss: strict('loss', { kind: z.literal('loss'), direction, percent: range('loss percent', 0, 100, 'percent') }),
  bandwidth: strict('bandwidth', { kind: z.literal('bandwidth'), direction, bytesPerSec: rate() }),
  flap: strict('flap', {
    kind: z.literal('flap'),
    direction,
    upMs: phaseMs('flap upMs'),
    downMs: phaseMs('flap downMs'),
    mode: z.enum(['cut', 'blackhole'], { error: (iss) => `flap mode must be "cut" or "blackhole", got ${show(iss.input)}` }).optional(),
    count: finite('flap count')
      .int({ error: (iss) => `flap count must be a whole number, got ${show(iss.input)}` })
      .gt(0, { error: (iss) => `flap count must be > 0, got ${show(iss.input)}` })
      .optional(),
  }),
} satisfies Record<LinkFault['kind'], z.ZodType>;

/** Thrown by parseLinkFault; `message` is meant to be shown to a person as is. */
export class LinkFaultError extends Error {
  override readonly name = 'LinkFaultError';
  constructor(
    message: string,
    /** The field at fault (`ms`, `direction`...), when it is one field; lab files point at it. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Checks that `input` is a LinkFault; throws LinkFaultError naming what is wrong and the right form. */
export function parseLinkFault(input: unknown): LinkFault {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new LinkFaultError(`a fault must be an object such as ${FAULT_EXAMPLES.latency}, got ${show(input)}`);
  }
  const kind = (input as { kind?: unknown }).kind;
  if (typeof kind !== 'string' || !(FAULT_KINDS as string[]).includes(kind)) {
    throw new LinkFaultError(
      `${kind === undefined ? 'a fault needs a "kind"' : `unknown fault kind ${show(kind)}`}; expected one of ${FAULT_KINDS.join(', ')}, e.g. ${FAULT_EXAMPLES.latency}`,
      'kind',
    );
  }
  const k = kind as LinkFault['kind'];
  const result = SCHEMAS[k].safeParse(input);
  if (!result.success) {
    const { issues } = result.error;
    const problems = issues.map((issue) => issue.message).join('; ');
    const first = issues[0]?.path[0];
    const field = issues.length === 1 && typeof first === 'string' ? first : undefined;
    throw new LinkFaultError(`${problems} (the right form: ${FAULT_EXAMPLES[k]})`, field);
  }
  return result.data as LinkFault;
}

// ---------------------------------------------------------------------------------------------
// What a fault does.

/** The directions a fault acts on: both when it names none. */
export function faultTargets(fault: LinkFault): Direction[] {
  return fault.direction === undefined || fault.direction === 'both' ? [...DIRECTIONS] : [fault.direction];
}

/** up/cut/blackhole/down/flap set the cable's state (and replace a running flap); the rest shape. */
export function isCableFault(fault: LinkFault): fault is Extract<LinkFault, { kind: 'up' | 'cut' | 'blackhole' | 'down' | 'flap' }> {
  return fault.kind === 'up' || fault.kind === 'cut' || fault.kind === 'blackhole' || fault.kind === 'down' || fault.kind === 'flap';
}

/** The state a flap alternates with `up`. Default `cut` on both links: same lab, same outcome. */
export const flapMode = (fault: Extract<LinkFault, { kind: 'flap' }>): 'cut' | 'blackhole' => fault.mode ?? 'cut';

/**
 * A direction's config after `fault`. Rules:
 * - `up`, `cut`, `blackhole`, `down` set the state and keep shaping (latency, loss, rate);
 * - a flap's config is its first phase (its `mode`); the schedule flips the state from there;
 * - latency, loss and bandwidth each replace their own previous value and compose with the rest;
 *   0 turns them off (bandwidth 0: no cap).
 */
export function nextConfig(prev: Readonly<DirectionConfig>, fault: LinkFault): DirectionConfig {
  switch (fault.kind) {
    case 'up':
    case 'cut':
    case 'blackhole':
    case 'down':
      return { ...prev, state: fault.kind };
    case 'flap':
      return { ...prev, state: flapMode(fault) };
    case 'latency':
      return { ...prev, latencyMs: fault.ms, jitterMs: fault.jitterMs ?? 0 };
    case 'loss':
      return { ...prev, lossPercent: fault.percent };
    case 'bandwidth':
      return { ...prev, rateBytesPerSec: fault.bytesPerSec };
  }
}

// ---------------------------------------------------------------------------------------------
// Words.

/** `both directions`, `source→destination` or `destination→source`. */
export function describeDirection(d: Direction | 'both' | undefined): string {
  if (d === undefined || d === 'both') return 'both directions';
  return d === 'source-to-destination' ? 'source→destination' : 'destination→source';
}


/** What the fault does, without its direction: `latency 200 ms ± 50 ms`, `no rate cap`. */
export function describeFaultKind(f: LinkFault): string {
  switch (f.kind) {
    case 'latency':
      if (f.ms === 0 && !f.jitterMs) return 'no added latency';
      return `latency ${f.ms} ms${f.jitterMs ? ` ± ${f.jitterMs} ms` : ''}`;
    case 'loss':
      return f.percent === 0 ? 'no loss' : `loss ${f.percent}%`;
    case 'bandwidth':
      return f.bytesPerSec === 0 ? 'no rate cap' : `rate ${fmtRate(f.bytesPerSec, { trim: true })}`;
    case 'flap':
      return `flap: ${flapMode(f)} ${f.downMs} ms every ${f.upMs + f.downMs} ms${f.count ? `, ${f.count}×` : ''}`;
    default:
      return f.kind;
  }
}

/** The fault in words, with the directions it affects: `blackhole (destination→source)`. */
export function describeFault(f: LinkFault): string {
  return `${describeFaultKind(f)} (${describeDirection(f.direction)})`;
}
