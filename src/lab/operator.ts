/**
 * What a step, a key or the console sends to the run, one kind per method: QMP (to a side's
 * monitor, or libvirt's extra QMP socket), virsh, the link. Each is logged once, as the console
 * would show it, with its reply or its error; the lab's bypass refusal and the operator's
 * out-of-band rule are stated here and nowhere else.
 */
import { formatError, formatReply, parseConsoleLine, settingSideNote, unknownCommandNote, wrongSideNote } from '../qmp/console.js';
import type { RunDriver } from '../driver/backend.js';
import type { LabEvent, Link, LinkFault, Side } from '../types.js';
import { describeFault } from '../link/fault-model.js';
import { EXTRA_MONITOR, EXTRA_MONITOR_NOTE } from '../libvirt/commands.js';
import { virshErrorForPerson } from '../libvirt/virsh-typo.js';
import { commandText, type QmpCommand } from './describe.js';
import { bypassRefusal } from './reach.js';

/**
 * The commands an operator sends out-of-band when the monitor offers it: the monitor may be
 * busy exactly when the migration is in trouble. Used for keys; a lab action and a console
 * line say `oob` (`exec-oob`) themselves, as QMP does.
 */
const OPERATOR_OOB = new Set(['migrate-pause', 'migrate-recover']);

/** How a command the lab refuses is answered (the console reads the command a refusal names after it). */
export const LAB_REFUSAL = 'refused by the lab: ';

export interface OperatorDeps {
  /** The run's driver (it is made after the operator, so asked for each time). */
  driver(): RunDriver;
  /** The lab's template values (the link's addresses the bypass rule checks). */
  vars(): Record<string, string>;
  /** The backend's name, for refusals that say which backend would take the command. */
  backendKind: string;
  /** Why the run's state refuses this command from a person now (a resume over a broken link), or null. */
  stateRefusal?(side: Side, cmd: QmpCommand): Promise<string | null>;
  /** Told of every command a side accepted (a step's, a key's, a console line's). */
  accepted?(side: Side, cmd: QmpCommand): void;
  emit(e: Omit<LabEvent, 't'>): void;
}

export class Operator {
  constructor(private readonly deps: OperatorDeps) {}

  private get orch(): RunDriver {
    return this.deps.driver();
  }

  /**
   * The one way a QMP command is sent: logged once as the console would show it (with the
   * reply or the error), rejecting with the side's error. `oob` sends it as `exec-oob`.
   */
  async sendQmp(side: Side, cmd: QmpCommand, opts: { oob: boolean; via?: 'x-extra-monitor'; person?: boolean }): Promise<unknown> {
    const text = commandText(cmd, opts.oob, opts.via);
    // The extra QMP socket (libvirt) is not the lab's link: no bypass to refuse there. The
    // run's state is judged only for what a person types or keys (a step's own actions are
    // the lab author's order: a link restore, then its resume).
    const refusal = opts.via ? null : (bypassRefusal(side, cmd, this.deps.vars()) ?? (opts.person ? ((await this.deps.stateRefusal?.(side, cmd)) ?? null) : null));
    if (refusal) {
      this.deps.emit({ kind: 'qmp', side, text: `${text} -> ${LAB_REFUSAL}${refusal}` });
      throw new Error(`${LAB_REFUSAL}${refusal}`);
    }
    try {
      const r = opts.via ? await this.sendVia(side, cmd, opts.oob) : await this.orch.send(side, cmd.execute, cmd.arguments, opts.oob);
      this.deps.emit({ kind: 'qmp', side, text: `${text} -> ${formatReply(r)}` });
      this.deps.accepted?.(side, cmd);
      return r;
    } catch (e) {
      this.deps.emit({ kind: 'qmp', side, text: `${text} -> ${formatError(e as Error)}` });
      throw e;
    }
  }

  /** A command around the backend's job, on the extra QMP socket (libvirt only; the backend checks what may go). */
  private sendVia(side: Side, cmd: QmpCommand, oob: boolean): Promise<unknown> {
    if (!this.orch.sendViaExtraMonitor) {
      return Promise.reject(new Error(`the extra QMP socket is libvirt's (--backend libvirt); this run's backend is ${this.deps.backendKind}, where QMP goes to QEMU directly`));
    }
    return this.orch.sendViaExtraMonitor(side, cmd.execute, cmd.arguments, oob);
  }

  /**
   * A `virsh` subcommand against a side's daemon (a lab's virsh action, the console on the
   * libvirt backend), logged as the operator would type it, with its output or error.
   */
  async virsh(side: Side, args: string[], opts?: { awaitEnd?: boolean }): Promise<string> {
    const text = `virsh ${args.join(' ')}`;
    if (!this.orch.virsh) {
      const why = `virsh needs --backend libvirt (this run's backend is ${this.deps.backendKind})`;
      this.deps.emit({ kind: 'qmp', side, text: `${text} -> refused: ${why}` });
      throw new Error(why);
    }
    try {
      const out = await this.orch.virsh(side, args, opts);
      this.deps.emit({ kind: 'qmp', side, text: `${text} -> ${out || 'ok'}` });
      return out;
    } catch (e) {
      // Said as a learner reads it: no private socket URI, a typo answered with the nearest subcommands.
      const said = virshErrorForPerson((e as Error).message);
      this.deps.emit({ kind: 'qmp', side, text: `${text} -> error: ${said}` });
      throw said === (e as Error).message ? e : new Error(said, { cause: e });
    }
  }

  /** A key's command: out-of-band for what an operator sends so (OPERATOR_OOB), when offered. */
  async qmp(side: Side, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const oob = OPERATOR_OOB.has(execute) && this.orch.oobOffered(side);
    return this.sendQmp(side, { execute, arguments: args }, { oob, person: true });
  }

  /** A console line: QMP, `virsh …` (libvirt), or `x-extra-monitor …` (libvirt's extra QMP socket). */
  async consoleLine(side: Side, line: string): Promise<{ ok: boolean; text: string }> {
    // On the libvirt backend the console also takes virsh subcommands, split on white space
    // into argv (no shell, no quoting): `virsh domstate --reason pcl-guest`.
    const words = line.trim().split(/\s+/);
    if (words[0] === 'virsh') {
      try {
        return { ok: true, text: (await this.virsh(side, words.slice(1))) || 'ok' };
      } catch (e) {
        return { ok: false, text: (e as Error).message };
      }
    }
    // libvirt's way out of a blackhole: `x-extra-monitor exec-oob migrate-pause` on the destination.
    const via = words[0] === EXTRA_MONITOR ? EXTRA_MONITOR : undefined;
    let cmd;
    try {
      cmd = parseConsoleLine(via ? line.trim().slice(via.length) : line);
    } catch (e) {
      return { ok: false, text: (e as Error).message };
    }
    try {
      const r = await this.sendQmp(side, { execute: cmd.execute, arguments: cmd.arguments }, { oob: cmd.oob, person: true, ...(via ? { via } : {}) });
      const note = via ? null : settingSideNote(side, cmd.execute, cmd.arguments);
      return { ok: true, text: via ? `${cmd.execute} ${EXTRA_MONITOR_NOTE}` : formatReply(r) + (note ? `\n(${note})` : '') };
    } catch (e) {
      const note = via ? null : (wrongSideNote(side, cmd.execute, cmd.arguments) ?? unknownCommandNote((e as Error).message));
      return { ok: false, text: formatError(e as Error) + (note ? `\n(${note})` : '') };
    }
  }

  async applyLink(fault: LinkFault): Promise<void> {
    if (this.orch.applyLinkFault) await this.orch.applyLinkFault(fault);
    else await this.link().apply(fault);
    this.deps.emit({ kind: 'fault', text: `link: ${describeFault(fault)}`, data: fault });
  }

  async restoreLink(): Promise<void> {
    if (this.orch.restoreLink) await this.orch.restoreLink();
    else await this.link().restore();
    this.deps.emit({ kind: 'fault', text: 'link: restored (up, no shaping)' });
  }

  private link(): Link {
    if (!this.orch.link) throw new Error('the link is not running (the lab has not started, or has stopped)');
    return this.orch.link;
  }
}
