/**
 * `${name}` placeholders in lab action arguments, step text and hints, filled in at run time
 * with what this run really uses: the addresses the link hands out (a relay port is only known
 * once the relay listens), the guest's setup, and the migration parameters in effect (a
 * person's run uses interactive-parameters, so its text must not quote the drill's). Plain
 * substitution: no expressions, no defaults, nothing evaluated.
 */
import { fmtBytes, fmtRate } from '../util/format.js';

/**
 * What the run hands out: the addresses, the libvirt domain and destination URI (libvirt only), where the source's RAM is saved for a recovery source
 * (`pmemsave {filename: ...}`, in the run's private directory), and the guest's RAM in bytes
 * as the backend really gave it (QEMU under TCG shrinks it; `pmemsave {size: ...}`).
 */
export const TEMPLATE_VARIABLES = [
  'incoming.listen',
  'incoming.connect',
  'recover.listen',
  'recover.connect',
  'source.ram-file',
  'guest.ram-bytes',
  // libvirt.*: only on --backend libvirt (its labs say backends: [libvirt]).
  'libvirt.domain',
  'libvirt.dest-uri',
] as const;

/**
 * Variables that are numbers: a string that is exactly `${name}` becomes the number (QMP's int
 * arguments, pmemsave's size, refuse a string); inside longer text they are text.
 */
export const NUMERIC_TEMPLATE_VARIABLES: readonly string[] = ['guest.ram-bytes'];
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

/** The guest's setup, as the lab's text may quote it. */
export const SETUP_TEMPLATE_VARIABLES = ['setup.memory', 'setup.page-size', 'setup.vcpus', 'setup.workload', 'setup.dirty-rate', 'setup.read-rate'] as const;

/** `${param.NAME}`: a migration parameter the lab sets (setup.parameters / interactive-parameters). */
export const PARAM_PREFIX = 'param.';

/** Every name a lab with these parameters may use, for messages and the loader's check. */
export function knownTemplateNames(parameterNames: readonly string[]): string[] {
  return [...TEMPLATE_VARIABLES, ...SETUP_TEMPLATE_VARIABLES, ...parameterNames.map((p) => PARAM_PREFIX + p)];
}

/** Sizes that are rates read as rates ("4 MiB/s"); other parameters as they are. */
const RATE_PARAMETERS = new Set(['max-bandwidth', 'max-postcopy-bandwidth', 'avail-switchover-bandwidth']);

/** The values behind setup.* and param.*, as text. */
export function setupTemplateValues(
  setup: { memoryBytes: number; pageSize: number; vcpus: number; workload: string; dirtyRate: number; readRate: number },
  parameters: Readonly<Record<string, number | string | boolean>>,
): Record<string, string> {
  const vars: Record<string, string> = {
    'setup.memory': fmtBytes(setup.memoryBytes, { trim: true }),
    'setup.page-size': fmtBytes(setup.pageSize, { trim: true }),
    'setup.vcpus': String(setup.vcpus),
    'setup.workload': setup.workload,
    'setup.dirty-rate': String(setup.dirtyRate),
    'setup.read-rate': String(setup.readRate),
  };
  for (const [k, v] of Object.entries(parameters)) {
    vars[PARAM_PREFIX + k] = RATE_PARAMETERS.has(k) && typeof v === 'number' ? fmtRate(v, { trim: true }) : String(v);
  }
  return vars;
}

/** A placeholder that cannot be filled: unknown name, or `${` without its `}`. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  constructor(
    message: string,
    /** The variable name, when the problem is one name. */
    readonly variable?: string,
  ) {
    super(message);
  }
}

// `$${` writes a literal `${`, so a QMP argument can still contain one.
const PLACEHOLDER_RE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;

/** Calls `onVariable` for each placeholder in `text`; throws for an unterminated `${`. */
function scan(text: string, onVariable: (name: string) => string): string {
  return text.replace(PLACEHOLDER_RE, (match: string, name: string | undefined) => {
    if (match === '$${') return '${';
    if (name === undefined) {
      throw new TemplateError(`unterminated '\${' in '${text}' (expected \${name}, or $\${ for a literal \${)`);
    }
    return onVariable(name.trim());
  });
}

/** The placeholder names used anywhere in `value` (strings inside arrays and objects too). */
export function findTemplateVariables(value: unknown): string[] {
  const names: string[] = [];
  walkStrings(value, (s) => {
    scan(s, (name) => {
      names.push(name);
      return '';
    });
    return s;
  });
  return names;
}

/** The message for a name that is not a template variable, with the list of names that are. */
export function unknownVariableMessage(name: string): string {
  return `unknown template variable '\${${name}}' (expected one of ${[...TEMPLATE_VARIABLES, ...SETUP_TEMPLATE_VARIABLES].map((v) => `\${${v}}`).join(', ')}, or \${param.NAME} for a parameter the lab sets)`;
}

/** Throws TemplateError unless every placeholder in `value` names a TEMPLATE_VARIABLES entry. */
export function checkTemplateVariables(value: unknown): void {
  for (const name of findTemplateVariables(value)) {
    if (!name.startsWith(PARAM_PREFIX) && !([...TEMPLATE_VARIABLES, ...SETUP_TEMPLATE_VARIABLES] as readonly string[]).includes(name)) {
      throw new TemplateError(unknownVariableMessage(name), name);
    }
  }
}

/**
 * A deep copy of `value` with every `${name}` in every string replaced by `vars[name]`.
 * Non-string leaves are kept as they are. A name missing from `vars` throws TemplateError.
 */
export function expandTemplates<T>(value: T, vars: Readonly<Record<string, string>>): T {
  return walkStrings(value, (s) => {
    const whole = /^\$\{([^}]*)\}$/.exec(s)?.[1]?.trim();
    if (whole && NUMERIC_TEMPLATE_VARIABLES.includes(whole) && Object.hasOwn(vars, whole)) return Number(vars[whole]);
    return scan(s, (name) => {
      if (!Object.hasOwn(vars, name)) {
        const known = Object.keys(vars);
        throw new TemplateError(
          `unknown template variable '\${${name}}'` + (known.length ? ` (known: ${known.join(', ')})` : ''),
          name,
        );
      }
      return vars[name]!;
    });
  }) as T;
}

function walkStrings(value: unknown, fn: (s: string) => unknown): unknown {
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v) => walkStrings(v, fn));
  if (value !== null && typeof value === 'object') {
    // fromEntries defines own properties, so a key named "__proto__" stays a plain key.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walkStrings(v, fn)]));
  }
  return value;
}
