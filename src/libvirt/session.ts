/**
 * One libvirt run: the kernel link's namespaces, the two-daemon pair in them, the generated
 * guest defined and started on the source daemon, and the operations a lab performs, all
 * through virsh (argument arrays). What `--backend libvirt` is built on; it owns every process
 * it starts and removes everything on stop(), and a killed run is cleaned up by
 * `postcopy-lab cleanup` (cleanup.ts).
 *
 *   - states: `virsh domstate --reason` on either side;
 *   - counters: `virsh domjobinfo` on the source (the destination's monitor is locked during
 *     its incoming job, so it cannot be asked there);
 *   - commands: a CommandPlan (commands.ts); a long one (`virsh migrate`, which blocks until
 *     the migration ends or fails) runs in the background and is awaited or killed at stop;
 *   - verification: the destination paused and dumped through the extra QMP socket, the dump
 *     checked by the project's consistency check.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ResultPromise } from 'execa';
import type { LinkEndpoints, Side } from '../types.js';
import { KernelLink } from '../kernel/kernel-link.js';
import { writeGuestImage, RAM_HEADROOM_MIB, type GuestLayout } from '../qemu/guest-image.js';
import { waitForPasses } from '../qemu/guest-probe.js';
import { checkConsistencyFile, type ConsistencyResult } from '../qemu/consistency.js';
import { QmpClient } from '../qmp/client.js';
import type { CommandPlan } from './commands.js';
import { buildDomainXml } from './domain-xml.js';
import { checkUnpackedQemu } from './emulator.js';
import { LibvirtPair, VirshError } from './pair.js';
import { startBackground, type LibvirtRun, type Running } from './run.js';
import { parseDomjobinfo, parseDomstate, type DomJobInfo, type DomState } from './virsh.js';

/** Paths as the daemons (and their QEMUs) see them: each side's own, behind the bind mounts. */
export const QMP_SOCKET = '/run/libvirt/pcl-qmp.sock';
export const SERIAL_FILE = '/var/log/libvirt/pcl-serial.log';
const DUMP_FILE = '/var/log/libvirt/pcl-dest.mem';

export interface LibvirtSessionOptions {
  runId: string;
  /** The QEMU libvirt runs (the distribution's, or an unpacked one's wrapper). */
  emulator: string;
  /** Kernel link subnet; default the link's. */
  subnet?: string;
  memoryMiB?: number;
  /** Guest writes per second after its fill pass (guest-image.ts). */
  dirtyPagesPerSecond?: number;
  domain?: string;
  /** For tests: where pairs live. */
  stateRoot?: string;
}

export type { Running } from './run.js';

export class LibvirtSession implements LibvirtRun {
  readonly qmpMissing = null;
  readonly link: KernelLink;
  pair!: LibvirtPair;
  readonly domain: string;
  layout: GuestLayout | null = null;
  /** The kernel link's addresses, once started. */
  endpoints: LinkEndpoints | null = null;
  private readonly running = new Set<ResultPromise>();
  private started = false;

  constructor(readonly opts: LibvirtSessionOptions) {
    this.domain = opts.domain ?? 'pcl-guest';
    this.link = new KernelLink({ runId: opts.runId, subnet: opts.subnet });
  }

  /** Start the link and the pair, define and start the guest, wait until it wrote its range once. */
  async start(): Promise<LinkEndpoints> {
    if (this.started) throw new Error(`libvirt session ${this.opts.runId} is already started`);
    this.started = true;
    try {
      await checkUnpackedQemu(this.opts.emulator);
      this.endpoints = await this.link.start();
      this.pair = new LibvirtPair({ runId: this.opts.runId, network: this.link, stateRoot: this.opts.stateRoot });
      await this.pair.start();
      const memoryMiB = this.opts.memoryMiB ?? 64;
      const rom = path.join(this.pair.root, 'guest.rom');
      this.layout = await writeGuestImage(rom, { endMiB: memoryMiB - RAM_HEADROOM_MIB, stridePages: 1, dirtyPagesPerSecond: this.opts.dirtyPagesPerSecond ?? 20_000 }, 'rom');
      const xml = path.join(this.pair.root, 'domain.xml');
      await writeFile(xml, buildDomainXml({ name: this.domain, memoryMiB, rom, emulator: this.opts.emulator, qmpSocket: QMP_SOCKET, serialFile: SERIAL_FILE }), { mode: 0o600 });
      await this.pair.virsh('source', ['define', xml]);
      await this.pair.virsh('source', ['start', this.domain]);
      await waitForPasses(this.pair.hostPath('source', SERIAL_FILE), 1, 60_000);
      return this.endpoints;
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  /** The destination daemon as the source side reaches it. */
  get destUri(): string {
    return this.pair.tcpUri('destination');
  }

  /** A short virsh subcommand against a side's daemon. */
  virsh(side: Side, args: string[], opts: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
    return this.pair.virsh(side, args, opts);
  }

  /** The extra QMP socket as this process reaches it: behind the side's bind mount. */
  qmpSocket(side: Side): string {
    return this.pair.hostPath(side, QMP_SOCKET);
  }

  virshArgv(side: Side, args: string[]): string[] {
    return this.pair.virshArgv(side, args);
  }

  /** `virsh domstate --reason`; null when the side has no such domain (yet, or any more). */
  async state(side: Side): Promise<DomState | null> {
    try {
      return parseDomstate((await this.pair.virsh(side, ['domstate', '--reason', this.domain], { timeoutMs: 10_000 })).stdout);
    } catch (err) {
      if (err instanceof VirshError && /failed to get domain|Domain not found/i.test(err.message)) return null;
      throw err;
    }
  }

  /** `virsh domjobinfo` on the source. */
  async jobInfo(): Promise<DomJobInfo> {
    return parseDomjobinfo((await this.pair.virsh('source', ['domjobinfo', this.domain], { timeoutMs: 10_000 })).stdout);
  }

  /** Poll a side's state until `want` holds; the error names the last state seen. */
  async waitState(side: Side, want: (s: DomState) => boolean, what: string, timeoutMs = 60_000): Promise<DomState> {
    const deadline = performance.now() + timeoutMs;
    let last: string = 'nothing';
    while (performance.now() < deadline) {
      try {
        const s = await this.state(side);
        last = s ? `${s.state}${s.reason ? ` (${s.reason})` : ''}` : 'no domain';
        if (s && want(s)) return s;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`the ${side} domain never became ${what} within ${timeoutMs} ms; last: ${last}`);
  }

  /**
   * Perform a plan. A short virsh command is awaited (its failure throws VirshError); a long one
   * is started in the source's namespace and returned. A read or a refusal is not performed here.
   */
  async perform(plan: CommandPlan): Promise<Running | null> {
    if (plan.kind === 'refused') throw new Error(plan.reason);
    if (plan.kind === 'qmp-read') throw new Error(`${plan.command} is read on the extra QMP socket, not through virsh`);
    if (!plan.long) {
      await this.pair.virsh(plan.side, plan.args);
      return null;
    }
    return startBackground(this.pair.virshArgv(plan.side, plan.args), this.running);
  }

  /**
   * Pause the destination, dump its RAM through the extra QMP socket and check it. The
   * migration must have completed (a postcopy destination's missing page would block the dump).
   */
  async verifyDestination(): Promise<ConsistencyResult> {
    if (!this.layout) throw new Error('the session has no guest (start() it first)');
    const q = await QmpClient.connect(this.pair.hostPath('destination', QMP_SOCKET), { retryUntilMs: 5000, timeoutMs: 10_000 });
    try {
      await q.execute('stop');
      await q.execute('pmemsave', { val: 0, size: this.layout.endAddress, filename: DUMP_FILE }, { timeoutMs: 60_000 });
    } finally {
      q.close();
    }
    return checkConsistencyFile(this.pair.hostPath('destination', DUMP_FILE), { ...this.layout, dumpBase: 0 });
  }

  /**
   * The way out of a silent blackhole that libvirt has no command for: QEMU's out-of-band
   * `migrate-pause` on the destination, through the extra QMP socket. Deliberately behind
   * libvirt's back (its incoming job holds the domain's lock, so nothing else can reach QEMU);
   * libvirt then sees QEMU's postcopy-paused and reports `post-copy failed`, and
   * `--postcopy-resume` works again.
   */
  async pauseDestinationOutOfBand(): Promise<void> {
    const q = await QmpClient.connect(this.pair.hostPath('destination', QMP_SOCKET), { retryUntilMs: 5000, timeoutMs: 10_000 });
    try {
      await q.executeOob('migrate-pause');
    } finally {
      q.close();
    }
  }

  /** Kill background virsh commands, stop the pair, remove the link. Idempotent. */
  async stop(): Promise<void> {
    for (const c of this.running) c.kill('SIGKILL');
    await Promise.allSettled([...this.running]);
    const errors: string[] = [];
    if (this.pair) await this.pair.stop().catch((e: unknown) => errors.push((e as Error).message));
    await this.link.stop().catch((e: unknown) => errors.push((e as Error).message));
    if (errors.length) throw new Error(`libvirt session ${this.opts.runId} cleanup incomplete: ${errors.join('; ')}`);
  }
}
