/**
 * Which MIGRATION events are state changes. `query-migrate` is the truth about a side's state;
 * an event is only news of a change, and QEMU sends one event that changes nothing: before 8.1,
 * `qemu_start_incoming_migration()` calls `qapi_event_send_migration(MIGRATION_STATUS_SETUP)`
 * whenever it starts listening — for migrate-incoming and again for migrate-recover — without
 * touching the incoming state. After migrate-recover, QEMU 7.2's destination stays
 * postcopy-paused (query-migrate and its trace agree) until the source connects and it goes to
 * postcopy-recover. Logging that event as `postcopy-paused -> setup -> postcopy-recover` would
 * show a state the VM never was in.
 *
 * The rule, from QEMU's state machine (migration/migration.c): `setup` is entered only when a
 * new migration starts, that is from `none` or a finished one (completed, failed, cancelled).
 * A `setup` event in any other state is an event, not a transition.
 */
import type { MigrationStatus, Side } from '../types.js';

/** States from which a new migration may start (and so enter `setup`). */
const NOT_MIGRATING: readonly MigrationStatus[] = ['none', 'completed', 'failed', 'cancelled'];

/**
 * Null when a MIGRATION event reporting `reported` is a state change for a side whose known
 * status is `current`; otherwise the event-log line that says what it was instead.
 */
export function notAStateChange(side: Side, current: MigrationStatus, reported: MigrationStatus): string | null {
  if (reported !== 'setup' || NOT_MIGRATING.includes(current)) return null;
  return (
    `MIGRATION event: setup (not a state change: ${side} stays ${current}, as query-migrate says; ` +
    `QEMU before 8.1 sends it whenever migrate-incoming or migrate-recover starts listening)`
  );
}
