/**
 * The migration state machine, table-driven, per emulated QEMU version. Three sources of truth
 * are compared:
 *  - the sim's tables (src/sim/states.ts),
 *  - the transitions QEMU's migration/migration.c makes (migrate_set_state callers, written
 *    out independently below, and seen on QEMU 7.2.22 and 10.0.2 on the lab machine), which
 *    the tables must contain,
 *  - transitions QEMU never makes, which the tables must refuse.
 * Every pair of states not in a table is refused with IllegalTransition.
 */
import { describe, expect, it } from 'vitest';
import { MIGRATION_STATES, type MigrationStatus, type Side } from '../../../src/types.js';
import { EMULATED_VERSIONS, type EmulatedVersion } from '../../../src/sim/versions.js';
import {
  allowedTransitions as allowedTransitionsIn,
  canTransition as canTransitionIn,
  checkTransition as checkTransitionIn,
  DESTINATION_TRANSITIONS,
  IllegalTransition,
  isFinished,
  isPostcopy,
  SOURCE_TRANSITIONS,
} from '../../../src/sim/states.js';

type T = [MigrationStatus, MigrationStatus];

/** Source side, as migration.c moves s->state (function named for each), in every version. */
const QEMU_SOURCE_COMMON: Array<[...T, string]> = [
  ['none', 'setup', 'migrate_init / qmp_migrate'],
  ['setup', 'active', 'migration_thread'],
  ['setup', 'failed', 'migrate_fd_connect error'],
  ['setup', 'cancelling', 'migrate_fd_cancel'],
  ['active', 'cancelling', 'migrate_fd_cancel'],
  ['cancelling', 'cancelled', 'migrate_fd_cleanup'],
  ['active', 'failed', 'migration_iteration_finish on error'],
  ['postcopy-active', 'completed', 'migration_completion (postcopy)'],
  ['postcopy-active', 'failed', 'migration_completion_postcopy error'],
  ['postcopy-active', 'postcopy-paused', 'postcopy_pause'],
  ['postcopy-recover', 'postcopy-active', 'postcopy_do_resume / resume ack'],
  ['postcopy-recover', 'postcopy-paused', 'postcopy_pause (failure during recovery)'],
];

/** What differs by version on the source. */
const QEMU_SOURCE: Record<EmulatedVersion, Array<[...T, string]>> = {
  '7.2': [
    ...QEMU_SOURCE_COMMON,
    ['active', 'postcopy-active', 'postcopy_start (seen: active -> postcopy-active, then STOP)'],
    ['active', 'completed', 'migration_completion (seen: no device state)'],
    ['postcopy-paused', 'postcopy-recover', 'migrate_fd_connect (resume); seen: no recover-setup before 9.1'],
  ],
  '10.0': [
    ...QEMU_SOURCE_COMMON,
    ['active', 'device', 'migration_switchover_start ("Always set DEVICE state", 10.0), precopy and postcopy'],
    ['device', 'postcopy-active', 'postcopy_start'],
    ['device', 'completed', 'migration_completion'],
    ['device', 'failed', 'migration_completion error'],
    ['device', 'cancelling', 'migrate_fd_cancel'],
    ['postcopy-paused', 'postcopy-recover-setup', 'qmp_migrate resume=true (9.1+)'],
    ['postcopy-recover-setup', 'postcopy-recover', 'migrate_fd_connect (resume)'],
    ['postcopy-recover-setup', 'postcopy-paused', 'migrate_fd_error during resume connect'],
  ],
};

/** Transitions a version never makes on the source, though another version does. */
const FORBIDDEN_SOURCE: Record<EmulatedVersion, Array<[...T, string]>> = {
  '7.2': [
    ['postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover-setup is 9.1+'],
    ['active', 'device', 'device only with pause-before-switchover before 10.0 (the sim does not model it)'],
  ],
  '10.0': [
    ['postcopy-paused', 'postcopy-recover', 'the source passes through postcopy-recover-setup (9.1+)'],
    ['active', 'postcopy-active', 'postcopy_start passes through device (10.0+)'],
    ['active', 'completed', 'migration_completion passes through device (10.0+)'],
    ['postcopy-recover-setup', 'postcopy-active', 'the handshake (postcopy-recover) comes first'],
    ['postcopy-recover-setup', 'failed', 'a failed reconnect goes back to postcopy-paused'],
  ],
};

/** Destination side, as migration.c / savevm.c move mis->state. */
const QEMU_DESTINATION: Array<[...T, string]> = [
  ['none', 'setup', 'qemu_start_incoming_migration'],
  ['setup', 'active', 'process_incoming_migration_co'],
  ['setup', 'failed', 'incoming channel error'],
  ['active', 'postcopy-active', 'loadvm_postcopy_handle_listen'],
  ['active', 'completed', 'process_incoming_migration_co'],
  ['active', 'failed', 'process_incoming_migration_co error'],
  ['postcopy-active', 'completed', 'postcopy_ram_listen_thread'],
  ['postcopy-active', 'failed', 'postcopy_ram_listen_thread error'],
  ['postcopy-active', 'postcopy-paused', 'postcopy_pause_incoming'],
  ['postcopy-paused', 'postcopy-recover', 'migration_incoming_process (resume channel)'],
  ['postcopy-recover', 'postcopy-active', 'loadvm_postcopy_handle_resume'],
  ['postcopy-recover', 'postcopy-paused', 'postcopy_pause_incoming during recovery'],
];

/** Transitions QEMU never makes (on the side named, or on both). */
const FORBIDDEN: Array<[Side | 'both', ...T, string]> = [
  ['both', 'completed', 'postcopy-active', 'a finished migration does not go back to postcopy'],
  ['both', 'completed', 'active', 'a finished migration does not go back to precopy'],
  ['both', 'completed', 'failed', 'completed is final'],
  ['both', 'postcopy-paused', 'postcopy-active', 'resuming always passes through postcopy-recover'],
  ['both', 'postcopy-paused', 'completed', 'a paused migration cannot complete without resuming'],
  ['both', 'postcopy-paused', 'failed', 'a failure during postcopy pauses, it never fails the migration'],
  ['both', 'postcopy-paused', 'cancelled', 'postcopy cannot be cancelled'],
  ['both', 'failed', 'postcopy-paused', 'a failed migration has nothing to pause'],
  ['both', 'failed', 'active', 'a failed migration does not resume'],
  ['both', 'none', 'active', 'setup comes first'],
  ['both', 'none', 'postcopy-active', 'setup and precopy come first'],
  ['both', 'none', 'completed', 'nothing to complete'],
  ['both', 'setup', 'postcopy-active', 'postcopy starts from an active precopy'],
  ['both', 'setup', 'completed', 'nothing was sent yet'],
  ['both', 'active', 'postcopy-paused', 'a failure in precopy fails the migration, the source keeps the guest'],
  ['both', 'active', 'postcopy-recover', 'nothing to recover in precopy'],
  ['both', 'postcopy-active', 'active', 'the switchover is one-way'],
  ['both', 'postcopy-active', 'setup', 'the switchover is one-way'],
  ['both', 'postcopy-recover', 'completed', 'the handshake ends in postcopy-active first'],
  ['both', 'postcopy-recover', 'failed', 'a failed recovery goes back to postcopy-paused'],
  ['both', 'postcopy-active', 'postcopy-recover', 'recovery starts from postcopy-paused'],
  ['both', 'cancelled', 'active', 'cancelled is final for this migration'],
  ['destination', 'active', 'device', 'device is a source-only state'],
  ['destination', 'postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover-setup is a source-only state'],
  ['destination', 'active', 'cancelling', 'the destination has no cancelling state'],
  ['destination', 'setup', 'cancelling', 'the destination has no cancelling state'],
];

const SIDES: Side[] = ['source', 'destination'];

function tableEntriesIn(side: Side, v: EmulatedVersion): T[] {
  const out: T[] = [];
  for (const [from, tos] of Object.entries(allowedTransitionsIn(side, v))) for (const to of tos ?? []) out.push([from as MigrationStatus, to]);
  return out;
}

describe.each(EMULATED_VERSIONS)('migration state tables of QEMU %s', (v) => {
  const canTransition = (side: Side, from: MigrationStatus, to: MigrationStatus) => canTransitionIn(side, v, from, to);
  const checkTransition = (side: Side, from: MigrationStatus, to: MigrationStatus) => checkTransitionIn(side, v, from, to);
  const allowedTransitions = (side: Side) => allowedTransitionsIn(side, v);
  const tableEntries = (side: Side) => tableEntriesIn(side, v);
  for (const side of SIDES) {
    describe(side, () => {
      it.each(tableEntries(side))(`allows %s -> %s (as listed in its table)`, (from, to) => {
        expect(canTransition(side, from, to)).toBe(true);
        expect(() => checkTransition(side, from, to)).not.toThrow();
      });

      const qemu = side === 'source' ? QEMU_SOURCE[v] : QEMU_DESTINATION;
      it.each(qemu)(`allows QEMU's %s -> %s (%s)`, (from, to) => {
        expect(canTransition(side, from, to)).toBe(true);
      });

      const forbidden = [
        ...FORBIDDEN.filter(([s]) => s === 'both' || s === side).map(([, from, to, why]) => [from, to, why] as const),
        ...(side === 'source' ? FORBIDDEN_SOURCE[v] : []),
      ];
      it.each(forbidden)(`refuses %s -> %s (%s)`, (from, to) => {
        expect(canTransition(side, from, to)).toBe(false);
        expect(() => checkTransition(side, from, to)).toThrow(IllegalTransition);
      });

      it('refuses every pair of states its table does not list, naming side and states', () => {
        const allowed = new Set(tableEntries(side).map(([f, t]) => `${f}>${t}`));
        let refused = 0;
        for (const from of MIGRATION_STATES) {
          for (const to of MIGRATION_STATES) {
            if (allowed.has(`${from}>${to}`)) continue;
            refused++;
            expect(canTransition(side, from, to)).toBe(false);
            expect(() => checkTransition(side, from, to)).toThrow(`${side}: ${from} -> ${to} is not a migration state transition of QEMU ${v}`);
          }
        }
        expect(refused).toBeGreaterThan(MIGRATION_STATES.length * MIGRATION_STATES.length - 30);
      });

      it('lists only known states, no self-loops, and nothing beyond what QEMU does except new migrations', () => {
        const qemuSet = new Set(qemu.map(([f, t]) => `${f}>${t}`));
        for (const [from, to] of tableEntries(side)) {
          expect(MIGRATION_STATES).toContain(from);
          expect(MIGRATION_STATES).toContain(to);
          expect(from).not.toBe(to);
          if (qemuSet.has(`${from}>${to}`)) continue;
          // The sim's documented additions: a fresh migration straight from a finished state
          // (QEMU resets to none first), and the source's cancelling -> failed.
          const extra =
            (to === 'setup' && isFinished(from)) || (side === 'source' && from === 'cancelling' && to === 'failed');
          expect(extra, `${side}: ${from} -> ${to} is neither QEMU's nor a documented sim addition`).toBe(true);
        }
      });

      it('recovery can never end the migration: from the paused states only recovery or pause is reachable until postcopy-active', () => {
        const recovering: MigrationStatus[] = ['postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover'];
        for (const from of recovering) {
          for (const to of allowedTransitions(side)[from] ?? []) {
            expect([...recovering, 'postcopy-active']).toContain(to);
          }
        }
      });

      it('completed is reachable from none, through postcopy and back from a pause', () => {
        const table = allowedTransitions(side);
        const reach = (start: MigrationStatus, avoid: MigrationStatus[] = []): Set<MigrationStatus> => {
          const seen = new Set<MigrationStatus>([start]);
          const todo = [start];
          while (todo.length) {
            for (const n of table[todo.pop()!] ?? []) {
              if (!seen.has(n) && !avoid.includes(n)) {
                seen.add(n);
                todo.push(n);
              }
            }
          }
          return seen;
        };
        expect(reach('none').has('completed')).toBe(true);
        expect(reach('postcopy-paused').has('completed')).toBe(true);
        // Without the recovery states, a paused migration is stuck: recovery is the only way out.
        expect(reach('postcopy-paused', ['postcopy-recover', 'postcopy-recover-setup']).has('completed')).toBe(false);
      });
    });
  }

  it('the destination has no source-only states; the tables are the exported ones', () => {
    expect(allowedTransitions('source')).toBe(SOURCE_TRANSITIONS[v]);
    expect(allowedTransitions('destination')).toBe(DESTINATION_TRANSITIONS);
    const destStates = new Set(tableEntries('destination').flat());
    expect(destStates.has('postcopy-recover-setup')).toBe(false);
    expect(destStates.has('device')).toBe(false);
    expect(destStates.has('cancelling')).toBe(false);
  });

  it("uses the version's states only: device and postcopy-recover-setup exactly where the version has them", () => {
    const srcStates = new Set(tableEntries('source').flat());
    expect(srcStates.has('device')).toBe(v === '10.0');
    expect(srcStates.has('postcopy-recover-setup')).toBe(v === '10.0');
  });
});

it('isPostcopy and isFinished', () => {
  expect(MIGRATION_STATES.filter(isPostcopy)).toEqual(['postcopy-active', 'postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover']);
  expect(MIGRATION_STATES.filter(isFinished)).toEqual(['completed', 'failed', 'cancelled']);
});
