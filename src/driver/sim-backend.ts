/**
 * The sim backend: each side is our Node VM (src/sim/vm-main.ts). It reports its pages itself
 * (`x-query-pages`) and verifies every page at completion, so this backend only builds argv
 * and reads.
 */
import { builtEntry } from '../entry-path.js';
import type { QmpClient } from '../qmp/client.js';
import type { MigrationStatus, PagesInfo, RamStats, RecoveryFileInfo, RecoverySourceInfo, RunState, Side } from '../types.js';
import { DEFAULT_EMULATED_VERSION, traitsOf, type EmulatedVersion } from '../sim/versions.js';
import type { GuestAccounting } from '../sim/workload.js';
import type { BackendContext, GuestWork, SideReading, VmBackend } from './backend.js';

export const VM_MAIN = builtEntry('../sim/vm-main.js', import.meta.url);
/** The CLI, whose `recovery-source` command is a process started like a VM. */
const CLI_MAIN = builtEntry('../cli.js', import.meta.url);

export class SimBackend implements VmBackend {
  readonly kind = 'sim' as const;
  readonly readyTimeoutMs = 10_000;
  readonly qemuVersion: EmulatedVersion;

  constructor(emulate: EmulatedVersion = DEFAULT_EMULATED_VERSION) {
    this.qemuVersion = emulate;
  }

  async prepare(): Promise<void> {}

  command(side: Side, ctx: BackendContext): { file: string; args: string[] } {
    const g = ctx.guest;
    const args = [
      VM_MAIN,
      '--name', side,
      '--memory', String(g.memoryBytes),
      '--page-size', String(g.pageSize),
      '--smp', String(g.vcpus),
      '--workload', g.workload,
      '--read-rate', String(g.readRate),
      '--dirty-rate', String(g.dirtyRate),
      '--seed', String(g.seed),
      '--qmp', ctx.qmpPath(side),
      '--emulate', this.qemuVersion,
    ];
    if (g.threadsPerVcpu !== undefined && g.threadsPerVcpu !== 1) args.push('--threads', String(g.threadsPerVcpu));
    if (g.hotset) args.push('--hot-fraction', String(g.hotset.fraction), '--hot-share', String(g.hotset.share));
    if (side === 'destination') args.push('--incoming', 'defer');
    return { file: process.execPath, args };
  }

  /** `postcopy-lab recovery-source FILE --qmp SOCK --expect-digest HEX`, on the source's QMP path. */
  recoverySourceCommand(file: string, digest: string, ctx: BackendContext): { file: string; args: string[] } {
    return { file: process.execPath, args: [CLI_MAIN, 'recovery-source', file, '--qmp', ctx.qmpPath('source'), '--expect-digest', digest, '--name', 'recovery-source'] };
  }

  /** The destination's migrate-incoming was accepted: it listens, whatever 7.2 reports. */
  private incomingListening = false;

  /**
   * As the QEMU backend does for a real 7.2: an emulated 7.2 destination reports no status
   * until the source connects, so an accepted migrate-incoming is read as `setup`, with the
   * same note, and a lab shows the same sequence on both.
   */
  attach(side: Side, client: QmpClient, ctx: BackendContext): void {
    if (side !== 'destination' || traitsOf(this.qemuVersion).incomingSetupReported) return;
    const run = client.execute.bind(client);
    client.execute = (<T>(command: string, args?: Record<string, unknown>, o?: { timeoutMs?: number }) => {
      const p = run<T>(command, args, o);
      if (command === 'migrate-incoming') {
        p.then(
          () => {
            if (this.incomingListening) return;
            this.incomingListening = true;
            ctx.onEvent({
              kind: 'info',
              side,
              text: "x-note: QEMU before 8.1 reports the destination's status as 'none' until the source connects; newer QEMU (and the sim) say 'setup' as soon as migrate-incoming listens, so the lab shows 'setup' from here",
            });
          },
          () => {},
        );
      }
      return p;
    }) as QmpClient['execute'];
  }

  noteStatus(): void {}

  async read(side: Side, q: QmpClient, opts: { mapCells: number }): Promise<SideReading> {
    const [st, mig, pages] = await Promise.all([
      q.execute<{ status: RunState }>('query-status', undefined, { timeoutMs: 5000 }),
      q.execute<{
        status?: MigrationStatus;
        ram?: Partial<RamStats>;
        'error-desc'?: string;
        'cpu-throttle-percentage'?: number;
        'x-recovery-file'?: RecoveryFileInfo;
        'x-recovery-source'?: RecoverySourceInfo;
      }>('query-migrate', undefined, { timeoutMs: 5000 }),
      q.execute<PagesInfo>('x-query-pages', { 'map-cells': opts.mapCells }, { timeoutMs: 5000 }),
    ]);
    // "Stalled" means the wire is quiet, not that page counts are flat: in precopy the
    // destination's `received` stops growing after one pass while dirty pages still arrive.
    let status = mig.status ?? 'none';
    if (side === 'destination' && status === 'none' && this.incomingListening) status = 'setup';
    const r: SideReading = { runState: st.status, status, ram: mig.ram, pages, error: mig['error-desc'], throttle: mig['cpu-throttle-percentage'] ?? 0, progress: pages['wire-bytes'] };
    if (mig['x-recovery-file']) r.recoveryFile = mig['x-recovery-file'];
    if (mig['x-recovery-source']) r.recoverySource = mig['x-recovery-source'];
    return r;
  }

  async readGuest(_side: Side, q: QmpClient): Promise<GuestWork> {
    const g = await q.execute<GuestAccounting>('x-query-guest', undefined, { timeoutMs: 5000 });
    return {
      ops: g.ops,
      opsPerSecond: g['ops-per-second'],
      nominalOpsPerSecond: g['nominal-ops-per-second'],
      runningMs: g['running-ms'],
      throttlePercentage: g['throttle-percentage'],
      worstStallMs: Math.max(0, ...g.vcpus.map((v) => v['longest-stall-ms'])),
    };
  }

  combine(): void {}

  async verify(): Promise<void> {}

  /**
   * The sim logs each of its status changes to stderr; the orchestrator already logs each one
   * once as a state event (from MIGRATION events and query-migrate), so showing the stderr line
   * too put every state change twice in the event log.
   */
  quietStderr(line: string): boolean {
    return /^(\[(source|destination|recovery-source)\] )?migration status: /.test(line);
  }
}
