/**
 * `${name}` placeholders in lab action arguments, filled in at run time with the addresses the
 * link hands out (a relay port is only known once the relay listens). Plain substitution: no
 * expressions, no defaults, nothing evaluated.
 */

/** The variables a lab may use; the loader refuses any other name. */
export const TEMPLATE_VARIABLES = ['incoming.listen', 'incoming.connect', 'recover.listen', 'recover.connect'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

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
  return `unknown template variable '\${${name}}' (expected one of ${TEMPLATE_VARIABLES.map((v) => `\${${v}}`).join(', ')})`;
}

/** Throws TemplateError unless every placeholder in `value` names a TEMPLATE_VARIABLES entry. */
export function checkTemplateVariables(value: unknown): void {
  for (const name of findTemplateVariables(value)) {
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(name)) {
      throw new TemplateError(unknownVariableMessage(name), name);
    }
  }
}

/**
 * A deep copy of `value` with every `${name}` in every string replaced by `vars[name]`.
 * Non-string leaves are kept as they are. A name missing from `vars` throws TemplateError.
 */
export function expandTemplates<T>(value: T, vars: Readonly<Record<string, string>>): T {
  return walkStrings(value, (s) =>
    scan(s, (name) => {
      if (!Object.hasOwn(vars, name)) {
        const known = Object.keys(vars);
        throw new TemplateError(
          `unknown template variable '\${${name}}'` + (known.length ? ` (known: ${known.join(', ')})` : ''),
          name,
        );
      }
      return vars[name]!;
    }),
  ) as T;
}

function walkStrings(value: unknown, fn: (s: string) => string): unknown {
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v) => walkStrings(v, fn));
  if (value !== null && typeof value === 'object') {
    // fromEntries defines own properties, so a key named "__proto__" stays a plain key.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walkStrings(v, fn)]));
  }
  return value;
}
