/**
 * Two independent libvirt daemons, one per "host", on one machine: each in the network
 * namespace the kernel link created for its side (so the migration stream crosses the veth the
 * link shapes and cuts), and each in a mount namespace of its own where this run's directories
 * are bind-mounted over libvirt's paths:
 *
 *   <root>/<side>/etc   -> /etc/libvirt        (libvirtd.conf, qemu.conf: config.ts)
 *   <root>/<side>/run   -> /run/libvirt        (sockets, pid file, the extra QMP socket)
 *   <root>/<side>/lib   -> /var/lib/libvirt    (domain state)
 *   <root>/<side>/cache -> /var/cache/libvirt  (QEMU capability cache)
 *   <root>/<side>/log   -> /var/log/libvirt    (daemon and domain logs, the serial file, dumps)
 *
 * `<root>` is `<stateRoot>/<runId>` (0700). The mount namespaces are persistent ones
 * (`unshare --mount=FILE`), bound to files under `<stateRoot>` the way `ip netns` binds network
 * namespaces under /run/netns: the bind mounts go in with `nsenter --mount=FILE mount --bind`,
 * and the daemon starts with `nsenter --net=... --mount=FILE libvirtd`. Every step is an argv,
 * no shell. A marker (`<root>/pair.json`) names the owner process, so `postcopy-lab cleanup`
 * can tell a live pair from a killed run's (cleanup.ts).
 *
 * We reach each daemon from the root namespace through its unix socket (`<root>/<side>/run/
 * libvirt-sock`); virsh runs inside the source's network namespace, so a managed-direct
 * migration's client reaches the destination daemon at its veth address over qemu+tcp.
 */
import { mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Side } from '../types.js';
import type { Argv } from '../kernel/argv.js';
import { netnsExec } from '../kernel/ip.js';
import { processStart } from '../kernel/owner.js';
import { run as defaultRun, pidsInNamespace, type Runner, type RunResult } from '../kernel/run.js';
import { validateRunId } from '../kernel/validate.js';
import { newHostUuid, renderLibvirtdConf, renderQemuConf, LIBVIRT_TCP_PORT } from './config.js';
import { tcpUri, unixUri, virsh } from './virsh.js';

/** Where pairs live. On /run (a tmpfs): a reboot clears it along with the namespaces. */
export const LIBVIRT_STATE_ROOT = '/run/postcopy-lab/libvirt';
export const LIBVIRTD = '/usr/sbin/libvirtd';

/** libvirt's paths that each daemon gets its own copy of, and our directory names for them. */
export const BIND_PATHS = [
  ['etc', '/etc/libvirt'],
  ['run', '/run/libvirt'],
  ['lib', '/var/lib/libvirt'],
  ['cache', '/var/cache/libvirt'],
  ['log', '/var/log/libvirt'],
] as const;

export const SIDE_DIR: Record<Side, string> = { source: 'src', destination: 'dst' };

export interface PairMarker {
  runId: string;
  pid: number;
  pidStart: string | null;
  namespaces: string[];
  /** The mount-namespace files to unmount. */
  mountNamespaces: string[];
  createdAt: string;
}

/** What the pair needs of the kernel link: its namespaces and addresses (a started KernelLink has them). */
export interface PairNetwork {
  namespaces: Record<Side, string>;
  subnet: { sourceAddress: string; destinationAddress: string };
}

export interface LibvirtPairOptions {
  runId: string;
  network: PairNetwork;
  stateRoot?: string;
  libvirtd?: string;
  runner?: Runner;
  /** How long a daemon may take to answer after spawn. Default 30 s (it probes QEMU first). */
  readyTimeoutMs?: number;
}

interface Daemon {
  child: ResultPromise;
  exited: boolean;
  stderr: string;
  exit: Promise<void>;
}

/** A virsh failure carries virsh's own words. */
export class VirshError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | undefined,
  ) {
    super(`${argv.slice(argv.indexOf('virsh')).join(' ')} failed: ${stderr.trim().replace(/^error: /gm, '').replace(/\n/g, '; ') || `exit code ${exitCode}`}`);
    this.name = 'VirshError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LibvirtPair {
  readonly runId: string;
  readonly root: string;
  readonly stateRoot: string;
  private readonly network: PairNetwork;
  private readonly runner: Runner;
  private readonly libvirtd: string;
  private readonly readyTimeoutMs: number;
  private readonly daemons: Partial<Record<Side, Daemon>> = {};
  private started = false;
  private stopping: Promise<void> | null = null;

  constructor(opts: LibvirtPairOptions) {
    this.runId = validateRunId(opts.runId);
    this.stateRoot = opts.stateRoot ?? LIBVIRT_STATE_ROOT;
    this.root = path.join(this.stateRoot, this.runId);
    this.network = opts.network;
    this.runner = opts.runner ?? defaultRun;
    this.libvirtd = opts.libvirtd ?? LIBVIRTD;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  }

  address(side: Side): string {
    return side === 'source' ? this.network.subnet.sourceAddress : this.network.subnet.destinationAddress;
  }

  /** A side's directory of ours for one of libvirt's paths (`dir('source', 'log')`). */
  dir(side: Side, which: (typeof BIND_PATHS)[number][0]): string {
    return path.join(this.root, SIDE_DIR[side], which);
  }

  /** The file a side's mount namespace is bound to. */
  mountNamespace(side: Side): string {
    return path.join(this.root, `${SIDE_DIR[side]}.mnt`);
  }

  /** The host path of a path as a side's daemon (and its QEMU) sees it, e.g. /run/libvirt/x. */
  hostPath(side: Side, inNs: string): string {
    for (const [which, target] of BIND_PATHS) {
      if (inNs === target || inNs.startsWith(`${target}/`)) return path.join(this.dir(side, which), inNs.slice(target.length));
    }
    throw new Error(`${inNs} is not under one of the paths bind-mounted for the ${side} daemon (${BIND_PATHS.map((b) => b[1]).join(', ')})`);
  }

  /** The URI we use for a side: its unix socket, reachable from any namespace. */
  uri(side: Side): string {
    return unixUri(path.join(this.dir(side, 'run'), 'libvirt-sock'));
  }

  /** A side's URI as the other side reaches it over the link. */
  tcpUri(side: Side): string {
    return tcpUri(this.address(side), LIBVIRT_TCP_PORT);
  }

  /** The argv of `virsh -c <side's uri> args...`, run inside `from`'s network namespace. */
  virshArgv(side: Side, args: string[], from: Side = 'source'): Argv {
    const [file, ...rest] = virsh(this.uri(side), ...args);
    return netnsExec(this.network.namespaces[from], file, rest);
  }

  /** Run virsh against a side. Throws VirshError with virsh's words. */
  async virsh(side: Side, args: string[], opts: { timeoutMs?: number; from?: Side } = {}): Promise<RunResult> {
    const argv = this.virshArgv(side, args, opts.from);
    const r = await execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', timeout: opts.timeoutMs ?? 30_000, env: { LC_ALL: 'C' }, extendEnv: true });
    const stdout = String(r.stdout ?? '');
    const stderr = String(r.stderr ?? '');
    if (r.failed) throw new VirshError(argv, r.timedOut ? `timed out after ${opts.timeoutMs ?? 30_000} ms` : stderr, r.exitCode);
    return { stdout, stderr };
  }

  async start(): Promise<void> {
    if (this.started) throw new Error(`libvirt pair ${this.runId} is already started`);
    this.started = true;
    try {
      await this.prepareDirs();
      for (const side of ['source', 'destination'] as const) await this.startDaemon(side);
      await Promise.all((['source', 'destination'] as const).map((s) => this.waitReady(s)));
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  private async prepareDirs(): Promise<void> {
    const r = this.runner;
    await mkdir(this.stateRoot, { recursive: true, mode: 0o700 });
    // A mount namespace can only be bound to a file on a mount with private propagation (else
    // the bind would propagate into the namespace itself): make stateRoot such a mount, once.
    if (!(await isMountPoint(this.stateRoot))) {
      await r(['mount', '--bind', this.stateRoot, this.stateRoot]);
    }
    await r(['mount', '--make-private', this.stateRoot]);
    await mkdir(this.root, { mode: 0o700 });
    const marker: PairMarker = {
      runId: this.runId,
      pid: process.pid,
      pidStart: processStart(process.pid),
      namespaces: [this.network.namespaces.source, this.network.namespaces.destination],
      mountNamespaces: [this.mountNamespace('source'), this.mountNamespace('destination')],
      createdAt: new Date().toISOString(),
    };
    await writeFile(path.join(this.root, 'pair.json'), JSON.stringify(marker) + '\n', { mode: 0o600 });
    // libvirt's paths must exist to be mount points; /run/libvirt does not until a daemon ran.
    for (const [, target] of BIND_PATHS) await mkdir(target, { recursive: true, mode: 0o755 });
    for (const side of ['source', 'destination'] as const) {
      for (const [which] of BIND_PATHS) {
        await mkdir(this.dir(side, which), { recursive: true, mode: 0o700 });
        await chmod(this.dir(side, which), 0o700);
      }
      await chmod(path.join(this.root, SIDE_DIR[side]), 0o700);
      const listenAddress = this.address(side);
      await writeFile(
        path.join(this.dir(side, 'etc'), 'libvirtd.conf'),
        renderLibvirtdConf({ listenAddress, hostUuid: newHostUuid(), logFile: '/var/log/libvirt/libvirtd.log' }),
        { mode: 0o600 },
      );
      await writeFile(path.join(this.dir(side, 'etc'), 'qemu.conf'), renderQemuConf({ listenAddress }), { mode: 0o600 });
      const mnt = this.mountNamespace(side);
      await writeFile(mnt, '', { mode: 0o600 });
      await r(['unshare', `--mount=${mnt}`, '--propagation', 'private', 'true']);
      for (const [which, target] of BIND_PATHS) await r(['nsenter', `--mount=${mnt}`, 'mount', '--bind', this.dir(side, which), target]);
    }
  }

  private async startDaemon(side: Side): Promise<void> {
    const argv = [
      `--net=/run/netns/${this.network.namespaces[side]}`,
      `--mount=${this.mountNamespace(side)}`,
      this.libvirtd,
      '--listen',
      '--pid-file',
      '/run/libvirt/libvirtd.pid',
      '--config',
      '/etc/libvirt/libvirtd.conf',
    ];
    // execa's default cleanup also kills the daemon if this process exits first.
    const child = execa('nsenter', argv, { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', reject: false, buffer: false });
    const d: Daemon = { child, exited: false, stderr: '', exit: Promise.resolve() };
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      d.stderr = (d.stderr + s).slice(-16_384);
    });
    d.exit = child.then(
      () => {
        d.exited = true;
      },
      () => {
        d.exited = true;
      },
    );
    this.daemons[side] = d;
  }

  private async waitReady(side: Side): Promise<void> {
    const d = this.daemons[side];
    const deadline = performance.now() + this.readyTimeoutMs;
    let last = '';
    while (performance.now() < deadline) {
      if (!d || d.exited) throw new Error(`the ${side} libvirtd exited at start: ${(d?.stderr ?? '').trim().split('\n').slice(-3).join(' | ') || 'no message'}`);
      try {
        // Not `version`: that also probes the system's QEMU; `list` asks the daemon alone.
        await this.virsh(side, ['list', '--all', '--name'], { timeoutMs: 10_000 });
        return;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(200);
    }
    throw new Error(`the ${side} libvirtd did not answer within ${this.readyTimeoutMs} ms: ${last}`);
  }

  /** Every domain of a side, by name (`virsh list --all --name`). */
  async domains(side: Side): Promise<string[]> {
    const { stdout } = await this.virsh(side, ['list', '--all', '--name'], { timeoutMs: 10_000 });
    return stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  /**
   * Stop everything: domains destroyed and undefined, daemons ended, any QEMU still in the
   * namespaces killed, the mount namespaces unbound, the directories removed. Idempotent; an
   * error in one step does not skip the next.
   */
  stop(): Promise<void> {
    if (!this.started) return Promise.resolve();
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    const errors: string[] = [];
    for (const side of ['source', 'destination'] as const) {
      const d = this.daemons[side];
      if (!d || d.exited) continue;
      try {
        for (const dom of await this.domains(side)) {
          await this.virsh(side, ['destroy', dom], { timeoutMs: 15_000 }).catch(() => undefined);
          await this.virsh(side, ['undefine', dom], { timeoutMs: 10_000 }).catch(() => undefined);
        }
      } catch {
        // A daemon that does not answer is killed below, and its QEMU with the namespace's processes.
      }
    }
    for (const side of ['source', 'destination'] as const) {
      const d = this.daemons[side];
      if (!d) continue;
      if (!d.exited) {
        d.child.kill('SIGTERM');
        if (!(await settles(d.exit, 10_000))) {
          d.child.kill('SIGKILL');
          await d.exit;
        }
      }
    }
    errors.push(...(await removePairState(this.runner, this.root, [this.network.namespaces.source, this.network.namespaces.destination])));
    if (errors.length) throw new Error(`libvirt pair ${this.runId} cleanup incomplete: ${errors.join('; ')}`);
  }
}

async function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  const ok = await Promise.race([p.then(() => true), t]);
  clearTimeout(timer);
  return ok;
}

/** Whether `dir` is itself a mount point (listed in /proc/self/mountinfo). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === dir);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Remove a pair's state: kill what still runs in its namespaces (a QEMU libvirt started, a
 * daemon of a killed run: they are this run's, the namespaces are its own), unbind its mount
 * namespaces, delete its directory. Returns the errors, in words; "already gone" is success.
 * Shared by stop() and `postcopy-lab cleanup` (cleanup.ts).
 */
export async function removePairState(runner: Runner, root: string, namespaces: string[]): Promise<string[]> {
  const errors: string[] = [];
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = (await Promise.all(namespaces.map((ns) => pidsInNamespace(runner, ns)))).flat().filter((p) => p !== process.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone already
      }
    }
    const deadline = performance.now() + 5000;
    while (pids.some(alive) && performance.now() < deadline) await sleep(100);
  }
  for (const side of Object.values(SIDE_DIR)) {
    const mnt = path.join(root, `${side}.mnt`);
    try {
      await runner(['umount', mnt]);
    } catch (err) {
      const msg = (err as Error).message;
      // Not bound (never created, or already unbound): nothing to undo.
      if (!/not mounted|no mount point|No such file|not found/i.test(msg)) errors.push(`umount ${mnt}: ${msg}`);
    }
  }
  try {
    await rm(root, { recursive: true, force: true });
  } catch (err) {
    errors.push(`rm ${root}: ${(err as Error).message}`);
  }
  return errors;
}
