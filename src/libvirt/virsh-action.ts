/** The rule for a lab's `virsh` action (and the console's virsh lines), shared by the lab schema and the libvirt backend. */

/**
 * What a lab's `virsh` action may run: the subcommand and its arguments only. The connection
 * (-c/--connect) is the backend's (each side's own daemon), and the shell never sees the words.
 */
export function virshActionProblem(args: readonly unknown[]): string | null {
  if (args.length === 0) return 'a virsh action needs a subcommand, like args: [domstate, --reason, "${libvirt.domain}"]';
  for (const [i, a] of args.entries()) {
    if (typeof a !== 'string' || a.length === 0) return `virsh argument ${i + 1} must be a non-empty string, got ${JSON.stringify(a)}`;
  }
  const first = args[0] as string;
  if (first.startsWith('-')) return `the first virsh argument is the subcommand (like migrate or domstate), not the option '${first}': the backend chooses the connection`;
  const conn = (args as string[]).find((a) => a === '-c' || a === '--connect' || a.startsWith('--connect='));
  if (conn) return `'${conn}' is not allowed: the backend connects virsh to the side's own daemon`;
  return null;
}
