/**
 * Judgements about where the migration is relative to the lab, from a snapshot alone (pure,
 * tested with fake snapshots):
 * - whether the current step can still happen (`unreachable`): a step waiting for a live
 *   migration cannot, once the migration failed (unless the step itself starts a new one) or
 *   completed; the answer says what happened, why, and whether a retry on the same VMs makes
 *   sense;
 * - the recovery commands with the run's real addresses, whenever both sides are paused;
 * - whether a `migrate` goes through the lab's link, or past it, and whether the destination
 *   listens where the link forwards (`bypassRefusal`).
 */
import type { LinkFault, Side, Snapshot, Unreachable, UnreachableCause } from '../types.js';
import type { QmpCommand } from './describe.js';
import type { LabStep } from './schema.js';

/** How long a state must last before it is declared final: states move in bursts around a failure. */
export const SETTLE_MS: Record<UnreachableCause, number> = { 'migration-failed': 1000, 'migration-completed': 3000 };

/** The steps before step `n` (1-based) in words: "step 1", "steps 1–3". */
export function stepsBefore(n: number): string {
  return n <= 2 ? 'step 1' : `steps 1–${n - 1}`;
}

/** Whether a step's own `do` starts a fresh migration (so a failed one before it is no dead end). */
export function startsMigration(step: Pick<LabStep, 'actions'>): boolean {
  return step.actions.some(
    (a) => a.type === 'qmp' && (a.execute === 'migrate-incoming' || (a.execute === 'migrate' && a.arguments.resume !== true)),
  );
}

/** Whether a step's own `do` breaks the link (then a fault key is part of the step, not a mistake). */
export function breaksLink(step: Pick<LabStep, 'actions'>): boolean {
  return step.actions.some((a) => a.type === 'link' && a.fault.kind !== 'up' && !(a.fault.kind === 'bandwidth' && a.fault.bytesPerSec === 0));
}

const cutOrHole = (s: Snapshot): string | null => {
  const dirs = [s.link['source-to-destination'], s.link['destination-to-source']];
  if (dirs.some((d) => d.state === 'cut')) return 'The cut';
  if (dirs.some((d) => d.state === 'blackhole')) return 'The blackhole';
  if (dirs.some((d) => d.state === 'down')) return 'The link going down';
  return null;
};

/**
 * Null while the step can still happen; else why not. `condition` is the step's `until` source,
 * known to be false on `s`.
 */
export function unreachable(step: Pick<LabStep, 'index' | 'actions'>, condition: string, s: Snapshot): Unreachable | null {
  const src = s.source.status;
  const dst = s.destination.status;
  const needs = /postcopy/.test(condition) ? 'a migration in postcopy' : 'a migration in progress';
  if (src === 'completed' && dst === 'completed') {
    return {
      cause: 'migration-completed',
      step: step.index + 1,
      message:
`The migration completed before this step could happen: nothing was lost, but '${condition}' can no longer hold.`,
      retry: false,
    };
  }
  // A failure with the source still owning the guest (precopy); postcopy splits are GuestWatch's.
  const ended = (x: string) => x === 'failed' || x === 'cancelled';
  if ((ended(src) || (ended(dst) && !src.startsWith('postcopy'))) && !startsMigration(step)) {
    const what = cutOrHole(s);
    const running = s.source.runState === 'running';
    const head = what ? `${what} came during precopy: the migration failed` : `The migration failed during precopy (source ${src}, destination ${dst})`;
    return {
      cause: 'migration-failed',
      step: step.index + 1,
      message: `${head}${running ? ' and the guest kept running on the source' : ''} — nothing was lost, but this step needs ${needs}.`,
      retry: s.source.alive && s.destination.alive,
    };
  }
  return null;
}

/**
 * The commands that recover a paused postcopy, with this run's addresses (on the libvirt
 * backend the one virsh command that does both); null unless both
 * sides are paused and running (a killed source keeps its last state but can resume nothing:
 * the commands come back once a recovery source runs in its place).
 */
export function recoveryCommands(s: Snapshot | null, addresses: Readonly<Record<string, string>>): { side: Side; line: string }[] | null {
  if (!s || s.source.status !== 'postcopy-paused' || s.destination.status !== 'postcopy-paused') return null;
  if (!s.source.alive || !s.destination.alive) return null;
  // libvirt owns the job there and refuses the QMP pair: the command an operator types instead.
  const domain = addresses['libvirt.domain'];
  const destUri = addresses['libvirt.dest-uri'];
  if (domain && destUri) return [{ side: 'source', line: `virsh migrate --live --postcopy --postcopy-resume ${domain} ${destUri}` }];
  const listen = addresses['recover.listen'];
  const connect = addresses['recover.connect'];
  if (!listen || !connect) return null;
  return [
    { side: 'destination', line: `migrate-recover {"uri": "${listen}"}` },
    { side: 'source', line: `migrate {"uri": "${connect}", "resume": true}` },
  ];
}

/**
 * Why the lab refuses a command, or null. A source `migrate` must go through the link (one of
 * its connect addresses): one aimed at the destination's own listener passes the first steps,
 * then no fault does anything and the lab fails much later for a reason nobody can see.
 */
export function bypassRefusal(side: Side, cmd: QmpCommand, addresses: Readonly<Record<string, string>>): string | null {
  if (side === 'destination') return listenRefusal(cmd, addresses);
  if (side !== 'source' || cmd.execute !== 'migrate') return null;
  const uri = cmd.arguments?.uri;
  if (typeof uri !== 'string') return null;
  const resume = cmd.arguments?.resume === true;
  const connect = addresses[resume ? 'recover.connect' : 'incoming.connect'];
  const allowed = [addresses['incoming.connect'], addresses['recover.connect']].filter((a): a is string => !!a);
  if (allowed.length === 0 || allowed.includes(uri)) return null;
  const own = [addresses['incoming.listen'], addresses['recover.listen']].includes(uri);
  const what = own ? "that address is the destination's own listener" : "that address is not the lab's link";
  const args = resume ? `{"uri": "${connect}", "resume": true}` : `{"uri": "${connect}"}`;
  return `${what}, so no fault of the lab would reach the migration; the lab's link is at ${connect}: use migrate ${args}`;
}

/** Whether listening at `uri` takes connections made to `listen`: the same address, or any address (`tcp:0.0.0.0:P`, `tcp:[::]:P`) on its port. */
function listensAt(uri: string, listen: string): boolean {
  if (uri === listen) return true;
  const u = /^tcp:(.*):(\d+)$/.exec(uri);
  const l = /^tcp:(.*):(\d+)$/.exec(listen);
  return !!u && !!l && u[2] === l[2] && ['0', '0.0.0.0', '::', '[::]', ''].includes(u[1]!);
}

/**
 * Why the lab refuses a destination's listen, or null. The link forwards the source's
 * connection to one address (`incoming.listen`, `recover.listen` for a recovery); a destination
 * listening anywhere else is found by nobody, and the source's `migrate` then fails with a reset
 * that says nothing of why — and a destination listens only once, so the mistake would cost the
 * run. Found playing link-cut-recovery with a port copied from an example.
 */
function listenRefusal(cmd: QmpCommand, addresses: Readonly<Record<string, string>>): string | null {
  const key = cmd.execute === 'migrate-incoming' ? 'incoming.listen' : cmd.execute === 'migrate-recover' ? 'recover.listen' : null;
  const listen = key ? addresses[key] : undefined;
  const uri = cmd.arguments?.uri;
  if (!listen || typeof uri !== 'string' || listensAt(uri, listen)) return null;
  return `the lab's link forwards the source's connection to ${listen}, so a destination listening at ${uri} would never be found (the source's migrate would fail); use ${cmd.execute} {"uri": "${listen}"}`;
}

/** What a link fault does now, for the question asked before one the step does not call for. */
export function faultConsequence(fault: LinkFault, s: Snapshot | null): string {
  const status = s?.source.status ?? 'none';
  const breaking = fault.kind === 'cut' || fault.kind === 'blackhole' || fault.kind === 'down';
  const word = fault.kind === 'cut' ? 'a cut' : fault.kind === 'blackhole' ? 'a blackhole' : fault.kind === 'down' ? 'taking the link down' : 'this change';
  if (!breaking) return `${word} slows the migration down`;
  if (status === 'active' || status === 'setup') {
    return fault.kind === 'cut' ? `${word} now fails the migration (precopy)` : `${word} now stalls the migration (precopy) until the link is back`;
  }
  if (status === 'postcopy-active') {
    return fault.kind === 'cut' ? `${word} now pauses both sides (postcopy-paused) and this step waits until you recover` : `${word} now freezes the postcopy migration`;
  }
  if (status.startsWith('postcopy')) return `${word} now breaks the recovery under way`;
  return `${word} changes nothing for the migration now (${status})`;
}
