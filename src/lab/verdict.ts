/**
 * A run's end, as its summary: the failure (or none) judged against the lab's declared outcome
 * and the destination's memory check, a failure the lab expects on this QEMU said as such, and
 * the counters from the last snapshot.
 */
import type { RunSummary, Snapshot } from '../types.js';
import { judgeOutcome, RunFailure } from './failure.js';
import { inRange } from './qemu-range.js';
import type { Lab } from './schema.js';
import { summaryCounters } from './summary.js';

export function runSummary(lab: Lab, failure: RunFailure | null, snap: Snapshot | null | undefined, qemuVersion: string, durationMs: number): RunSummary {
  const dp = snap?.destination.pages;
  const verified = dp?.verified === true;
  const judged = judgeOutcome(lab.outcome, failure, verified);
  failure = judged.failure;
  if (!failure && !verified && !judged.expected) {
    const why =
      dp?.verified === false
        ? `the destination's memory did not match the source's (pages ${dp.mismatches?.slice(0, 8).join(', ') ?? '?'} differ)`
        : snap?.destination.status === 'completed'
          ? "the migration completed, but the destination's memory could not be checked here (the warning above says why)"
          : `the migration did not complete, so the destination's memory was never verified (destination ${snap?.destination.status ?? 'unknown'})`;
    failure = new RunFailure(`verification: ${why}`, 'verification');
  }
  // A failure the lab declares for this version (a QEMU bug it shows) is still a failure; say it was expected.
  const known = lab.expectedFailures.filter((n) => inRange(n.range, qemuVersion)).map((n) => n.text.trim());
  if (failure && known.length) {
    failure = new RunFailure(`${failure.message.replace(/[.\s]*$/, '.')} This is the failure the lab expects on QEMU ${qemuVersion}: ${known.join('; ')}.`, failure.reason, failure.detail);
  }
  return {
    ok: failure === null,
    labId: lab.id,
    durationMs,
    verified,
    failure: failure?.toSummary(),
    ...summaryCounters(snap),
    ...(failure === null ? { summaryText: lab.summaryText } : {}),
    ...(judged.expected ? { expectedFailure: judged.expected } : {}),
    ...(failure && known.length ? { knownBug: `QEMU ${qemuVersion}: ${known.join('; ')}` } : {}),
  };
}
