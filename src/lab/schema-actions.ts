/**
 * A step's actions in lab files: QMP commands (with their templates checked), link faults
 * (units converted here, validity decided by the fault model), waits. src/lab/schema.ts
 * assembles them into the lab format.
 */
import { z } from 'zod';
import type { LinkFault, Side } from '../types.js';
import { FAULT_DIRECTIONS, FAULT_KINDS, LinkFaultError, parseLinkFault } from '../link/fault-model.js';
import { findTemplateVariables, PARAM_PREFIX, SETUP_TEMPLATE_VARIABLES, TEMPLATE_VARIABLES, TemplateError, unknownVariableMessage } from './template.js';
import { suggest, didYouMean, type PathKey, FieldError, missing, expectedGot, leaf, text, oneOf, boolean, toDuration, duration, size, plainObject, strictObject, delegate } from './schema-fields.js';
import { DEFAULT_TIMEOUT_MS } from './schema-fields.js';
import { stepCondition } from './snapshot-fields.js';
import type { LabAction } from './schema.js';
import { virshActionProblem } from '../libvirt/virsh-action.js';
import { EXTRA_MONITOR, extraMonitorProblem } from '../libvirt/commands.js';
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

export const FAULT_EXPECTED = `a link fault like { kind: cut, direction: both } (kind: ${FAULT_KINDS.join(', ')})`;

export const linkFault = () =>
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
// Actions: a mapping whose one action key (qmp, link, vm, wait, wait-until) says what it is.

export const SIDES = ['source', 'destination'] as const satisfies readonly Side[];
export const ACTION_KEYS = ['qmp', 'link', 'vm', 'virsh', 'wait', 'wait-until'] as const;
/**
 * What an operator does to a VM process: kill it (SIGKILL), start a fresh one, or both; or,
 * once the source is gone, start a recovery source from its recovery file in its place.
 */
export const VM_OPERATIONS = ['kill', 'start', 'restart', 'recovery-source'] as const;
const ACTION_EXPECTED = `an action: a mapping with one of ${ACTION_KEYS.join(', ')}`;

/** Reports each `${name}` in QMP arguments that is not a template variable, on its own path. */
export function checkTemplates(value: unknown, path: PathKey[], ctx: z.RefinementCtx): void {
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
    /** libvirt only: around libvirt's job, on the extra QMP socket (src/libvirt/commands.ts). */
    via: oneOf([EXTRA_MONITOR] as const, 'the path around the backend:').optional(),
  },
  'a qmp action',
);
const LINK_ACTION = strictObject({ link: z.unknown() }, 'a link action');
const VM_ACTION = strictObject(
  {
    vm: oneOf(SIDES, 'the side whose VM process to act on:'),
    do: oneOf(VM_OPERATIONS, 'what to do to the process:'),
  },
  'a vm action like { vm: destination, do: restart }',
);
const VIRSH_ACTION = strictObject(
  {
    virsh: oneOf(SIDES, "the side whose libvirt daemon to run virsh against:"),
    args: z.unknown(),
    'allow-error': text('part of an error text that is acceptable').optional(),
    /** The command must fail with this text (awaited even when it is a `migrate`: the lab expects it to end). */
    'expect-error': text('part of the expected error text').optional(),
  },
  'a virsh action like { virsh: source, args: [domstate, --reason, "${libvirt.domain}"] }',
);
const WAIT_ACTION = strictObject({ wait: duration() }, 'a wait action');
const WAIT_UNTIL_ACTION = strictObject({ 'wait-until': stepCondition(), timeout: duration().optional() }, 'a wait-until action');

const LINK_VALUE_EXPECTED = `${FAULT_EXPECTED}, or "restore"`;

export const action = () =>
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
        if (a.via !== undefined) {
          const problem = extraMonitorProblem(a.qmp, a.execute, a.oob ?? false);
          if (problem) {
            ctx.addIssue({ code: 'custom', path: ['via'], message: problem });
            return z.NEVER;
          }
        }
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
          ...(a.via !== undefined ? { via: a.via } : {}),
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
      case 'vm': {
        const a = delegate(VM_ACTION, v, ctx);
        if (a === z.NEVER) return z.NEVER;
        if (a.do === 'recovery-source' && a.vm !== 'source') {
          ctx.addIssue({ code: 'custom', path: ['vm'], message: `a recovery source takes the source's place: write { vm: source, do: recovery-source }, got vm: ${a.vm}` });
          return z.NEVER;
        }
        return { type: 'vm', side: a.vm, do: a.do };
      }
      case 'virsh': {
        const a = delegate(VIRSH_ACTION, v, ctx);
        if (a === z.NEVER) return z.NEVER;
        const args = a.args;
        if (!Array.isArray(args)) {
          ctx.addIssue({ code: 'custom', path: ['args'], message: expectedGot('a list of virsh arguments, like [migrate-postcopy, "${libvirt.domain}"]', args) });
          return z.NEVER;
        }
        const problem = virshActionProblem(args);
        if (problem) {
          ctx.addIssue({ code: 'custom', path: ['args'], message: problem });
          return z.NEVER;
        }
        const before = ctx.issues.length;
        checkTemplates(args, ['args'], ctx);
        if (ctx.issues.length > before) return z.NEVER;
        return {
          type: 'virsh',
          side: a.virsh,
          args: args as string[],
          ...(a['allow-error'] !== undefined ? { allowError: a['allow-error'] } : {}),
          ...(a['expect-error'] !== undefined ? { expectError: a['expect-error'] } : {}),
        };
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

