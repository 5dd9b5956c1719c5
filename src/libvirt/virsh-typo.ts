/**
 * virsh's errors as a learner at the console reads them: the local daemon's
 * `-c qemu+unix:///system?socket=…` (this run's private socket) taken out of the command line an
 * error quotes, and virsh's polkit notice too (printed before every error where no polkit runs,
 * while root's connection works); an unknown subcommand answered in one line with the closest
 * subcommands the libvirt labs use ("did you mean migrate-postcopy?").
 */

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

/** Edit distance (insertions, deletions, substitutions, and a swap of two neighbours counts one). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The lab's subcommands closest to `word`, nearest first (at most `max`): within a third of the
 * longer name's length in edits, so `migrate-postcop` finds migrate-postcopy and `domstat`
 * finds domstate, while a word like nothing the labs use finds none.
 */
export function closestVirshCommands(word: string, max = 2): string[] {
  const w = word.toLowerCase();
  return LAB_VIRSH_COMMANDS.map((c) => ({ c, d: distance(w, c) }))
    .filter(({ c, d }) => d > 0 && d <= Math.max(1, Math.floor(Math.max(c.length, w.length) / 3)))
    .sort((x, y) => x.d - y.d)
    .slice(0, max)
    .map(({ c }) => c);
}

/** virsh's words for a subcommand it does not have (libvirt 9.0): `unknown command: 'migrate-postcop'`. */
const UNKNOWN_COMMAND = /unknown command: '([^']*)'/;

/**
 * A virsh error as the console shows it: one line naming the nearest lab subcommands when virsh
 * did not know the subcommand, else virsh's own words without the noise (stripNoise).
 */
export function virshErrorForPerson(message: string): string {
  const unknown = UNKNOWN_COMMAND.exec(message);
  if (!unknown) return stripNoise(message);
  const word = unknown[1];
  const near = closestVirshCommands(word);
  const offer = near.length ? `did you mean ${near.join(' or ')}?` : `the labs use ${LAB_VIRSH_COMMANDS.join(', ')}`;
  return `virsh has no command '${word}': ${offer}`;
}
