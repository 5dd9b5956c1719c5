/**
 * virsh's errors as a learner at the console reads them: the local daemon's
 * `-c qemu+unix:///system?socket=…` (this run's private socket) taken out of the command line an
 * error quotes, and virsh's polkit notice too (printed before every error where no polkit runs,
 * while root's connection works); an unknown subcommand answered in one line with the closest
 * subcommands the libvirt labs use ("did you mean migrate-postcopy?"), an unknown option with
 * the closest of that subcommand's ("did you mean --bandwidth?").
 */

import { closest } from '../util/closest.js';

/** The virsh subcommands the libvirt labs and their step texts use, in the order a lab meets them. */
export const LAB_VIRSH_COMMANDS = [
  'migrate',
  'migrate-setspeed',
  'migrate-getspeed',
  'migrate-postcopy',
  'domjobinfo',
  'domjobabort',
  'domstate',
  'suspend',
  'resume',
  'list',
] as const;

/** ` -c qemu+unix:///system?socket=/path` as VirshError quotes a local daemon's command line. */
const LOCAL_CONNECTION = / -c qemu\+unix:\/\/\/\S*/g;

/** virsh's notice where polkit is absent, as VirshError joins it to the real error ("…; "). */
const POLKIT_NOTICE = /Authorization not available\. Check if polkit service is running or see debug message for more information\.(; )?/g;

/**
 * The message without the local daemon's connection URI and the polkit notice: neither says
 * anything about what was asked. A remote host's URI stays: it says which host answered.
 */
export function stripNoise(message: string): string {
  return message.replace(LOCAL_CONNECTION, '').replace(POLKIT_NOTICE, '');
}

/** The lab's subcommands closest to `word`, nearest first (at most `max`; see `closest`). */
export function closestVirshCommands(word: string, max = 2): string[] {
  return closest(word, LAB_VIRSH_COMMANDS, max);
}

/**
 * The options of the lab subcommands a person types, as virsh 9.0's help lists them (those a
 * migration lab may use; `virsh help migrate` has them all): a mistyped one gets the nearest.
 */
export const VIRSH_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  migrate: [
    '--live', '--offline', '--p2p', '--direct', '--tunnelled', '--persistent', '--undefinesource', '--suspend', '--copy-storage-all', '--copy-storage-inc',
    '--change-protection', '--unsafe', '--verbose', '--compressed', '--auto-converge', '--rdma-pin-all', '--abort-on-error', '--postcopy',
    '--postcopy-after-precopy', '--postcopy-resume', '--zerocopy', '--migrateuri', '--graphicsuri', '--listen-address', '--dname', '--timeout',
    '--timeout-suspend', '--timeout-postcopy', '--xml', '--migrate-disks', '--disks-port', '--bandwidth', '--postcopy-bandwidth', '--parallel',
    '--parallel-connections', '--tls', '--domain', '--desturi',
  ],
  'migrate-setspeed': ['--domain', '--bandwidth', '--postcopy'],
  'migrate-getspeed': ['--domain', '--postcopy'],
  'migrate-postcopy': ['--domain'],
  domjobinfo: ['--domain', '--completed', '--keep-completed', '--anystats', '--rawstats'],
  domjobabort: ['--domain', '--postcopy'],
  domstate: ['--domain', '--reason'],
  suspend: ['--domain'],
  resume: ['--domain'],
  list: ['--inactive', '--all', '--transient', '--persistent', '--name', '--uuid', '--title', '--state-running', '--state-paused', '--state-shutoff', '--state-other'],
};

/** virsh's words for an option a subcommand does not have: `command 'migrate' doesn't support option --bandwith`. */
const UNKNOWN_OPTION = /command '([^']+)' doesn't support option (--[\w-]+)/;

/** virsh's words for a subcommand it does not have (libvirt 9.0): `unknown command: 'migrate-postcop'`. */
const UNKNOWN_COMMAND = /unknown command: '([^']*)'/;

/**
 * A virsh error as the console shows it: one line naming the nearest lab subcommands when virsh
 * did not know the subcommand, else virsh's own words without the noise (stripNoise).
 */
export function virshErrorForPerson(message: string): string {
  const unknown = UNKNOWN_COMMAND.exec(message);
  const option = UNKNOWN_OPTION.exec(message);
  if (!unknown && option) {
    const near = closest(option[2], VIRSH_OPTIONS[option[1]] ?? [], 2);
    return near.length ? `${stripNoise(message)}: did you mean ${near.join(' or ')}?` : stripNoise(message);
  }
  if (!unknown) return stripNoise(message);
  const word = unknown[1];
  const near = closestVirshCommands(word);
  const offer = near.length ? `did you mean ${near.join(' or ')}?` : `the labs use ${LAB_VIRSH_COMMANDS.join(', ')}`;
  return `virsh has no command '${word}': ${offer}`;
}
