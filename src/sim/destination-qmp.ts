/**
 * The destination's QMP surface: each migration command's preconditions and QEMU's error texts
 * for them, and the outgoing-side commands answered as QEMU answers them on a VM started with
 * -incoming. What a command does is the DestinationVm's business (destination.ts).
 */
import { QmpError } from '../qmp/error.js';
import type { QmpCommandDef } from '../qmp/server.js';
import type { DestinationVm } from './destination.js';
import { isPaused, isPostcopy } from './states.js';
import { parseTcpUri } from './vm.js';

export function destinationCommands(vm: DestinationVm): Record<string, QmpCommandDef> {
  return {
    'query-migrate': { handler: () => vm.queryMigrate() },
    'x-query-pages': { args: { 'map-cells': 'int?' }, handler: (a) => vm.queryPages(a['map-cells'] as number | undefined) },
    'migrate-incoming': {
      args: { uri: 'str?' },
      handler: async (a) => {
        if (a.uri === undefined) throw new QmpError('GenericError', vm.traits.commands.uriMissing);
        if (vm.incomingStarted) throw new QmpError('GenericError', 'The incoming migration has already been started');
        await vm.startIncoming(parseTcpUri(a.uri as string));
        return {};
      },
    },
    'migrate-recover': {
      args: { uri: 'str' },
      allowOob: true,
      handler: async (a) => {
        if (!isPaused(vm.status)) throw new QmpError('GenericError', 'Migrate recover can only be run when postcopy is paused.');
        // Again while listening: QEMU (7.2 and 10.0) drops the old listener for the new one.
        await vm.startRecovery(parseTcpUri(a.uri as string));
        return {};
      },
    },
    'migrate-pause': {
      allowOob: true,
      handler: () => {
        const c = vm.traits.commands;
        if (vm.status !== 'postcopy-active' && !(c.pauseWhileRecovering && vm.status === 'postcopy-recover')) {
          throw new QmpError('GenericError', c.pauseRefused);
        }
        vm.fail('migrate-pause: channel shut down by the operator');
        return {};
      },
    },
    migrate: {
      args: { uri: 'str?', resume: 'bool?' },
      handler: (a) => {
        if (a.uri === undefined) throw new QmpError('GenericError', vm.traits.commands.uriMissing);
        // QEMU checks for a paused outgoing migration first, and the destination never has one.
        if (a.resume === true) throw new QmpError('GenericError', 'Cannot resume if there is no paused migration');
        throw new QmpError('GenericError', 'Guest is waiting for an incoming migration');
      },
    },
    'migrate-start-postcopy': {
      handler: () => {
        if (!vm.cap('postcopy-ram')) throw new QmpError('GenericError', 'Enable postcopy with migrate_set_capability before the start of migration');
        // The destination has no outgoing migration to switch.
        throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
      },
    },
    migrate_cancel: {
      handler: () => {
        // Ours: end an incoming precopy migration that is stuck (a source that failed on a cut
        // the destination never heard of: an idle receiver sees no RST). QEMU would have you
        // kill the destination process and start a new one.
        if (vm.status === 'setup' || vm.status === 'active') vm.fail('incoming migration cancelled by migrate_cancel');
        else if (isPostcopy(vm.status)) {
          throw new QmpError('GenericError', 'Postcopy migration cannot be cancelled: the guest runs here and part of its memory is still on the source');
        }
        return {};
      },
    },
  };
}
