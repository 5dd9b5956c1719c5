/**
 * The source's QMP surface: each migration command's preconditions and QEMU's error texts for
 * them, and the incoming-side commands answered as QEMU answers them on a VM started without
 * -incoming. What a command does is the SourceVm's business (source.ts).
 */
import { QmpError } from '../qmp/error.js';
import type { QmpCommandDef } from '../qmp/server.js';
import type { SourceVm } from './source.js';
import { isInProgress, isPostcopy, isRecovering } from './states.js';
import { parseTcpUri } from './vm.js';

export function sourceCommands(vm: SourceVm): Record<string, QmpCommandDef> {
  return {
    'query-migrate': { handler: () => vm.queryMigrate() },
    'x-query-pages': { args: { 'map-cells': 'int?' }, handler: (a) => vm.queryPages(a['map-cells'] as number | undefined) },
    migrate: {
      args: { uri: 'str', resume: 'bool?', detach: 'bool?', blk: 'bool?', inc: 'bool?' },
      handler: (a) => {
        const addr = parseTcpUri(a.uri as string);
        if (a.resume === true) {
          if (vm.status !== 'postcopy-paused') throw new QmpError('GenericError', 'Cannot resume if there is no paused migration');
          vm.resume(addr);
          return {};
        }
        if (isInProgress(vm.status)) throw new QmpError('GenericError', "There's a migration process in progress");
        if (vm.runState !== 'running' && vm.runState !== 'paused') {
          throw new QmpError('GenericError', `Cannot migrate a guest in state '${vm.runState}'`);
        }
        vm.startMigration(addr);
        return {};
      },
    },
    'migrate-start-postcopy': {
      handler: () => {
        if (!vm.cap('postcopy-ram')) {
          throw new QmpError('GenericError', 'Enable postcopy with migrate_set_capability before the start of migration');
        }
        if (vm.status !== 'active' && vm.status !== 'setup') {
          throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
        }
        vm.requestPostcopy();
        return {};
      },
    },
    'migrate-pause': {
      allowOob: true,
      handler: () => {
        // Also while the new channel is still connecting (a SYN into a blackhole): QEMU 7.2 has
        // no postcopy-recover-setup state and could not get out of a stuck connect at all.
        if (vm.status !== 'postcopy-active' && !isRecovering(vm.status)) {
          throw new QmpError('GenericError', 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
        }
        vm.fail('migrate-pause: channel shut down by the operator');
        return {};
      },
    },
    'migrate-incoming': {
      args: { uri: 'str' },
      handler: () => {
        throw new QmpError('GenericError', "'-incoming' was not specified on the command line");
      },
    },
    'migrate-recover': {
      args: { uri: 'str' },
      allowOob: true,
      handler: () => {
        throw new QmpError('GenericError', 'Migrate recover can only be run when postcopy is paused.');
      },
    },
    migrate_cancel: {
      handler: () => {
        if (isPostcopy(vm.status)) {
          throw new QmpError(
            'GenericError',
            'Postcopy migration cannot be cancelled: the guest already runs on the destination (use migrate-pause, then recover)',
          );
        }
        if (vm.status === 'setup' || vm.status === 'active') vm.cancel();
        return {};
      },
    },
  };
}
