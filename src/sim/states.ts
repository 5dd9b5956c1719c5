/**
 * The migration state machine, one table per side and emulated QEMU version, checkable against
 * QEMU's migration/migration.c (migrate_set_state callers) and qapi/migration.json at that
 * version. Every transition the sim makes goes through `checkTransition()` with the VM's
 * version, which refuses any move not listed here: a state the sim reaches is a state that
 * QEMU version can reach.
 */
import type { MigrationStatus, Side } from '../types.js';
import type { EmulatedVersion } from './versions.js';

type Table = Readonly<Partial<Record<MigrationStatus, readonly MigrationStatus[]>>>;

/** What every version's source shares; the versions differ at switchover and at resume. */
const SOURCE_COMMON: Table = {
  // A new migration may start from any finished state.
  none: ['setup'],
  completed: ['setup'],
  failed: ['setup'],
  cancelled: ['setup'],
  setup: ['active', 'failed', 'cancelling'],
  cancelling: ['cancelled', 'failed'],
  // An I/O error, a stall, or migrate-pause during postcopy: keep everything, wait for recovery.
  'postcopy-active': ['postcopy-paused', 'completed', 'failed'],
  // The resume handshake (recv bitmap, resume ack). A failure goes back to paused, never to failed.
  'postcopy-recover': ['postcopy-active', 'postcopy-paused'],
};

/** Source (outgoing) side, per version. */
export const SOURCE_TRANSITIONS: Readonly<Record<EmulatedVersion, Table>> = {
  '7.2': {
    ...SOURCE_COMMON,
    // Switchover straight from active (migration_completion, postcopy_start).
    active: ['postcopy-active', 'completed', 'failed', 'cancelling'],
    // migrate resume=true: no state of its own while connecting; postcopy-recover once connected.
    'postcopy-paused': ['postcopy-recover'],
  },
  '10.0': {
    ...SOURCE_COMMON,
    // Since 10.0 every switchover passes through device (guest stopped, device state sent).
    active: ['device', 'failed', 'cancelling'],
    device: ['postcopy-active', 'completed', 'failed', 'cancelling'],
    // migrate resume=true: postcopy-recover-setup while connecting (since 9.1).
    'postcopy-paused': ['postcopy-recover-setup'],
    'postcopy-recover-setup': ['postcopy-recover', 'postcopy-paused'],
  },
};

/** Destination (incoming) side: the same in every emulated version. */
export const DESTINATION_TRANSITIONS: Table = {
  none: ['setup'],
  // Ours: QEMU's destination process exits after a failed incoming migration; the sim's may
  // take a fresh migrate-incoming instead (see DestinationVm.resetIncoming).
  failed: ['setup'],
  setup: ['active', 'failed'],
  active: ['postcopy-active', 'completed', 'failed'],
  'postcopy-active': ['postcopy-paused', 'completed', 'failed'],
  // migrate-recover: a new listening channel; the old state is kept.
  'postcopy-paused': ['postcopy-recover'],
  'postcopy-recover': ['postcopy-active', 'postcopy-paused'],
};

export function allowedTransitions(side: Side, v: EmulatedVersion): Table {
  return side === 'source' ? SOURCE_TRANSITIONS[v] : DESTINATION_TRANSITIONS;
}

export function canTransition(side: Side, v: EmulatedVersion, from: MigrationStatus, to: MigrationStatus): boolean {
  return allowedTransitions(side, v)[from]?.includes(to) ?? false;
}

export class IllegalTransition extends Error {
  override name = 'IllegalTransition';
}

/** Throws if `from -> to` is not a transition QEMU `v` makes on this side. */
export function checkTransition(side: Side, v: EmulatedVersion, from: MigrationStatus, to: MigrationStatus): void {
  if (!canTransition(side, v, from, to)) throw new IllegalTransition(`${side}: ${from} -> ${to} is not a migration state transition of QEMU ${v}`);
}

// ---- named questions about a state (QEMU: migration_in_postcopy() and friends) --------------
// Ask these instead of testing strings inline, so the vocabulary lives in one place.

/** In any postcopy state: the guest runs (or is paused) on the destination. */
export function isPostcopy(s: MigrationStatus | string): boolean {
  return s.startsWith('postcopy-');
}

/** Paused after a failure or migrate-pause, waiting for the operator to recover. */
export function isPaused(s: MigrationStatus | string): boolean {
  return s === 'postcopy-paused';
}

/** A recovery is under way (connecting, or exchanging the bitmap and resume handshake). */
export function isRecovering(s: MigrationStatus | string): boolean {
  return s === 'postcopy-recover-setup' || s === 'postcopy-recover';
}

/** Pages are moving: precopy or postcopy proper (not paused, not recovering). */
export function isMigrating(s: MigrationStatus | string): boolean {
  return s === 'active' || s === 'postcopy-active';
}

/** A migration exists and has not ended (QEMU: migration_is_running()): no new one may start. */
export function isInProgress(s: MigrationStatus | string): boolean {
  return s !== 'none' && !isFinished(s);
}

/** The migration ended; a new one may start. */
export function isFinished(s: MigrationStatus | string): boolean {
  return s === 'completed' || s === 'failed' || s === 'cancelled';
}
