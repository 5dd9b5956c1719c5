/**
 * Lab actions, link faults and QMP commands in words: what "show me" lists, what the event
 * log says. A QMP command is written as a person types it in the console, so the log teaches
 * the real syntax: `exec-oob migrate-pause`, `migrate {"uri": ...}`.
 */
import { describeFault } from '../link/fault-model.js';
import { formatDuration } from './duration.js';
import type { LabAction } from './schema.js';
import { expandTemplates } from './template.js';

/** A QMP command: its name and arguments (as QMP's `execute` and `arguments`). */
export interface QmpCommand {
  execute: string;
  arguments?: Record<string, unknown>;
}

/**
 * A command as the console accepts it: `exec-oob migrate-pause`, `migrate {"uri": "tcp:..."}`;
 * with `via` (libvirt's extra QMP socket) the path comes first: `x-extra-monitor exec-oob migrate-pause`.
 */
export function commandText(cmd: QmpCommand, oob: boolean, via?: string): string {
  const args = cmd.arguments && Object.keys(cmd.arguments).length ? ` ${JSON.stringify(cmd.arguments)}` : '';
  return `${via ? `${via} ` : ''}${oob ? 'exec-oob ' : ''}${cmd.execute}${args}`;
}

/** A `vm` action as an operator would say it. */
const VM_OPERATION_WORDS: Record<Extract<LabAction, { type: 'vm' }>['do'], string> = {
  kill: 'kill the VM process (SIGKILL)',
  start: 'start a fresh VM process',
  restart: 'kill the VM process if it still runs, and start a fresh one',
  'recovery-source': "start a recovery source from the source's recovery file in its place (postcopy-lab recovery-source FILE --qmp SOCK --expect-digest HEX)",
};

/** One lab action, with the run's addresses filled in. */
export function describeAction(a: LabAction, vars: Readonly<Record<string, string>>): string {
  switch (a.type) {
    case 'qmp':
      return `${a.side}: ${commandText({ execute: a.execute, arguments: expandTemplates(a.arguments, vars) }, a.oob, a.via)}`;
    case 'link':
      return `link: ${describeFault(a.fault)}`;
    case 'restore':
      return 'link: restore';
    case 'vm':
      return `${a.side}: ${VM_OPERATION_WORDS[a.do]}`;
    case 'virsh':
      return `${a.side}: virsh ${a.args.map((x) => expandTemplates(x, vars)).join(' ')}`;
    case 'wait':
      return `wait ${formatDuration(a.ms)}`;
    case 'wait-until':
      return `wait until ${a.condition.source}`;
  }
}

