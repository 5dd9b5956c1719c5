/**
 * Judgements about where the migration is relative to the lab, from a snapshot alone (pure,
 * tested with fake snapshots):
 * - whether the current step can still happen (`unreachable`): a step waiting for a live
 *   migration cannot, once the migration failed (unless the step itself starts a new one) or
 *   completed; the answer says what happened, why, and whether a retry on the same VMs makes
 *   sense;
 * - the recovery commands with the run's real addresses, whenever both sides are paused;
 * - whether "show me" may run the step over a link the person broke (`showMeRefusal`), and what
 *   to do after a failed migration in a step that starts one (`restartAdvice`);
 * - whether a `migrate` goes through the lab's link, or past it, and whether the destination
 *   listens where the link forwards (`bypassRefusal`); whether a resume would meet a link the
 *   person left broken (`resumeRefusal`).
 */
import type { Direction, LinkFault, MigrationStatus, SessionState, Side, Snapshot, StepView, Unreachable, UnreachableCause } from '../types.js';
import { isPostcopy } from '../sim/states.js';
import { evaluateCondition, parseCondition, type Expr } from './condition.js';
import type { QmpCommand } from './describe.js';
import type { LabAction, LabStep } from './schema.js';
import { parseVersion } from './qemu-range.js';
import { recoveryFailureStrands as strands } from '../sim/versions.js';
import { stepState } from './snapshot-fields.js';

/** How long a state must last before it is declared final: states move in bursts around a failure. */
export const SETTLE_MS: Record<UnreachableCause, number> = { 'migration-failed': 1000, 'migration-completed': 3000, 'switched-to-postcopy': 1000 };

/** States of a migration before its switchover: a condition that requires one cannot hold once postcopy began. */
const PRECOPY_STATES = new Set(['none', 'setup', 'active', 'pre-switchover']);

const precopyNeeds = new Map<string, Side[]>();

/**
 * The sides whose status `condition` requires to be a precopy state (a `side.status == "active"`,
 * or an `in` list of precopy states, among the conjuncts of its top-level `&&`): "wait for
 * precopy's first pass" steps. Memoised: it is asked on every snapshot.
 */
export function precopyRequired(condition: string): Side[] {
  let sides = precopyNeeds.get(condition);
  if (sides) return sides;
  const found = new Set<Side>();
  const statusSide = (e: Expr): Side | null =>
    e.kind === 'path' && e.segments.length === 2 && e.segments[1] === 'status' && (e.segments[0] === 'source' || e.segments[0] === 'destination') ? e.segments[0] : null;
  const walk = (e: Expr): void => {
    if (e.kind === 'binary' && e.op === '&&') return (walk(e.left), walk(e.right));
    if (e.kind === 'binary' && e.op === '==') {
      const [path, lit] = e.left.kind === 'path' ? [e.left, e.right] : [e.right, e.left];
      const side = statusSide(path);
      if (side && lit.kind === 'literal' && typeof lit.value === 'string' && PRECOPY_STATES.has(lit.value)) found.add(side);
    } else if (e.kind === 'in') {
      const side = statusSide(e.left);
      if (side && e.list.length > 0 && e.list.every((v) => typeof v === 'string' && PRECOPY_STATES.has(v))) found.add(side);
    }
  };
  try {
    walk(parseCondition(condition).ast);
  } catch {
    // Not a condition this module can read: nothing is required.
  }
  sides = [...found];
  precopyNeeds.set(condition, sides);
  return sides;
}

/** The steps before step `n` (1-based) in words: "step 1", "steps 1–3". */
export function stepsBefore(n: number): string {
  return n <= 2 ? 'step 1' : `steps 1–${n - 1}`;
}

/** Whether an action starts a fresh migration: a destination's migrate-incoming, a source's migrate that is no resume. */
export function startsFreshMigration(a: LabStep['actions'][number]): boolean {
  return a.type === 'qmp' && (a.execute === 'migrate-incoming' || (a.execute === 'migrate' && a.arguments.resume !== true));
}

/** Whether a step's own `do` starts a fresh migration (so a failed one before it is no dead end). */
export function startsMigration(step: Pick<LabStep, 'actions'>): boolean {
  return step.actions.some(startsFreshMigration);
}

/** Whether a fault kind, or a direction's state, breaks the link: cut, blackhole, down (a migration over it stops). */
export const isBreaking = (kind: string): boolean => kind === 'cut' || kind === 'blackhole' || kind === 'down';

/** The link-breaking faults a step's own `do` applies, in order. */
function stepBreakingFaults(step: Pick<LabStep, 'actions'>): LinkFault[] {
  return step.actions.flatMap((a) => (a.type === 'link' && isBreaking(a.fault.kind) ? [a.fault] : []));
}

/** The kinds of link-breaking fault a step's own `do` applies: a fault key of another kind is still a question. */
export function stepLinkFaults(step: Pick<LabStep, 'actions'>): LinkFault['kind'][] {
  return [...new Set(stepBreakingFaults(step).map((f) => f.kind))];
}

/** Whether a step's own `do` starts a fresh VM (on `side`, or on either): it restarts or starts one. */
export function startsFreshVm(step: Pick<LabStep, 'actions'>, side?: Side): boolean {
  return step.actions.some((a) => a.type === 'vm' && (side === undefined || a.side === side) && (a.do === 'restart' || a.do === 'start'));
}

/**
 * When a step's own `do` is only VM actions (kill, start, restart, a recovery source), which the
 * person has no command for and only `s` (show me) does: what that does, in a few words for the
 * key bar ("restart both VMs", "kill source"); undefined for any other step.
 */
export function vmOnlyLabel(step: Pick<LabStep, 'actions'>): string | undefined {
  const vm = step.actions.flatMap((a) => (a.type === 'vm' ? [a] : []));
  if (vm.length === 0 || vm.length !== step.actions.length) return undefined;
  const words = (op: string) => (op === 'recovery-source' ? 'start recovery source' : op);
  const ops = [...new Set(vm.map((a) => a.do))];
  const sides = [...new Set(vm.map((a) => a.side))];
  if (ops.length > 1) return 'do the VM steps';
  if (sides.length > 1) return `${words(ops[0]!)} both VMs`;
  return ops[0] === 'recovery-source' ? words(ops[0]) : `${words(ops[0]!)} ${sides[0]!}`;
}

/**
 * The sides a step's own `do` sends a recovery command to: the destination's migrate-recover, the
 * source's migrate with resume. double-failure's "Reconnect too early" resumes the source alone.
 */
export function recoverySides(step: Pick<LabStep, 'actions'>): Side[] {
  const sides = step.actions.flatMap((a): Side[] => {
    if (a.type !== 'qmp') return [];
    if (a.side === 'destination' && a.execute === 'migrate-recover') return ['destination'];
    if (isSourceResume(a.side, a)) return ['source'];
    return [];
  });
  return [...new Set(sides)];
}

/**
 * The link-breaking faults a step's own `do` applies before its first recovery command:
 * qemu-recover-hang's "Start a recovery that stalls" blackholes the return path, then
 * recovers. The recovery commands alone, said to someone who restored the link, would recover
 * without the stall the step is about.
 */
export function faultsBeforeRecovery(step: Pick<LabStep, 'actions'>): LinkFault[] {
  const out: LinkFault[] = [];
  for (const a of step.actions) {
    if (a.type === 'qmp' && ((a.side === 'destination' && a.execute === 'migrate-recover') || isSourceResume(a.side, a))) return out;
    if (a.type === 'link' && isBreaking(a.fault.kind)) out.push(a.fault);
  }
  // No recovery in the step: nothing comes before one.
  return [];
}

/** Of `faults`, the ones the link does not show yet (a direction they break is in another state). */
export function faultsNotInPlace(s: Snapshot, faults: readonly LinkFault[]): LinkFault[] {
  return faults.filter((f) => {
    const dirs: Direction[] = f.direction === undefined || f.direction === 'both' ? ['source-to-destination', 'destination-to-source'] : [f.direction];
    return dirs.some((d) => s.link[d].state !== f.kind);
  });
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

const MIGRATION_STARTS = new Set(['migrate', 'migrate-incoming', 'migrate-recover']);

/** A migration that ended without completing. */
const ended = (status: string): boolean => status === 'failed' || status === 'cancelled';

/**
 * The link's state in words when a direction is cut, blackholed or down: "cut", "blackholed
 * (destination to source)". Short: it leads error notices that must fit one row at 80 columns.
 */
export function brokenLink(s: Snapshot): string | null {
  const f = s.link['source-to-destination'].state;
  const b = s.link['destination-to-source'].state;
  const word = (x: string) => (x === 'blackhole' ? 'blackholed' : x);
  if (isBreaking(f) && isBreaking(b)) return f === b ? word(f) : `${word(f)} (source to destination), ${word(b)} (back)`;
  if (isBreaking(f)) return `${word(f)} (source to destination)`;
  if (isBreaking(b)) return `${word(b)} (destination to source)`;
  return null;
}

/**
 * What the lab adds under a console line's reply, or null: the next move where the reply alone
 * does not say it. `step`: the step under way; `addresses`: this run's (with libvirt's domain).
 */
export function consoleReplyNote(
  side: Side,
  line: string,
  reply: { ok: boolean; text: string },
  step: Pick<LabStep, 'actions'> | undefined,
  s: Snapshot | null,
  addresses: Readonly<Record<string, string>>,
): string | null {
  if (!reply.ok) {
    // A VM that is gone (QEMU's destination exits when its precopy fails) in a step that starts a
    // fresh one: say which key does (found playing precopy-failure on QEMU 10.0, where
    // migrate-incoming typed after the cut answered only "not running"). So does one that already
    // took its one incoming migration (QEMU's "has already been started", found playing
    // throttle-vs-postcopy: migrate-incoming typed to the destination that had completed, in the
    // step that restarts both VMs).
    const spent = reply.text.includes(`the ${side} VM is not running`) || reply.text.includes('The incoming migration has already been started');
    if (spent && step && startsFreshVm(step, side)) return `(this step starts a fresh ${side}: s (show me) does it, and then the rest of the step)`;
    const noFlag = postcopyFlagMissing(reply.text, addresses['libvirt.domain']);
    if (noFlag) return noFlag;
  }
  const overLink = virshResumeOverBrokenLink(line, s, reply.ok, reply.text);
  if (overLink) return overLink;
  const slow = reply.ok ? virshResumeBandwidthNote(line, step, addresses['libvirt.domain']) : null;
  if (slow) return slow;
  // A recovery's migrate without resume (QEMU: "There's a migration process in progress", and
  // nothing more; a newcomer's walk on QEMU 7.2).
  if (!reply.ok && side === 'source' && s?.source.status === 'postcopy-paused' && /^\s*migrate\s*\{/.test(line) && !/"resume"\s*:\s*true/.test(line)) {
    return '(the source is postcopy-paused: a recovery\'s migrate takes "resume": true; type migrate, a space, and Tab fills it in)';
  }
  // The destination's query-migrate is its status and little else (QEMU's too): postcopy-basics
  // asks for postcopy-requests, and the console, opened on the destination, answered
  // {"status":"postcopy-active"} (played).
  if (reply.ok && side === 'destination' && /^\s*query-migrate\s*$/.test(line) && !/"ram"/.test(reply.text)) {
    return "(the destination's query-migrate has little more than its status; the migration's counters, postcopy-requests among them, are the source's: Shift-Tab)";
  }
  // A migration command typed without its address (played: migrate-incoming alone, answered only
  // with QEMU's "need either 'uri' or 'channels' argument"): the console's Tab knows it.
  // So is one typed HMP-style (migrate-incoming tcp:0:4444, a newcomer's first line): QEMU's
  // own answer would turn their address into JSON, and the lab then refused that address.
  const hmp = /^Arguments must be a JSON object/.test(reply.text);
  const name = (hmp ? /^\s*([\w-]+)\s/ : /^\s*([\w-]+)\s*$/).exec(line)?.[1];
  if (!reply.ok && name && (hmp || /'uri'|Parameter '[\w-]+' is missing/.test(reply.text)) && consoleArguments(name, side, s, addresses) !== null) {
    const what = name === 'pmemsave' ? "the file and the size are this run's" : "the address is this run's";
    return `(${what}: type ${name}, a space, and Tab fills it in)`;
  }
  return null;
}

/**
 * What to add to libvirt's refusal to switch a migration started without --postcopy to postcopy
 * ("switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag"), or
 * null: the flag is virsh's --postcopy, and the way on is to cancel and start again (played
 * libvirt-postcopy-pause: virsh migrate typed without --postcopy, then migrate-postcopy refused).
 */
export function postcopyFlagMissing(reply: string, domain?: string): string | null {
  if (!/VIR_MIGRATE_POSTCOPY/.test(reply)) return null;
  const d = domain ?? '<domain>';
  return `(this migration was started without --postcopy: virsh domjobabort ${d} on the source cancels it, nothing lost in precopy; then start it again with virsh migrate --live --postcopy …)`;
}

/**
 * What to add to libvirt's failure of a `virsh migrate … --postcopy-resume` typed while the link
 * is broken, or null: it fails connecting to the destination's daemon ("unable to connect to
 * server … Connection refused"), which does not say why (played libvirt-postcopy-recovery: the
 * resume typed before u; the QMP resume is refused by the lab for the same reason).
 */
export function virshResumeOverBrokenLink(line: string, s: Snapshot | null, started = false, reply = ''): string | null {
  if (!s || !/^\s*virsh\s+migrate\b.*\s--postcopy-resume\b/.test(line)) return null;
  // A refusal for another reason ("has not failed", libvirt-blackhole's lesson) is not the link's.
  if (!started && !/unable to connect|connection refused|timed out|no route to host|keepalive/i.test(reply)) return null;
  const broken = brokenLink(s);
  if (!broken) return null;
  // Started in the background over a blackhole (no refusal comes back): it waits on its connect
  // until TCP gives up, minutes later, and the learner read "started" as the recovery under way.
  return started
    ? `(the link is ${broken}: this virsh waits to reach the other side across it, minutes until TCP gives up; the resume cannot get through until u restores the link)`
    : `(the link is ${broken}: u restores it, then run this again)`;
}

/** The step's own fault of this kind in one direction, where `fault` takes both; else undefined. */
export function oneWayWanted(step: Pick<StepView, 'faultsBeforeRecovery'> | undefined, fault: LinkFault): LinkFault | undefined {
  if (fault.direction && fault.direction !== 'both') return undefined;
  return step?.faultsBeforeRecovery?.find((f) => f.kind === fault.kind && f.direction !== undefined && f.direction !== 'both');
}

/**
 * The note under a virsh resume whose --postcopy-bandwidth is not the step's own, or null:
 * libvirt-double-failure's last step resumes at 1024 MiB/s, and the line one ↑ away in the
 * console's history is step 3's, at 1 (played: ↑ and Enter, and minutes at 1 MiB/s follow).
 */
export function virshResumeBandwidthNote(line: string, step: Pick<LabStep, 'actions'> | undefined, domain: string | undefined): string | null {
  if (!/^\s*virsh\s+migrate\b.*\s--postcopy-resume\b/.test(line)) return null;
  const bandwidth = (args: readonly string[]) => {
    const i = args.indexOf('--postcopy-bandwidth');
    return i >= 0 ? args[i + 1] : undefined;
  };
  const own = step?.actions.find((a) => a.type === 'virsh' && a.args[0] === 'migrate' && a.args.includes('--postcopy-resume'));
  const want = own?.type === 'virsh' ? bandwidth(own.args) : undefined;
  if (!want) return null;
  const typed = bandwidth(line.trim().split(/\s+/).slice(1));
  if (typed === want) return null;
  const setspeed = `virsh migrate-setspeed ${domain ?? 'DOMAIN'} ${want} --postcopy`;
  return `(this step resumes at --postcopy-bandwidth ${want} MiB/s; this one runs at ${typed ? `${typed} MiB/s` : "the last bandwidth libvirt kept"}: ${setspeed} changes it while it runs)`;
}

/**
 * Whether a direction is broken in a way the step's own `do` (`stepFaults`, its linkFaults) does
 * not break it: the person's doing (a cut in blackhole's "Pull the cable"), to be restored first.
 */
export function brokenOutsideStep(s: Snapshot, stepFaults: readonly string[]): boolean {
  return [s.link['source-to-destination'].state, s.link['destination-to-source'].state].some((x) => isBreaking(x) && !stepFaults.includes(x));
}

/**
 * Why "show me" must not run the step now, or null: the link is broken (a fault key the person
 * pressed) and the step would start or resume a migration before any link action of its own.
 * Over a cut that migration fails at once with a bare connection reset (over a blackhole it
 * hangs), and nothing on screen said the link was the reason (found playing double-failure:
 * c during precopy, then s). A step whose own `do` sets the link first, or that expects the
 * command to fail, runs as written.
 */
export function showMeRefusal(step: Pick<LabStep, 'actions'>, s: Snapshot | null): string | null {
  const link = s ? brokenLink(s) : null;
  if (!link) return null;
  for (const a of step.actions) {
    if (a.type === 'link' || a.type === 'restore') return null;
    const starts =
      (a.type === 'qmp' && MIGRATION_STARTS.has(a.execute)) || (a.type === 'virsh' && a.args.some((x) => x.startsWith('migrate')));
    if (!starts) continue;
    if (a.expectError !== undefined || a.allowError !== undefined) return null;
    return `the link is ${link}: press u to restore it, then s (the migration this step starts would not get through)`;
  }
  return null;
}

/** A destination's ended incoming migration, as words after "this one": "has failed", "was cancelled", "has completed". */
export const SPENT_WORDS: Partial<Record<MigrationStatus, string>> = { failed: 'has failed', cancelled: 'was cancelled', completed: 'has completed' };

/**
 * What to do in a step that starts a migration when none runs: after a failed one (the step is
 * no dead end, but nothing on screen said how to go on), start again; with the link broken by
 * a fault key, restore it first (a migration started over it fails at once with a bare reset).
 * Null otherwise.
 */
export function restartAdvice(
  step: Pick<StepView, 'startsMigration' | 'startsFreshDestination' | 'status'> | undefined,
  s: Snapshot | null,
  addresses: Record<string, string> = {},
): string | null {
  if (!step?.startsMigration || step.status !== 'active' || !s || !s.source.alive || !s.destination.alive) return null;
  const link = brokenLink(s);
  if (ended(s.source.status)) {
    // Two rows at 80 columns: it takes them from the event log.
    const what = cutOrHole(s);
    // migrate before migrate-incoming: the usual first mistake, and the words should say so.
    const unheard = s.source.status === 'failed' && s.destination.status === 'none';
    // A destination whose incoming migration has ended listens no more (QEMU's exits; the sim's
    // stays, failed). In a step that starts a fresh one, "start it again" sent the learner's
    // migrate to it and failed again with a bare reset (found playing throttle-vs-postcopy:
    // migrate_cancel, then auto-converge and migrate without the fresh destination).
    const spent = step.startsFreshDestination === true && ended(s.destination.status);
    // One whose step starts no fresh one but is still there (the sim's stays, failed) listens
    // again with migrate-incoming, and show me sends it first (listenFirst). Found by a newcomer
    // playing postcopy-basics: c during precopy, u, and s failed every time on a destination
    // that listened no more, while the words said "start it again".
    const relisten = !spent && ended(s.destination.status);
    const listen = addresses['incoming.listen'] ? `migrate-incoming {"uri": "${addresses['incoming.listen']}"}` : 'migrate-incoming';
    const head = what
      ? `${what} came during precopy: the migration failed`
      : unheard
        ? 'The migration failed: the destination was not listening yet (migrate-incoming comes first)'
        : `The migration ${s.source.status === 'cancelled' ? 'was cancelled' : 'failed'}`;
    const next = link
      ? `u restores the link; then start again (s shows you how)`
      : unheard
        ? 'start the destination listening, then migrate again (s shows you how)'
        : spent
          ? `a fresh destination comes first (this one ${SPENT_WORDS[s.destination.status] ?? `is ${s.destination.status}`} and listens no more; s shows you how)`
          : relisten
            ? `the destination ${SPENT_WORDS[s.destination.status] ?? `is ${s.destination.status}`} too and listens no more: on the destination ${listen} first, then migrate again (s does both)`
            : 'start it again (s shows you how)';
    return `${head}, nothing was lost: ${next}.`;
  }
  if (s.source.status === 'none' && link) {
    return `The link is ${link}: a migration started now would not get through. u restores it.`;
  }
  return null;
}

/**
 * The destination's migrate-incoming that "show me" sends before a step's own commands, or
 * null: the step starts a migration from the source but leaves the destination's listening to
 * an earlier step, and the destination, still there, is not listening (its incoming migration
 * ended with the failed one; the sim's stays, failed, and takes migrate-incoming again). Found
 * by a newcomer playing postcopy-basics: c during precopy, u, then s, which sent migrate alone
 * to a destination that listened no more and failed every time.
 */
export function listenFirst(step: Pick<LabStep, 'actions'>, s: Snapshot | null): LabAction | null {
  if (!s || !s.destination.alive || (!ended(s.destination.status) && s.destination.status !== 'none')) return null;
  if (!step.actions.some((a) => a.type === 'qmp' && a.side === 'source' && a.execute === 'migrate' && a.arguments.resume !== true)) return null;
  if (step.actions.some((a) => a.type === 'qmp' && a.execute === 'migrate-incoming') || startsFreshVm(step, 'destination')) return null;
  return { type: 'qmp', side: 'destination', execute: 'migrate-incoming', arguments: { uri: '${incoming.listen}' }, oob: false };
}

/**
 * Null while the step can still happen; else why not. `condition` is the step's `until` source
 * (or a `wait-until` of its `do`), known to be false on `s`; `started`: the step's own start of
 * a migration has run.
 */
export function unreachable(step: Pick<LabStep, 'index' | 'actions'>, condition: string, s: Snapshot, opts: { started?: boolean } = {}): Unreachable | null {
  const src = s.source.status;
  const dst = s.destination.status;
  // A step whose own `do` starts fresh VMs (postcopy-preempt's "Fresh VMs") waits for what comes
  // after them: the migration before, completed or failed, is what it expects to find until
  // then (found playing postcopy-preempt: step 2 was called a dead end before s was pressed).
  if (!opts.started && startsFreshVm(step)) return null;
  const needs = /postcopy/.test(condition) ? 'a migration in postcopy' : 'a migration in progress';
  if (src === 'completed' && dst === 'completed') {
    return {
      cause: 'migration-completed',
      step: step.index + 1,
      message:
`The migration completed before this step could happen: nothing was lost, but this step needs ${needs}.`,
      retry: false,
    };
  }
  // Postcopy cannot go back to precopy: a step waiting for precopy (its first pass, a throttle)
  // after the person switched early waits for nothing (found playing qemu-recovery-file).
  const switched = precopyRequired(condition).find((side) => isPostcopy(s[side].status));
  if (switched && !ended(src) && !ended(dst)) {
    return {
      cause: 'switched-to-postcopy',
      step: step.index + 1,
      message: `The migration switched to postcopy (${switched} ${s[switched].status}) before this step was done: the step watches precopy, and postcopy cannot go back to it.`,
      retry: false,
    };
  }
  // A failure with the source still owning the guest (precopy); postcopy splits are GuestWatch's.
  // A step that starts a migration is no dead end: the person starts it again. Once its own
  // start has run (a drill, show me: `started`), a failure is this step's migration failing.
  // Nor is one whose destination process is gone (QEMU's exits when its incoming migration
  // fails) when the step starts no fresh one: nothing the person types can start it again (found
  // playing double-failure on QEMU 10.0: c during precopy, then no word and no key but s, which
  // failed on the missing destination).
  const gone = !s.destination.alive && !startsFreshVm(step, 'destination');
  if ((ended(src) || (ended(dst) && !src.startsWith('postcopy'))) && (opts.started || !startsMigration(step) || gone)) {
    const what = cutOrHole(s);
    const running = s.source.runState === 'running';
    const head = what ? `${what} came during precopy: the migration failed` : `The migration failed during precopy (source ${src}, destination ${dst})`;
    // The event log says why (QEMU's destination exits when its incoming migration fails).
    const exited = s.destination.alive ? '' : ", the destination's process exited";
    return {
      cause: 'migration-failed',
      step: step.index + 1,
      message: `${head}${exited}${running ? ' and the guest kept running on the source' : ''} — nothing was lost, but this step needs ${needs}.`,
      retry: s.source.alive && s.destination.alive,
    };
  }
  return null;
}

/**
 * Whether both sides paused because the destination refused the source's postcopy-preempt
 * channel during the current step: the capability was set on the source only. A recovery meets
 * the same refusal (the destination cannot take the capability during a migration), so the
 * recovery commands lead nowhere; fresh VMs do (found playing postcopy-preempt: the capability
 * on the source alone, both sides paused at the switchover, and only the recovery commands on
 * screen, the reason in the event log).
 */
export function preemptRefused(state: Pick<SessionState, 'snapshot' | 'currentStep' | 'stepStart'>): boolean {
  const s = state.snapshot;
  const start = state.stepStart;
  if (!s || !start || start.step !== state.currentStep) return false;
  if (s.source.status !== 'postcopy-paused' || s.destination.status !== 'postcopy-paused') return false;
  return (s.link.refusedSecond ?? 0) > start.refusedSecond;
}

/**
 * The commands that recover a paused postcopy, with this run's addresses (on the libvirt
 * backend the one virsh command that does both); null unless both
 * sides are paused and running (a killed source keeps its last state but can resume nothing:
 * the commands come back once a recovery source runs in its place).
 */
export function recoveryCommands(
  s: Snapshot | null,
  addresses: Readonly<Record<string, string>>,
  stepActions: readonly string[] = [],
): { side: Side; line: string }[] | null {
  if (!s || s.source.status !== 'postcopy-paused' || s.destination.status !== 'postcopy-paused') return null;
  if (!s.source.alive || !s.destination.alive) return null;
  // libvirt owns the job there and refuses the QMP pair: the command an operator types instead.
  // The step's own resume where it has one, options and all: libvirt-double-failure's last step
  // resumes with --postcopy-bandwidth 1024, and a newcomer who typed the plain line shown here
  // resumed at the 1 MiB/s libvirt had kept, with nothing on screen saying why (README walk).
  const domain = addresses['libvirt.domain'];
  const destUri = addresses['libvirt.dest-uri'];
  if (domain && destUri) {
    const own = stepActions.map((a) => /^source: (virsh migrate .*--postcopy-resume.*)$/.exec(a)?.[1]).find((l) => l !== undefined);
    return [{ side: 'source', line: own ?? `virsh migrate --live --postcopy --postcopy-resume ${domain} ${destUri}` }];
  }
  const listen = addresses['recover.listen'];
  const connect = addresses['recover.connect'];
  if (!listen || !connect) return null;
  return [
    { side: 'destination', line: `migrate-recover {"uri": "${listen}"}` },
    { side: 'source', line: `migrate {"uri": "${connect}", "resume": true}` },
  ];
}

/**
 * The arguments the console's Tab fills in after a command name that needs an address, with this
 * run's addresses: `migrate` on the source (with `resume` once the source is postcopy-paused),
 * `migrate-incoming` and `migrate-recover` on the destination; and `pmemsave` on the source,
 * with the run's saved-RAM file and the guest's RAM size. The ports are new each run and the
 * lesson is not in typing them (found playing walk-recovery: `migrate ` then Tab did nothing).
 * Null where the command needs none of them, or on a backend without them (libvirt).
 */
export function consoleArguments(execute: string, side: Side, s: Snapshot | null, addresses: Readonly<Record<string, string>>): string | null {
  const uri = (key: string) => (addresses[key] ? `{"uri": "${addresses[key]}"}` : null);
  if (side === 'destination' && execute === 'migrate-incoming') return uri('incoming.listen');
  if (side === 'destination' && execute === 'migrate-recover') return uri('recover.listen');
  // qemu-recovery-file's save: the run's file and the guest's RAM, 40 characters of path a
  // learner otherwise copies by hand from the step's text (found playing it).
  if (side === 'source' && execute === 'pmemsave' && addresses['source.ram-file'] && addresses['guest.ram-bytes']) {
    return `{"val": 0, "size": ${addresses['guest.ram-bytes']}, "filename": "${addresses['source.ram-file']}"}`;
  }
  if (side !== 'source' || execute !== 'migrate') return null;
  if (s?.source.status === 'postcopy-paused') return addresses['recover.connect'] ? `{"uri": "${addresses['recover.connect']}", "resume": true}` : null;
  return uri('incoming.connect');
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

/** Whether a command is a source's `migrate` with `resume` (a postcopy recovery's reconnect). */
export function isSourceResume(side: Side, cmd: QmpCommand): boolean {
  return side === 'source' && cmd.execute === 'migrate' && cmd.arguments?.resume === true;
}

/**
 * Why the lab refuses a source's `migrate` with `resume` now, or null: the link is cut,
 * blackholed or down, and the step under way does not break it itself. Over a broken link the
 * resume cannot get through; QEMU before 8.2 (and the sim emulating it) then leaves its source
 * in postcopy-recover for good, where neither migrate-pause nor another resume moves it, and the
 * guest is lost. Found playing link-cut-recovery on QEMU 7.2: the recovery typed before u.
 * A step that breaks the link itself (qemu-recover-hang, double-failure) means its resume to
 * meet the fault it sets, and runs as written; a fault it does not set (a cut pressed where the
 * step blackholes the return path) is refused like any other, as the advice line already treats
 * it (`brokenOutsideStep`).
 */
export function resumeRefusal(step: Pick<LabStep, 'actions'> | undefined, side: Side, cmd: QmpCommand, s: Snapshot | null): string | null {
  if (!isSourceResume(side, cmd) || !s) return null;
  const link = brokenLink(s);
  // Only a step that recovers means its resume to meet its own fault. blackhole's "Pull the
  // cable" blackholes a running postcopy and recovers nothing: a person who cut instead, then
  // pressed b before recovering, resumed over the blackhole and the source sat in
  // postcopy-recover (a newcomer's walk).
  const recovers = !!step && recoverySides(step).length > 0;
  const own = step && recovers ? stepLinkFaults(step) : [];
  if (!link || !brokenOutsideStep(s, own)) return null;
  const faults = (step && recovers ? stepBreakingFaults(step) : []).map((f) => (f.direction && f.direction !== 'both' ? `${f.kind} ${f.direction}` : f.kind));
  const then = faults.length > 0 ? `, set the step's own fault (${[...new Set(faults)].join(', ')}), then` : ', then';
  return `the link is ${link}, so the resume would not get through (and a QEMU source before 8.2 would then stay in postcopy-recover for good): press u to restore the link${then} resume`;
}

/**
 * Why the lab refuses a person's migrate-start-postcopy now, or null: the step under way waits
 * for precopy (its first pass, a throttle: `precopyRequired`), its condition does not hold yet,
 * and the switch is not the step's own. Postcopy cannot go back, so the switch would leave the
 * step waiting for nothing (`unreachable`'s switched-to-postcopy, found after the fact playing
 * qemu-recovery-file: switched while precopy's first pass ran; w was the only way on). Said
 * before, the person only waits.
 */
export function earlySwitchRefusal(step: Pick<LabStep, 'actions' | 'until' | 'index'> | undefined, side: Side, cmd: QmpCommand, s: Snapshot | null): string | null {
  if (!step || !s || side !== 'source' || cmd.execute !== 'migrate-start-postcopy') return null;
  if (step.actions.some((a) => a.type === 'qmp' && a.execute === 'migrate-start-postcopy')) return null;
  const sides = precopyRequired(step.until.source);
  if (!sides.length || !sides.every((x) => s[x].status === 'active')) return null;
  if (evaluateCondition(step.until, stepState(s, s)).value) return null;
  return `step ${step.index + 1} waits for precopy (${step.until.source}), which has not happened yet; postcopy cannot go back to precopy, so switching now would leave the step waiting for nothing: wait until step ${step.index + 1} is done, then switch`;
}

/** Whether a source of this QEMU version ("7.2") is stranded by a recovery connection that fails (versions.ts). */
export function recoveryFailureStrands(version: string): boolean {
  try {
    return strands(...parseVersion(version));
  } catch {
    return false;
  }
}

/**
 * Why the lab refuses a source's resume before the destination listens, or null: on QEMU before
 * 8.2 the resume that finds no listener (the relay accepts it and resets it; the kernel link
 * refuses it) leaves the source in postcopy-recover for good, and the guest is lost. Found
 * playing link-cut-recovery on QEMU 7.2: the resume typed before migrate-recover. From 8.2 the
 * source falls back to postcopy-paused, and double-failure's "Reconnect too early" does this on
 * purpose. `listening`: a migrate-recover was accepted on the destination since its last change
 * of state.
 */
export function earlyResumeRefusal(side: Side, cmd: QmpCommand, s: Snapshot | null, listening: boolean, version: string, recoverListen?: string): string | null {
  if (listening || !s || !isSourceResume(side, cmd) || s.destination.status !== 'postcopy-paused' || !recoveryFailureStrands(version)) return null;
  const first = recoverListen ? `migrate-recover {"uri": "${recoverListen}"}` : 'migrate-recover';
  // A stand-in in the lost source's place (qemu-recovery-file) is ours, not a QEMU source: what
  // holds for it is only the order.
  if (s.source.recoverySource) return `the destination is not listening for the recovery yet, and the resume needs a listener: first, on the destination, ${first}`;
  return `the destination is not listening for the recovery yet, and a QEMU ${version} source whose resume finds no listener stays in postcopy-recover for good: first, on the destination, ${first}`;
}

/**
 * What the lab adds under a resume the source took while the destination is not listening for
 * it, or null: the source (the sim's, a recovery source, QEMU from 8.2) accepts it, finds no
 * listener and falls back to postcopy-paused, and the reply was only `{}` (a newcomer resumed the
 * recovery source before migrate-recover in recovery-file, and found the reason only in the
 * event log, cut at its edge). Not in a step that resumes the source alone on purpose
 * (double-failure's "Reconnect too early").
 */
export function unheardResumeNote(
  side: Side,
  line: string,
  reply: { ok: boolean },
  step: Pick<LabStep, 'actions'> | undefined,
  s: Snapshot | null,
  listening: boolean,
  recoverListen?: string,
): string | null {
  if (!reply.ok || listening || side !== 'source' || !s || s.destination.status !== 'postcopy-paused') return null;
  if (!/^\s*(\{\s*"execute"\s*:\s*")?migrate\b(?!-)/.test(line) || !/"resume"\s*:\s*true/.test(line)) return null;
  const own = step ? recoverySides(step) : [];
  if (own.length === 1 && own[0] === 'source') return null;
  const first = recoverListen ? `migrate-recover {"uri": "${recoverListen}"}` : 'migrate-recover';
  return `(the destination is not listening for the recovery yet: this resume finds no one and the source goes back to postcopy-paused; first, on the destination, ${first}, then resume again)`;
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

/**
 * Whether a fault the step calls for would come too early now: the step waits for postcopy (its
 * `until` names a postcopy state) and the migration is still in precopy, where a cut fails it
 * instead (found playing double-failure: "Start postcopy and cut the link", c pressed during
 * precopy, and no question asked because the step's own fault is a cut).
 */
export function faultTooEarly(step: Pick<StepView, 'until'> | undefined, fault: Pick<LinkFault, 'kind'>, s: Snapshot | null): boolean {
  if (!step?.until || !isBreaking(fault.kind) || !/postcopy/.test(step.until)) return false;
  const status = s?.source.status ?? 'none';
  return status === 'active' || status === 'setup';
}

/** What a link fault does now, for the question asked before one the step does not call for. */
export function faultConsequence(fault: LinkFault, s: Snapshot | null): string {
  const status = s?.source.status ?? 'none';
  const breaking = isBreaking(fault.kind);
  const word = fault.kind === 'cut' ? 'a cut' : fault.kind === 'blackhole' ? 'a blackhole' : fault.kind === 'down' ? 'taking the link down' : 'this change';
  if (!breaking) return `${word} slows the migration down`;
  if (status === 'active' || status === 'setup') {
    return fault.kind === 'cut' ? `${word} now fails the migration (precopy)` : `${word} now stalls the migration (precopy) until the link is back`;
  }
  // The source has switched, but the switchover still waits behind precopy bytes on the link
  // (the destination is still active): a cut now fails the destination while it loads the
  // device state, and the guest is lost (found playing recovery-file-window: migrate-start-postcopy
  // at once on a 512 KiB/s link, then c; the question said both sides would pause).
  const dst = s?.destination.status ?? 'none';
  if ((status === 'postcopy-active' || status === 'device') && (dst === 'active' || dst === 'setup')) {
    return fault.kind === 'cut'
      ? `${word} now, before the switchover has reached the destination (still ${dst}), fails its migration while the source pauses: the guest is lost`
      : `${word} now holds the switchover on its way to the destination (still ${dst}) until the link is back`;
  }
  if (status === 'postcopy-active') {
    return fault.kind === 'cut' ? `${word} now pauses both sides (postcopy-paused) and this step waits until you recover` : `${word} now freezes the postcopy migration`;
  }
  if (status === 'postcopy-paused') return `${word} now keeps the next recovery from getting through until the link is restored (u)`;
  if (status.startsWith('postcopy')) return `${word} now breaks the recovery under way`;
  return `${word} changes nothing for the migration now (${status})`;
}
