/**
 * What a QMP command a lab (or a person at the console) sends becomes on the libvirt backend.
 * libvirt owns the migration job there: a migration-changing command sent straight to QEMU
 * would change QEMU behind libvirt's back (libvirt would then report a job that is not what
 * QEMU does), so every such command is either mapped to the virsh command an operator would
 * type, or refused with the reason and the command to use instead. Read-only `query-*`
 * commands may go to the extra QMP socket (domain-xml.ts).
 *
 * One table, in QEMU's names, so a reader can check each row against libvirt's documentation.
 */
import type { Side } from '../types.js';

export interface MapContext {
  domain: string;
  /** The destination daemon's URI as the source side's virsh reaches it. */
  destUri: string;
}

export type CommandPlan =
  /** Run this virsh subcommand against `side`'s daemon. `long`: it lasts as long as the migration (run it in the background). */
  | { kind: 'virsh'; side: Side; args: string[]; long: boolean; note?: string }
  /** A read-only QMP command, allowed on the extra QMP socket. */
  | { kind: 'qmp-read'; side: Side; command: string }
  | { kind: 'refused'; reason: string };

type Args = Record<string, unknown> | undefined;

/**
 * The one way around libvirt's job: QEMU's `migrate-pause`, out-of-band, on the destination's
 * extra QMP socket (domain-xml.ts). During a silent blackhole nothing has failed, so libvirt's
 * `--postcopy-resume` refuses ("has not failed"), and the destination's incoming job holds the
 * domain's state-change lock, so libvirt cannot pause it either; QEMU's migrate-pause shuts the
 * destination's end of the dead connection (`postcopy-paused`, which libvirt then reports as
 * `post-copy failed`), and libvirt's own recovery works again. Out-of-band (`exec-oob`), because
 * the destination's main loop may itself wait for a page that will never come. Nothing else
 * may take this path: every other migration-changing command would leave libvirt's job wrong.
 */
export const EXTRA_MONITOR = 'x-extra-monitor';
/** The same escape as the console takes it, on the destination. */
export const EXTRA_MONITOR_CONSOLE = `${EXTRA_MONITOR} exec-oob migrate-pause`;
/** Said when the escape is used (console, lab log): what it bypasses and why it is the way out. */
export const EXTRA_MONITOR_NOTE =
  "sent around libvirt's job, on the destination's extra QMP socket: libvirt cannot pause the destination (its incoming job holds the domain's state-change lock) and will not resume a migration that has not failed, so QEMU's own out-of-band migrate-pause is the way out; libvirt then reports 'post-copy failed' and --postcopy-resume works";

/** Why `execute` may not go `via: x-extra-monitor` to `side`, or null when it may. */
export function extraMonitorProblem(side: string, execute: string, oob: boolean): string | null {
  const rule = `${EXTRA_MONITOR} takes one command: migrate-pause to the destination, out-of-band (qmp: destination, execute: migrate-pause, oob: true)`;
  if (execute !== 'migrate-pause') return `${rule}; every other command goes through libvirt (got execute: ${execute})`;
  if (side !== 'destination') return `${rule}; the source is paused through libvirt with \`virsh domjobabort --postcopy\` (the plain qmp action migrate-pause on the source maps to it), got qmp: ${side}`;
  if (!oob) return `${rule}; add oob: true (exec-oob: the destination's main loop may be waiting for a page that never comes)`;
  return null;
}

const MIB = 1024 * 1024;

/** QMP's bytes per second to virsh's whole MiB/s, never 0 (0 would mean "unlimited" to libvirt). */
function toMiB(bytesPerSec: unknown, field: string): number | string {
  if (typeof bytesPerSec !== 'number' || !Number.isFinite(bytesPerSec) || bytesPerSec < 0) return `${field} must be a number of bytes per second`;
  return Math.max(1, Math.round(bytesPerSec / MIB));
}

function refused(reason: string): CommandPlan {
  return { kind: 'refused', reason };
}

export function mapQmpCommand(side: Side, command: string, args: Args, ctx: MapContext): CommandPlan {
  const d = ctx.domain;
  if (command.startsWith('query-')) return { kind: 'qmp-read', side, command };
  switch (command) {
    case 'migrate': {
      if (side !== 'source') return refused('migrate is the source\'s command; on the libvirt backend it is `virsh migrate` against the source daemon');
      if (args?.resume === true) {
        return {
          kind: 'virsh',
          side,
          args: ['migrate', '--live', '--postcopy', '--postcopy-resume', d, ctx.destUri],
          long: true,
          note: 'libvirt makes the destination listen again itself (QEMU\'s migrate-recover) and reconnects the source (migrate resume=true)',
        };
      }
      return {
        kind: 'virsh',
        side,
        args: ['migrate', '--live', '--postcopy', d, ctx.destUri],
        long: true,
        note: 'libvirt chooses the migration address and port itself (qemu.conf migration_address, migration_port_min/max); the uri argument is not used',
      };
    }
    case 'migrate-start-postcopy':
      if (side !== 'source') return refused('migrate-start-postcopy is the source\'s command (`virsh migrate-postcopy` against the source daemon)');
      return { kind: 'virsh', side, args: ['migrate-postcopy', d], long: false };
    case 'migrate-pause':
      if (side === 'source') return { kind: 'virsh', side, args: ['domjobabort', '--postcopy', d], long: false, note: 'libvirt pauses a postcopy migration with domjobabort --postcopy (QEMU\'s migrate-pause on the source)' };
      return refused(
        `libvirt has no command that pauses the destination's postcopy (its incoming job holds the domain's state-change lock); pause the source instead (\`virsh domjobabort --postcopy\` on the source), or, where the link is a silent blackhole, pause the destination around libvirt's job on its extra QMP socket: \`${EXTRA_MONITOR_CONSOLE}\` in the console, \`via: ${EXTRA_MONITOR}\` on a lab's qmp action`,
      );
    case 'migrate-recover':
      return refused('libvirt makes the destination listen again itself: send `migrate` with resume=true to the source (`virsh migrate --postcopy --postcopy-resume`)');
    case 'migrate-incoming':
      return refused('libvirt starts the destination and its incoming migration itself, as part of `virsh migrate` on the source');
    case 'migrate_cancel':
      if (side !== 'source') return refused('migrate_cancel is the source\'s command (`virsh domjobabort` against the source daemon)');
      return { kind: 'virsh', side, args: ['domjobabort', d], long: false, note: 'libvirt refuses to abort a migration already in postcopy (the guest would be lost); use domjobabort --postcopy to pause it' };
    case 'migrate-set-parameters': {
      const keys = Object.keys(args ?? {});
      const known = ['max-bandwidth', 'max-postcopy-bandwidth'];
      const other = keys.filter((k) => !known.includes(k));
      if (other.length) return refused(`libvirt sets migration parameters from \`virsh migrate\` options; only max-bandwidth and max-postcopy-bandwidth map (to \`virsh migrate-setspeed\`), not ${other.join(', ')}`);
      if (keys.length !== 1) return refused('send max-bandwidth and max-postcopy-bandwidth one at a time: each is its own `virsh migrate-setspeed`');
      if (side !== 'source') return refused('migration bandwidth is the source\'s (`virsh migrate-setspeed` against the source daemon)');
      const postcopy = keys[0] === 'max-postcopy-bandwidth';
      const mib = toMiB(args?.[keys[0]], keys[0]);
      if (typeof mib === 'string') return refused(mib);
      return { kind: 'virsh', side, args: ['migrate-setspeed', ...(postcopy ? ['--postcopy'] : []), d, String(mib)], long: false, note: 'virsh sets bandwidth in whole MiB/s' };
    }
    case 'migrate-set-capabilities':
      return refused('libvirt sets migration capabilities from `virsh migrate` options (--postcopy turns on postcopy-ram, for instance); they cannot be changed behind its job');
    case 'stop':
      return { kind: 'virsh', side, args: ['suspend', d], long: false };
    case 'cont':
      return { kind: 'virsh', side, args: ['resume', d], long: false };
    case 'quit':
      return { kind: 'virsh', side, args: ['destroy', d], long: false, note: 'virsh destroy ends the domain\'s QEMU, as quit does' };
    default:
      return refused(`${command} is not mapped to libvirt; on the libvirt backend, commands that change the VM or its migration go through virsh (query-* commands are read on the extra QMP socket)`);
  }
}
