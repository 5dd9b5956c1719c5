/**
 * The sim VM process, started like QEMU: memory size, vCPUs, workload, a QMP unix socket, and
 * `--incoming defer` for the destination. One program, two roles.
 *
 *   node dist/src/sim/vm-main.js --name source --memory 1G --smp 2 --qmp /run/dir/source.qmp
 *   node dist/src/sim/vm-main.js --name destination --memory 1G --smp 2 --qmp /run/dir/dest.qmp --incoming defer
 *
 * `--emulate 7.2|10.0` makes the VM behave as that QEMU version (src/sim/versions.ts).
 * `--threads T` runs T guest threads per vCPU (default 1; src/sim/workload.ts): on the
 * destination a thread blocked on a missing page lets its vCPU run another.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startQmpServer } from '../qmp/server.js';
import { parseSize } from '../util/format.js';
import { DestinationVm } from './destination.js';
import { loopStatsFromEnv, task, taskStart } from './loop-stats.js';
import { SourceVm } from './source.js';
import { parseEmulatedVersion } from './versions.js';
import type { SimVm, VmOptions } from './vm.js';
import { MAX_THREADS_PER_VCPU, type WorkloadKind } from './workload.js';

function die(msg: string): never {
  process.stderr.write(`postcopy-lab sim: ${msg}\n`);
  process.exit(2);
}

function size(s: string, what: string): number {
  try {
    return parseSize(s);
  } catch (e) {
    return die(`${what}: ${(e as Error).message}`);
  }
}

function int(s: string | undefined, what: string, lo: number, hi: number, dflt: number): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isFinite(n) || n < lo || n > hi) die(`${what}: '${s}' must be a number from ${lo} to ${hi}`);
  return n;
}

export function parseVmArgs(argv: string[]): { opts: VmOptions; qmp: string; incoming: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string', default: 'vm' },
        memory: { type: 'string', short: 'm', default: '256M' },
        'page-size': { type: 'string', default: '4096' },
        smp: { type: 'string', default: '2' },
        workload: { type: 'string', default: 'random' },
        'read-rate': { type: 'string' },
        'dirty-rate': { type: 'string' },
        'hot-fraction': { type: 'string' },
        'hot-share': { type: 'string' },
        seed: { type: 'string' },
        qmp: { type: 'string' },
        incoming: { type: 'string' },
        emulate: { type: 'string' },
        'recovery-dir': { type: 'string' },
        threads: { type: 'string' },
      },
      strict: true,
    }));
  } catch (e) {
    die((e as Error).message);
  }
  if (!values.qmp) die('--qmp PATH is required (the QMP unix socket to create)');
  if (values.incoming !== undefined && values.incoming !== 'defer') die(`--incoming: only 'defer' is supported, got '${values.incoming}'`);
  const pageSize = int(values['page-size'], '--page-size', 512, 65536, 4096);
  if ((pageSize & (pageSize - 1)) !== 0) die(`--page-size: ${pageSize} is not a power of two`);
  const memoryBytes = size(values.memory!, '--memory');
  if (memoryBytes < pageSize) die(`--memory: ${values.memory} is smaller than one page`);
  if (memoryBytes / pageSize > 2 ** 31) die(`--memory: ${values.memory} is too many pages for the sim`);
  let emulate;
  try {
    emulate = values.emulate === undefined ? undefined : parseEmulatedVersion(values.emulate);
  } catch (e) {
    die(`--emulate: ${(e as Error).message}`);
  }
  const threads = int(values.threads, '--threads', 1, MAX_THREADS_PER_VCPU, 1);
  if (!Number.isInteger(threads)) die(`--threads: '${values.threads}' must be a whole number of guest threads per vCPU, from 1 to ${MAX_THREADS_PER_VCPU}`);
  const kind = values.workload as WorkloadKind;
  if (!['sequential', 'random', 'hotset'].includes(kind)) die(`--workload: '${kind}' (expected sequential, random or hotset)`);
  return {
    qmp: values.qmp,
    incoming: values.incoming === 'defer',
    opts: {
      name: values.name!,
      memoryBytes,
      pageSize,
      ...(emulate ? { emulate } : {}),
      // The recovery file goes beside the QMP socket (the run's runtime directory) unless told.
      recoveryDir: values['recovery-dir'] ?? path.dirname(values.qmp),
      workload: {
        kind,
        vcpus: int(values.smp, '--smp', 1, 64, 2),
        readRate: int(values['read-rate'], '--read-rate', 0, 1e7, 10000),
        dirtyRate: int(values['dirty-rate'], '--dirty-rate', 0, 1e7, 1000),
        hotFraction: int(values['hot-fraction'], '--hot-fraction', 0, 1, 0.1),
        hotShare: int(values['hot-share'], '--hot-share', 0, 1, 0.9),
        seed: int(values.seed, '--seed', 0, 2 ** 32 - 1, 1),
        threadsPerVcpu: threads,
      },
    },
  };
}

async function main(): Promise<void> {
  const { opts, qmp, incoming } = parseVmArgs(process.argv.slice(2));
  const vm: SimVm = incoming ? new DestinationVm(opts) : new SourceVm(opts);
  vm.log = (m) => process.stderr.write(`[${opts.name}] ${m}\n`);
  let server: Awaited<ReturnType<typeof startQmpServer>>;
  try {
    const commands = vm.commands();
    if (process.env.POSTCOPY_LAB_LOOP_STATS) {
      // Each command's own time, named, among what delays the loop (src/sim/loop-stats.ts).
      for (const [name, def] of Object.entries(commands)) {
        const h = def.handler.bind(def);
        def.handler = (args) => {
          const t0 = taskStart();
          try {
            return h(args);
          } finally {
            task(`qmp:${name}`, t0);
          }
        };
      }
    }
    server = await startQmpServer({ path: qmp, commands, version: vm.traits.version, package: 'postcopy-lab-sim' });
  } catch (e) {
    die(`cannot create the QMP socket ${qmp}: ${(e as Error).message}`);
  }
  vm.emit = (event, data) => server.emit(event, data);
  const loopStats = loopStatsFromEnv(opts.name);
  if (loopStats) {
    // Postcopy is where a fault's latency is made: measure from its start to the migration's end.
    vm.onStatus = (to) => {
      if (to === 'postcopy-active') loopStats.start();
      else if (to === 'completed' || to === 'postcopy-paused' || to === 'failed') loopStats.stop();
    };
  }
  let exiting = false;
  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    vm.shutdown();
    void server.close().finally(() => process.exit(code));
    setTimeout(() => process.exit(code), 1000).unref();
  };
  vm.onCrash = (signal, why) => {
    process.stderr.write(`[${opts.name}] emulating QEMU ${vm.emulate}: ${why}; the process dies by ${signal}, as that QEMU does\n`);
    // Not a clean exit: the orchestrator must see what a user of that QEMU sees.
    process.kill(process.pid, signal);
  };
  vm.onQuit = () => {
    server.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
    exit(0);
  };
  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
  // The orchestrator holds our stdin: when it goes away, so do we (no orphans).
  process.stdin.on('end', () => exit(0));
  process.stdin.on('error', () => exit(0));
  process.stdin.resume();
  if (vm instanceof SourceVm) vm.start();
  vm.log(`ready: ${vm.pageCount} pages of ${vm.pageSize} bytes, ${opts.workload.vcpus} vCPUs${(opts.workload.threadsPerVcpu ?? 1) > 1 ? ` of ${opts.workload.threadsPerVcpu} threads` : ''}, ${incoming ? 'incoming defer' : 'running'}`);
}

main().catch((e) => die(String((e as Error)?.stack ?? e)));
