/**
 * One libvirt run on two daemons the user already has (`--source-uri`, `--dest-uri`): nothing
 * of ours runs on the hosts but what libvirt runs for us, and everything we create there is
 * removed on stop().
 *
 *   - the guest ROM reaches both hosts as libvirt moves files: a storage pool of ours
 *     (`pcl-<run>`, a directory under /var/lib/libvirt) on each daemon, and `virsh vol-upload`
 *     into it — the same path on both, as the domain's `<loader>` must be on the destination too;
 *   - the domain is defined and started on the source daemon (no extra QMP socket: a remote
 *     daemon's socket is on its host, out of our reach), migrated by `virsh migrate` to the
 *     destination URI as given;
 *   - stop() destroys and undefines the domain on both daemons and deletes the pools.
 *
 * What a remote run lacks, said where it is asked for: the link (none: not ours to break), the
 * destination's memory check and `query-*` (the extra QMP socket), and the serial log the local
 * run waits on (the guest has no serial device there; it is taken as ready once it runs).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { LinkEndpoints, Side } from '../types.js';
import { writeGuestImage, RAM_HEADROOM_MIB, type GuestLayout } from '../qemu/guest-image.js';
import type { ConsistencyResult } from '../qemu/consistency.js';
import type { CommandPlan } from './commands.js';
import { MIGRATION_PORT_MIN } from './config.js';
import { buildDomainXml } from './domain-xml.js';
import { VirshError } from './pair.js';
import { parseHypervisorVersion, RemoteUriError, type RemoteHosts } from './remote.js';
import { startBackground, type LibvirtRun, type Running } from './run.js';
import { parseDomjobinfo, parseDomstate, virsh, type DomJobInfo, type DomState } from './virsh.js';

export const REMOTE_QMP_MISSING =
  "the daemons are remote: the extra QMP socket is on their hosts, so there is no memory check of the destination, no query-* and no out-of-band pause; states and counters come from virsh alone (domstate, and domjobinfo on the source)";

export interface RemoteSessionOptions {
  runId: string;
  hosts: RemoteHosts;
  /** The QEMU path on the hosts; absent: each daemon's default emulator. */
  emulator?: string;
  memoryMiB?: number;
  dirtyPagesPerSecond?: number;
  domain?: string;
}

const SIDES = ['source', 'destination'] as const;

export class RemoteLibvirtSession implements LibvirtRun {
  readonly domain: string;
  readonly link = null;
  readonly qmpMissing = REMOTE_QMP_MISSING;
  layout: GuestLayout | null = null;
  private readonly pool: string;
  private readonly running = new Set<ResultPromise>();
  private readonly pools = new Set<Side>();
  private localDir: string | null = null;
  private started = false;

  constructor(readonly opts: RemoteSessionOptions) {
    this.domain = opts.domain ?? 'pcl-guest';
    this.pool = `pcl-${opts.runId}`;
  }

  uri(side: Side): string {
    return side === 'source' ? this.opts.hosts.source.uri : this.opts.hosts.destination.uri;
  }

  get destUri(): string {
    return this.opts.hosts.destination.uri;
  }

  /** Where the pools keep the ROM: the same directory on both hosts. */
  get poolDir(): string {
    return `/var/lib/libvirt/postcopy-lab-${this.opts.runId}`;
  }

  async virsh(side: Side, args: string[], opts: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
    const argv = virsh(this.uri(side), ...args);
    const timeout = opts.timeoutMs ?? 30_000;
    const r = await execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', timeout, env: { LC_ALL: 'C' }, extendEnv: true });
    if (r.failed) throw new VirshError(argv, r.timedOut ? `timed out after ${timeout} ms` : String(r.stderr ?? ''), r.exitCode);
    return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  }

  async start(): Promise<LinkEndpoints> {
    if (this.started) throw new Error(`remote libvirt run ${this.opts.runId} is already started`);
    this.started = true;
    try {
      // Reach both daemons first: an unreachable host is said before anything is created.
      for (const side of SIDES) {
        await this.virsh(side, ['list', '--all', '--name'], { timeoutMs: 30_000 }).catch((e: unknown) => {
          throw new Error(`the ${side} daemon ${this.uri(side)} does not answer: ${(e as Error).message}`);
        });
      }
      for (const side of SIDES) {
        if (await this.state(side)) throw new Error(`the ${side} daemon ${this.uri(side)} already has a domain '${this.domain}': postcopy-lab does not touch what it did not create (remove it with virsh undefine, or wait for the run that owns it)`);
      }
      this.localDir = await mkdtemp(path.join(tmpdir(), 'pcl-remote-'));
      const memoryMiB = this.opts.memoryMiB ?? 64;
      const rom = path.join(this.localDir, 'guest.rom');
      this.layout = await writeGuestImage(rom, { endMiB: memoryMiB - RAM_HEADROOM_MIB, stridePages: 1, dirtyPagesPerSecond: this.opts.dirtyPagesPerSecond ?? 20_000 }, 'rom');
      const volume = await this.uploadRom(rom);
      const xml = path.join(this.localDir, 'domain.xml');
      // No extra QMP socket and no serial file: on a remote host both would be out of reach (the
      // socket would also taint the domain for nothing), and a file in a directory of the host's
      // that its QEMU user may not write would only stop the domain from starting.
      await writeFile(xml, buildDomainXml({ name: this.domain, memoryMiB, rom: volume, emulator: this.opts.emulator }), { mode: 0o600 });
      await this.virsh('source', ['define', xml]);
      await this.virsh('source', ['start', this.domain], { timeoutMs: 60_000 });
      const dest = this.opts.hosts.destination.host;
      const port = { host: dest, port: MIGRATION_PORT_MIN };
      return { incoming: { listen: port, connect: port }, recover: { listen: port, connect: port } };
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  /** Our pool on each daemon, the ROM uploaded into it; its path (the same on both hosts). */
  private async uploadRom(rom: string): Promise<string> {
    for (const side of SIDES) {
      // A persistent pool, so that after pool-destroy, pool-delete can still remove its directory.
      await this.virsh(side, ['pool-define-as', this.pool, 'dir', '--target', this.poolDir]);
      this.pools.add(side);
      await this.virsh(side, ['pool-build', this.pool]);
      await this.virsh(side, ['pool-start', this.pool]);
      await this.virsh(side, ['vol-create-as', this.pool, 'guest.rom', String((await stat(rom)).size), '--format', 'raw']);
      await this.virsh(side, ['vol-upload', '--pool', this.pool, 'guest.rom', rom], { timeoutMs: 60_000 });
    }
    return `${this.poolDir}/guest.rom`;
  }

  async state(side: Side): Promise<DomState | null> {
    try {
      return parseDomstate((await this.virsh(side, ['domstate', '--reason', this.domain], { timeoutMs: 10_000 })).stdout);
    } catch (err) {
      if (err instanceof VirshError && /failed to get domain|Domain not found/i.test(err.message)) return null;
      throw err;
    }
  }

  async jobInfo(): Promise<DomJobInfo> {
    return parseDomjobinfo((await this.virsh('source', ['domjobinfo', this.domain], { timeoutMs: 10_000 })).stdout);
  }

  async perform(plan: CommandPlan): Promise<Running | null> {
    if (plan.kind === 'refused') throw new Error(plan.reason);
    if (plan.kind === 'qmp-read') throw new Error(`${plan.command} is read on the extra QMP socket, and ${REMOTE_QMP_MISSING}`);
    if (!plan.long) {
      await this.virsh(plan.side, plan.args);
      return null;
    }
    return startBackground(this.virshArgv(plan.side, plan.args), this.running);
  }

  virshArgv(side: Side, args: string[]): string[] {
    return virsh(this.uri(side), ...args);
  }

  qmpSocket(): null {
    return null;
  }

  pauseDestinationOutOfBand(): Promise<void> {
    return Promise.reject(new Error(`the out-of-band migrate-pause is sent on the destination's extra QMP socket, and ${REMOTE_QMP_MISSING}`));
  }

  verifyDestination(): Promise<ConsistencyResult> {
    return Promise.reject(new Error(REMOTE_QMP_MISSING));
  }

  /** Kill background virsh, remove the domain from both daemons and our pools. Idempotent. */
  async stop(): Promise<void> {
    for (const c of this.running) c.kill('SIGKILL');
    await Promise.allSettled([...this.running]);
    const errors: string[] = [];
    const gone = (e: unknown) => /failed to get domain|Domain not found|not found|no domain|is not running/i.test((e as Error).message);
    if (this.started) {
      for (const side of SIDES) {
        await this.virsh(side, ['destroy', this.domain], { timeoutMs: 30_000 }).catch((e: unknown) => !gone(e) && errors.push((e as Error).message));
        await this.virsh(side, ['undefine', this.domain], { timeoutMs: 15_000 }).catch((e: unknown) => !gone(e) && errors.push((e as Error).message));
      }
    }
    for (const side of [...this.pools]) {
      // The volume, then the pool stopped, its (now empty) directory removed, its definition gone.
      await this.virsh(side, ['vol-delete', '--pool', this.pool, 'guest.rom']).catch(() => undefined);
      await this.virsh(side, ['pool-destroy', this.pool]).catch(() => undefined);
      await this.virsh(side, ['pool-delete', this.pool]).catch(() => undefined);
      await this.virsh(side, ['pool-undefine', this.pool]).catch((e: unknown) => errors.push((e as Error).message));
      this.pools.delete(side);
    }
    if (this.localDir) await rm(this.localDir, { recursive: true, force: true });
    this.localDir = null;
    if (errors.length) throw new Error(`remote libvirt run ${this.opts.runId} cleanup incomplete (remove by hand with virsh: domain ${this.domain}, pool ${this.pool}): ${errors.join('; ')}`);
  }
}

/** The QEMU version a remote daemon runs by default (`virsh version`). */
export async function remoteQemuVersion(uri: string): Promise<{ major: number; minor: number; text: string }> {
  const argv = virsh(uri, 'version');
  const r = await execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', timeout: 30_000, env: { LC_ALL: 'C' }, extendEnv: true });
  if (r.failed) throw new RemoteUriError(`${uri} does not answer: ${String(r.stderr ?? '').trim().replace(/^error: /gm, '').replace(/\n/g, '; ') || (r.timedOut ? 'timed out after 30 s' : `virsh exit ${r.exitCode}`)}`);
  return parseHypervisorVersion(String(r.stdout ?? ''), uri);
}
