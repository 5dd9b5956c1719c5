/**
 * How a run fails, as values: RunFailure carries a typed reason (types.ts FailureReason) and
 * the step, condition and values seen; and the two judgements about a run that the runner
 * makes on its own, without a lab condition — what a VM's death means, and when the guest can
 * no longer run anywhere (GuestWatch). The run's summary is src/lab/verdict.ts.
 */
import type { RunDriver } from '../driver/backend.js';
import type { FailureReason, MigrationStatus, RunSummary, Side, Snapshot } from '../types.js';

type FailureDetail = Omit<NonNullable<RunSummary['failure']>, 'reason' | 'message'>;

/** A run's failure: thrown by the step engine, passed to every waiter when the run is aborted. */
export class RunFailure extends Error {
  override name = 'RunFailure';

  constructor(
    message: string,
    readonly reason: FailureReason,
    readonly detail: FailureDetail = {},
  ) {
    super(message);
  }

  /** Anything thrown, as a RunFailure (an unexpected error keeps its message, reason `fallback`). */
  static from(e: unknown, fallback: FailureReason = 'error'): RunFailure {
    if (e instanceof RunFailure) return e;
    return new RunFailure(e instanceof Error ? e.message : String(e), fallback);
  }

  toSummary(): NonNullable<RunSummary['failure']> {
    return { reason: this.reason, ...this.detail, message: this.message };
  }
}

/**
 * A run's end against the lab's declared outcome. With none, the run stands as it ended. With
 * `outcome: { failure: R }`, ending with exactly R is a pass (`expected` names it); completing,
 * or failing for another reason, fails and says what the lab expected.
 */
export function judgeOutcome(
  outcome: { failure: FailureReason } | undefined,
  failure: RunFailure | null,
  verified: boolean,
): { failure: RunFailure | null; expected?: { reason: FailureReason; message: string } } {
  if (!outcome) return { failure };
  const want = outcome.failure;
  if (failure?.reason === want) return { failure: null, expected: { reason: want, message: failure.message } };
  if (!failure) {
    const how = verified ? 'the migration completed and every page verified' : 'the run ended without that failure';
    return { failure: new RunFailure(`the lab expects this run to end in '${want}', but ${how}`, 'expect', { seen: { outcome: verified ? 'completed' : 'no failure' } }) };
  }
  return { failure: new RunFailure(`${failure.message.replace(/[.\s]*$/, '.')} The lab expects this run to end in '${want}' instead.`, failure.reason, failure.detail) };
}

/** What a VM process's unexpected end means for the guest, from both sides' last known states. */
export function vmDeathMeaning(side: Side, status: MigrationStatus, other: MigrationStatus): string {
  const postcopy = (s: MigrationStatus) => s.startsWith('postcopy');
  if (side === 'destination' && (postcopy(status) || postcopy(other))) {
    return 'The destination died during postcopy: the guest ran there and part of its memory existed only there. The guest is lost. This is the real risk of postcopy.';
  }
  if (side === 'source' && status === 'completed') return 'The source ended after the migration completed; the guest is safe on the destination.';
  if (side === 'source' && postcopy(status)) {
    return 'The source died during postcopy: the pages the destination had not yet received are gone with it. The guest is lost.';
  }
  if (side === 'source') return 'The source died before switchover: the guest was only there, so it is gone.';
  return 'The destination died before switchover: nothing is lost, the guest still runs on the source.';
}

/**
 * Whether a destination process that ended by itself is no loss to the run: it exited (not a
 * crash: no signal) while neither side was in postcopy, so the guest runs on the source as it
 * always did. QEMU's destination does this whenever its incoming precopy fails ("load of
 * migration failed", exit 1); the operator starts a fresh one, and so does a lab (`vm` action).
 */
export function destinationExitIsHarmless(side: Side, info: { signal: string | null }, status: MigrationStatus, other: MigrationStatus): boolean {
  const postcopy = (s: MigrationStatus) => s.startsWith('postcopy');
  return side === 'destination' && info.signal === null && !postcopy(status) && !postcopy(other) && other !== 'completed' && status !== 'completed';
}

/** What the driver knows of a side when its VM process ends (src/driver/backend.ts RunDriver). */
export type VmDeathView = Pick<RunDriver, 'status' | 'process' | 'recoveryFile'>;

/**
 * A VM process's unexpected end, judged: a warning when the run can go on (a source that had
 * written its whole recovery file, a destination that exited as QEMU's does when its incoming
 * migration fails), else the failure that ends the run.
 */
export function vmDeathVerdict(side: Side, info: { code: number | null; signal: string | null; stderrTail: string[] }, driver: VmDeathView): { warning: string } | { failure: RunFailure } {
  // The driver's view is fresher than the last snapshot (it follows MIGRATION events).
  const status = driver.status(side);
  const other = driver.status(side === 'source' ? 'destination' : 'source');
  const meaning = vmDeathMeaning(side, status, other);
  const how = info.signal ? `killed by ${info.signal}` : `exit code ${info.code}`;
  // The last two different lines: QEMU repeats a line ("Detected IO failure for postcopy") per channel.
  const tail = info.stderrTail.filter((l, i, all) => all.indexOf(l, i + 1) === -1).slice(-2).join(' | ');
  const lastWords = tail ? ` Last words: ${tail}` : '';
  // A source that dies after writing its whole recovery file is what the file is for.
  const rf = side === 'source' && driver.process('source') === 'vm' ? driver.recoveryFile() : null;
  if (rf?.state === 'written' && status === 'postcopy-paused') {
    return {
      warning: `the source VM process died (${how}), but it had written its recovery file ${rf.file} (${rf.mode}): a recovery source can take its place ({ vm: source, do: recovery-source }).${lastWords}`,
    };
  }
  if (destinationExitIsHarmless(side, info, status, other)) {
    return {
      warning: `the destination VM process exited (${how}): QEMU's destination exits when its incoming migration fails. ${meaning} Start a fresh destination to try again.${lastWords}`,
    };
  }
  return { failure: new RunFailure(`the ${side} VM process died (${how}). ${meaning}${lastWords}`, 'vm-died') };
}

/**
 * The sentence for a source that switched to postcopy and paused while the destination failed
 * before it ever ran the guest: the device state was still loading.
 */
export const GUEST_LOST_BEFORE_DESTINATION_RAN =
  'The migration failed after the source switched to postcopy but before the destination started running the guest ' +
  '(source postcopy-paused, destination failed): the guest cannot be resumed on either side. The source has handed the ' +
  'guest over and only a destination could run it, but this destination failed while still loading the device state ' +
  'instead of pausing, so there is nothing to recover; so it is with QEMU 7.2 and 10.0. Newer QEMU (the postcopy-device ' +
  'source state, 2025) fails the migration at this point and resumes the guest on the source, since the destination never ran.';

/** The same split, when the destination had already run the guest. */
export const GUEST_LOST_AFTER_DESTINATION_RAN =
  'The destination failed during postcopy instead of pausing (source postcopy-paused, destination failed): the guest ran ' +
  'there and part of its memory existed only there, so it cannot be resumed on either side. The guest is lost.';

/** How a recovery source's error-desc begins when it refuses a resume it could never complete. */
export const RECOVERY_INCOMPLETE_PREFIX = 'recovery cannot be complete';

/**
 * Watches the snapshot stream for states from which neither side can run the guest again, so
 * the run ends at once with a sentence instead of waiting for a step's timeout. Stateful: it
 * remembers whether the destination ever ran the guest (was postcopy-active).
 */
export class GuestWatch {
  private destinationRan = false;

  /** Null while the guest can still run somewhere; else the failure that ends the run. */
  observe(s: Snapshot): RunFailure | null {
    if (s.destination.status === 'postcopy-active') this.destinationRan = true;
    // A recovery source that refused to resume: its file lacks pages the destination needs, and
    // the source that had them is gone, so no later step can bring them back.
    if (s.source.recoverySource && s.source.error?.startsWith(RECOVERY_INCOMPLETE_PREFIX)) {
      const rs = s.source.recoverySource;
      return new RunFailure(s.source.error, 'recovery-incomplete', {
        seen: { 'source.status': s.source.status, 'source.recoverySource.missing-pages': rs['missing-pages'], 'source.recoverySource.missing-first': rs['missing-first'] },
      });
    }
    if (s.source.status === 'postcopy-paused' && s.destination.status === 'failed') {
      return new RunFailure(this.destinationRan ? GUEST_LOST_AFTER_DESTINATION_RAN : GUEST_LOST_BEFORE_DESTINATION_RAN, 'guest-lost', {
        seen: { 'source.status': s.source.status, 'destination.status': s.destination.status },
      });
    }
    return null;
  }

  /** A fresh run (a rewind) starts with no history. */
  reset(): void {
    this.destinationRan = false;
  }
}
