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
      // `uri` optional in the schema, as QEMU's (9.0+ also takes `channels`): the text is the version's.
      args: { uri: 'str?', resume: 'bool?', detach: 'bool?', blk: 'bool?', inc: 'bool?' },
      handler: (a) => {
        if (a.uri === undefined) throw new QmpError('GenericError', vm.traits.commands.uriMissing);
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
        if (vm.status === 'none') throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
        // QEMU only raises a flag the migration reads while in precopy: a second call, or one
        // after the migration ended, is accepted and changes nothing.
        if (vm.status === 'active' || vm.status === 'setup') vm.requestPostcopy();
        return {};
      },
    },
    'migrate-pause': {
      allowOob: true,
      handler: () => {
        // 8.2+ also while a recovery is under way, including while the new channel is still
        // connecting (a SYN into a blackhole); 7.2 cannot get out of a stuck recovery at all.
        const c = vm.traits.commands;
        if (vm.status !== 'postcopy-active' && !(c.pauseWhileRecovering && isRecovering(vm.status))) {
          throw new QmpError('GenericError', c.pauseRefused);
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
        // The guest already runs on the destination: use migrate-pause, then recover.
        if (isPostcopy(vm.status)) throw new QmpError('GenericError', vm.traits.commands.postcopyCancelRefused);
        if (vm.status === 'setup' || vm.status === 'active') vm.cancel();
        return {};
      },
    },
  };
}
