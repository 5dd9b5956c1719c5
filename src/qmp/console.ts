/**
 * What a person types in the QMP console, and how replies are shown back.
 *
 * Accepted input:
 *   - a full QMP request:          {"execute": "query-status"}
 *                                  {"exec-oob": "migrate-pause", "id": 1}
 *   - the short form:              query-migrate
 *                                  migrate-recover {"uri": "tcp:127.0.0.1:4445"}
 * An error's example is built from what was typed (`uri=tcp:…` → {"uri": "tcp:…"}), never an
 * address of its own: a learner copies examples, and a made-up port breaks the lab's link.
 *   - the short form, out-of-band: exec-oob migrate-pause
 * An `id` in a full request is accepted and ignored: the client numbers requests itself.
 */
import { QmpError } from './error.js';
import { QMP_COMMANDS } from './commands.js';
import { closest } from '../util/closest.js';

export interface ConsoleCommand {
  execute: string;
  arguments?: Record<string, unknown>;
  oob: boolean;
}

const EXAMPLES =
  'Type a command name, optionally followed by a JSON object of arguments ' +
  '(e.g. query-migrate, or migrate-recover {"uri": "tcp:HOST:PORT"}), ' +
  'or a full QMP request (e.g. {"execute": "query-status"}); prefix exec-oob to run a command out-of-band.';

/** QAPI command names: letters, digits, '-', '_' (and '.', '__' in downstream extensions). */
const COMMAND_NAME = /^[A-Za-z_][A-Za-z0-9_.+-]*$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function parseJsonOrExplain(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON (${(e as Error).message}). ${EXAMPLES}`);
  }
}

function parseFullRequest(text: string): ConsoleCommand {
  const v = parseJsonOrExplain(text, 'The request');
  if (!isPlainObject(v)) throw new Error(`A QMP request must be a JSON object. ${EXAMPLES}`);
  const hasExec = Object.prototype.hasOwnProperty.call(v, 'execute');
  const hasOob = Object.prototype.hasOwnProperty.call(v, 'exec-oob');
  if (hasExec && hasOob) throw new Error(`A QMP request has either "execute" or "exec-oob", not both. ${EXAMPLES}`);
  if (!hasExec && !hasOob) throw new Error(`The request lacks "execute" (or "exec-oob"), e.g. {"execute": "query-status"}.`);
  const key = hasExec ? 'execute' : 'exec-oob';
  const name = v[key];
  if (typeof name !== 'string' || !COMMAND_NAME.test(name)) {
    throw new Error(`"${key}" must be a command name string, e.g. {"${key}": "query-status"}.`);
  }
  for (const k of Object.keys(v)) {
    if (k !== 'execute' && k !== 'exec-oob' && k !== 'arguments' && k !== 'id') {
      throw new Error(`Unexpected member "${k}" in the request: a QMP request has "execute" (or "exec-oob"), optional "arguments" and optional "id".`);
    }
  }
  const out: ConsoleCommand = { execute: name, oob: hasOob };
  if (Object.prototype.hasOwnProperty.call(v, 'arguments')) {
    if (!isPlainObject(v.arguments)) {
      throw new Error(`"arguments" must be a JSON object, e.g. {"execute": "migrate-recover", "arguments": {"uri": "tcp:HOST:PORT"}}.`);
    }
    out.arguments = v.arguments;
  }
  return out;
}

function parseShortForm(text: string): ConsoleCommand {
  let rest = text;
  let oob = false;
  const oobPrefix = /^exec-oob(?=\s|$)/.exec(rest);
  if (oobPrefix) {
    oob = true;
    rest = rest.slice(oobPrefix[0].length).trimStart();
    if (!rest) throw new Error(`exec-oob needs a command name, e.g. exec-oob migrate-pause.`);
  }
  const m = /^[^\s{]+/.exec(rest);
  const name = m ? m[0] : '';
  if (!COMMAND_NAME.test(name)) {
    throw new Error(`"${name}" is not a command name (letters, digits, '-' and '_'). ${EXAMPLES}`);
  }
  const argText = rest.slice(name.length).trim();
  const shell = SHELL_COMMANDS.has(name) && (argText === '' || !argText.startsWith('{'));
  if (shell) throw new Error(shellCommandError(name));
  const out: ConsoleCommand = { execute: name, oob };
  if (!argText) return out;
  if (!argText.startsWith('{')) {
    // HMP's name too (migrate_incoming), when QMP spells it otherwise: the example must be a
    // command QEMU knows, not the next error (found playing postcopy-basics).
    const qmp = QMP_COMMANDS.includes(name) ? name : (closest(name, QMP_COMMANDS, 1)[0] ?? name);
    throw new Error(
      `Arguments must be a JSON object, not "${argText}": e.g. ${qmp} ${argumentsLike(argText)} ` +
        `(QMP takes named arguments, unlike HMP's positional ones${qmp === name ? '' : `, and spells it ${qmp}`}).`,
    );
  }
  const args = parseJsonOrExplain(argText, `The arguments of ${name}`);
  if (!isPlainObject(args)) throw new Error(`The arguments of ${name} must be a JSON object. ${EXAMPLES}`);
  out.arguments = args;
  return out;
}

/**
 * Programs a lab's text shows as shell commands, typed into the console by someone copying them
 * (recovery-file's "postcopy-lab recovery-source FILE …" got "Arguments must be a JSON object,
 * not "recovery-source": e.g. postcopy-lab {"uri": …}" from a newcomer's README walk).
 */
const SHELL_COMMANDS = new Set(['postcopy-lab', 'npx', 'sudo', 'qemu-system-x86_64', 'tc', 'ip', 'nft', 'socat']);

function shellCommandError(name: string): string {
  const where =
    name === 'postcopy-lab' || name === 'npx'
      ? "In a lab, s (show me) runs a step's VM actions for you, the recovery source too; outside one, run it in a terminal."
      : 'Run it in a terminal.';
  return `${name} is a shell command, not QMP: this console sends QMP commands to the VM. ${where}`;
}

/** A JSON value for a typed word: a number or boolean as such, anything else a string. */
function typedValue(word: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(word)) return Number(word);
  if (word === 'true' || word === 'false') return word === 'true';
  return word;
}

/**
 * The JSON object a person most likely meant by arguments typed HMP-style, with their own values:
 * `uri=tcp:10.0.0.2:5000 resume=true` → {"uri": "tcp:10.0.0.2:5000", "resume": true}; one bare
 * word → {"uri": word} (the migration commands' one argument); otherwise a shape to fill in.
 */
export function argumentsLike(argText: string): string {
  const words = argText.split(/\s+/).filter(Boolean);
  const pairs = words.map((w) => /^([A-Za-z][A-Za-z0-9_-]*)=(.+)$/.exec(w));
  const show = (o: Record<string, unknown>): string =>
    `{${Object.entries(o)
      .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`)
      .join(', ')}}`;
  if (pairs.every((m) => m)) return show(Object.fromEntries(pairs.map((m) => [m![1], typedValue(m![2]!)])));
  if (words.length === 1) return show({ uri: words[0] });
  return '{"name": value, ...}';
}

/** Parse one console line. Throws an Error saying what is wrong and what the right form is. */
export function parseConsoleLine(line: string): ConsoleCommand {
  const text = line.trim();
  if (!text) throw new Error(`Empty command. ${EXAMPLES}`);
  return text.startsWith('{') ? parseFullRequest(text) : parseShortForm(text);
}

/**
 * A command's `return` value as the console shows it: compact JSON when it fits in `width`
 * columns, otherwise indented JSON over several lines.
 */
export function formatReply(reply: unknown, opts: { width?: number } = {}): string {
  const width = opts.width ?? 100;
  const compact = JSON.stringify(reply === undefined ? {} : reply) ?? String(reply);
  if (compact.length <= width) return compact;
  return indented(reply, '', width);
}

/**
 * JSON indented as JSON.stringify(v, null, 2) does, but with any member or item whose compact
 * form fits the rest of its row kept on one row: query-migrate-capabilities' twenty-odd
 * {"capability", "state"} pairs took about 110 rows of a 7-row console, one per brace (a
 * newcomer's walk); now one row each.
 */
function indented(v: unknown, pad: string, room: number): string {
  const compact = JSON.stringify(v) ?? String(v);
  if (v === null || typeof v !== 'object' || compact.length <= room - pad.length) return compact;
  const inner = pad + '  ';
  const rows = Array.isArray(v)
    ? v.map((x) => inner + indented(x, inner, room))
    : Object.entries(v as Record<string, unknown>).map(([k, x]) => {
        const key = `${JSON.stringify(k)}: `;
        return inner + key + indented(x, inner, room - key.length);
      });
  if (rows.length === 0) return compact;
  const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
  return `${open}\n${rows.join(',\n')}\n${pad}${close}`;
}

/** A QMP error as QEMU's HMP prints it (`Error: desc`), with the QMP error class. */
export function formatError(e: QmpError | Error): string {
  if (e instanceof QmpError) return `Error: ${e.message} (${e.errorClass})`;
  return `Error: ${e.message}`;
}

/** The one side each migration command is for (QEMU refuses it on the other). */
const COMMAND_SIDE: Record<string, 'source' | 'destination'> = {
  'migrate-incoming': 'destination',
  'migrate-recover': 'destination',
  migrate: 'source',
  'migrate-start-postcopy': 'source',
  migrate_cancel: 'source',
};

/**
 * The side a migration command belongs on, for a console line QEMU refused on the other one:
 * its error then names the rule it broke ("Migrate recover can only be run when postcopy is
 * paused", on a source that plainly is), not the side. Only where the side alone decides.
 */
export function wrongSideNote(side: 'source' | 'destination', execute: string, args: Record<string, unknown> | undefined): string | null {
  const other = side === 'source' ? 'destination' : 'source';
  const on = COMMAND_SIDE[execute];
  if (on === undefined || on === side) return null;
  const what = execute === 'migrate' && args?.resume === true ? 'migrate with resume' : execute;
  // The TUI's console then turns to that side with the line (use-lab-keys): no key to name here.
  return `${what} is a ${other}'s command`;
}

/**
 * For QEMU's "The command migrate-cancel has not been found": the console's command nearest to
 * the name typed ("did you mean migrate_cancel?"), or null. QEMU's own names mix `_` and `-`
 * (migrate_cancel beside migrate-pause), an easy slip for a learner (throttle-vs-postcopy).
 */
export function unknownCommandNote(message: string): string | null {
  const m = /The command (\S+) has not been found/.exec(message);
  const near = m ? closest(m[1]!, QMP_COMMANDS, 1) : [];
  return near.length ? `did you mean ${near[0]}?` : null;
}

/**
 * Migration settings that act on one side only. QEMU takes them on the other side too, with `{}`,
 * and nothing comes of it: auto-converge set on the destination throttles nobody (found playing
 * throttle-vs-postcopy, the console still aimed at the destination from the step's first command).
 */
const SETTING_SIDE: Record<string, 'source' | 'destination'> = {
  // capabilities
  'auto-converge': 'source',
  xbzrle: 'source',
  'release-ram': 'source',
  'pause-before-switchover': 'source',
  'dirty-limit': 'source',
  'postcopy-blocktime': 'destination',
  // parameters
  'max-bandwidth': 'source',
  'max-postcopy-bandwidth': 'source',
  'avail-switchover-bandwidth': 'source',
  'downtime-limit': 'source',
  'cpu-throttle-initial': 'source',
  'cpu-throttle-increment': 'source',
  'cpu-throttle-tailslow': 'source',
  'max-cpu-throttle': 'source',
  'throttle-trigger-threshold': 'source',
  'vcpu-dirty-limit': 'source',
  'x-vcpu-dirty-limit-period': 'source',
  'xbzrle-cache-size': 'source',
};

/** The names a migrate-set-capabilities or migrate-set-parameters sets, in order ([] for any other command). */
function settingNames(execute: string, args: Record<string, unknown> | undefined): string[] {
  if (execute === 'migrate-set-parameters') return Object.keys(args ?? {});
  if (execute !== 'migrate-set-capabilities' || !Array.isArray(args?.capabilities)) return [];
  return (args.capabilities as unknown[]).flatMap((c) =>
    c !== null && typeof c === 'object' && typeof (c as { capability?: unknown }).capability === 'string' ? [(c as { capability: string }).capability] : [],
  );
}

/** The side every setting of this command acts on, when they all act on the same one side; else null. */
function settingsSide(execute: string, args: Record<string, unknown> | undefined): 'source' | 'destination' | null {
  const sides = new Set<string>(settingNames(execute, args).map((n) => SETTING_SIDE[n] ?? 'both'));
  const [only] = sides;
  return sides.size === 1 && (only === 'source' || only === 'destination') ? only : null;
}

/**
 * For a setting QEMU accepted on a side where it does nothing: which side it acts on, or null.
 * Every setting of the line must belong to the other side (a line mixing in postcopy-ram, which
 * both sides need, is left alone).
 */
export function settingSideNote(side: 'source' | 'destination', execute: string, args: Record<string, unknown> | undefined): string | null {
  const on = settingsSide(execute, args);
  if (on === null || on === side) return null;
  const names = settingNames(execute, args);
  return `${names.join(', ')} ${names.length > 1 ? 'act' : 'acts'} on the ${on}: the ${side} takes ${names.length > 1 ? 'them' : 'it'} and does nothing with ${names.length > 1 ? 'them' : 'it'}`;
}

/** Commands QEMU refuses without arguments: named bare in a hint, they are no command to copy. */
const NEEDS_ARGUMENTS = new Set(['migrate', 'migrate-incoming', 'migrate-recover', 'migrate-set-capabilities', 'migrate-set-parameters', 'pmemsave']);

/** A console line parsed, or null when it does not parse. */
function parsedOrNull(line: string): ConsoleCommand | null {
  try {
    return parseConsoleLine(line);
  } catch {
    return null;
  }
}

/** The one side a console line's settings act on (auto-converge: the source), or null: not a setting, or not one side's. */
export function settingLineSide(line: string): 'source' | 'destination' | null {
  const cmd = parsedOrNull(line);
  return cmd ? settingsSide(cmd.execute, cmd.arguments) : null;
}

/** The one side a console line's command is for (migrate-recover: the destination), or null. */
export function commandSide(line: string): 'source' | 'destination' | null {
  // A libvirt console line: the migration's virsh commands run against the source's daemon
  // (libvirt's job is there); the extra monitor's one command is the destination's.
  const virsh = /^\s*virsh\s+(\S+)/.exec(line);
  if (virsh) return VIRSH_SOURCE_COMMANDS.has(virsh[1]) ? 'source' : null;
  if (/^\s*x-extra-monitor\s/.test(line)) return 'destination';
  const cmd = parsedOrNull(line);
  return cmd ? (COMMAND_SIDE[cmd.execute] ?? settingsSide(cmd.execute, cmd.arguments)) : null;
}

/** The virsh subcommands that only the source's daemon can run (the migration job is there). */
const VIRSH_SOURCE_COMMANDS = new Set(['migrate', 'migrate-postcopy', 'migrate-setspeed', 'migrate-getspeed']);

const commandPatterns = new WeakMap<readonly string[], RegExp>();

/** Where a command may start in a hint, for this list of command names (built once per list: the key bar asks on every render). */
function commandPattern(commands: readonly string[]): RegExp {
  let re = commandPatterns.get(commands);
  if (!re) {
    const names = [...commands].sort((a, b) => b.length - a.length).map(escapeRegExp);
    re = new RegExp(`\\{\\s*"(?:execute|exec-oob)"|(?<![\\w-])(?:virsh|x-extra-monitor) |(?<![\\w-])(?:${names.join('|')})(?![\\w-])`, 'g');
    commandPatterns.set(commands, re);
  }
  return re;
}

/** A command found in a lab's hint, ready for the console: the line, and the side the hint names. */
export interface HintCommand {
  line: string;
  side?: 'source' | 'destination';
}

/**
 * The first command a hint gives, so one key can put it into the console: a full request
 * (`{"exec-oob": "migrate-pause"}`), a known command name with its JSON arguments
 * (`migrate {"uri": "tcp:127.0.0.1:4445", "resume": true}`), or a libvirt console line
 * (`virsh domstate --reason pcl-guest`, `x-extra-monitor exec-oob migrate-pause`). The side is
 * the command's own where it has one (migrate-recover: the destination), else the one the hint
 * names nearest before the command ("on the destination: …"), else the first named after it
 * ("… on the source"). Null when the hint has no command (e.g. "Press b").
 */
export function hintCommand(hint: string, commands: readonly string[]): HintCommand | null {
  for (const m of hint.matchAll(commandPattern(commands))) {
    const at = m.index ?? 0;
    let line: string | null;
    if (m[0].startsWith('{')) line = jsonObjectAt(hint, at);
    else if (m[0].endsWith(' ')) {
      // A libvirt console line (`virsh …`, `x-extra-monitor …`): its words up to where the prose
      // resumes (": read its refusal", " (or …", " on each side", the sentence's end).
      const words = hint.slice(at).split(/: | \(| on | then |, |\. /)[0]!.replace(/\.$/, '').trim();
      return { line: words, side: sideNamed(hint.slice(0, at), 'last') ?? sideNamed(hint.slice(at + words.length), 'first') };
    } else {
      const rest = hint.slice(at + m[0].length);
      const brace = /^\s*\{/.exec(rest);
      const args = brace ? jsonObjectAt(rest, brace[0].length - 1) : null;
      // "migrate, with the link's address" names a command; it is not one to send as it stands.
      line = args ? `${m[0]} ${args}` : NEEDS_ARGUMENTS.has(m[0]) ? null : m[0];
    }
    if (!line) continue;
    const execute = parsedOrNull(line)?.execute;
    if (execute === undefined) continue;
    // A command for one side only goes there, whatever the prose around it names
    // ("migrate-incoming on the destination, migrate and migrate-start-postcopy on the source").
    return { line, side: COMMAND_SIDE[execute] ?? sideNamed(hint.slice(0, at), 'last') ?? sideNamed(hint.slice(at + line.length), 'first') };
  }
  return null;
}

/** The balanced {...} starting at `at` (strings respected), or null. */
function jsonObjectAt(text: string, at: number): string | null {
  let depth = 0;
  let inString = false;
  for (let i = at; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}' && --depth === 0) return text.slice(at, i + 1);
  }
  return null;
}

function sideNamed(text: string, which: 'first' | 'last'): 'source' | 'destination' | undefined {
  const found = [...text.matchAll(/(?<![\w-])(source|destination)(?![\w-])/gi)].map((m) => m[1].toLowerCase() as 'source' | 'destination');
  return which === 'first' ? found[0] : found.at(-1);
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
