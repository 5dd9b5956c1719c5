/**
 * What the libvirt backend's driver needs of a run, whichever daemons it runs on: the local pair
 * in the kernel link's namespaces (session.ts) or two daemons the user already has
 * (remote-session.ts). The driver speaks only virsh through it; the extra QMP socket is there
 * only where the daemon is local (`qmpSocket` null otherwise), and the link only where it is ours.
 */
import { execa, type ResultPromise } from 'execa';
import type { ConsistencyResult } from '../qemu/consistency.js';
import type { GuestLayout } from '../qemu/guest-image.js';
import type { Link, LinkEndpoints, Side } from '../types.js';
import type { CommandPlan } from './commands.js';
import type { DomJobInfo, DomState } from './virsh.js';

/** A long virsh command running in the background (a migration). */
export interface Running {
  argv: string[];
  done: Promise<{ exitCode: number | undefined; stderr: string }>;
}

export interface LibvirtRun {
  readonly domain: string;
  /** The link we shape and cut; null when the network between the hosts is not ours. */
  readonly link: Link | null;
  layout: GuestLayout | null;
  readonly destUri: string;
  start(): Promise<LinkEndpoints>;
  /** `virsh domstate --reason`; null when the side has no such domain. */
  state(side: Side): Promise<DomState | null>;
  jobInfo(): Promise<DomJobInfo>;
  /** A short virsh subcommand against a side's daemon; throws VirshError with virsh's words. */
  virsh(side: Side, args: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** The argv of a virsh subcommand against a side's daemon (for long-running ones: `event --loop`). */
  virshArgv(side: Side, args: string[]): string[];
  perform(plan: CommandPlan): Promise<Running | null>;
  /** QEMU's out-of-band migrate-pause on the destination's extra QMP socket (where there is one). */
  pauseDestinationOutOfBand(): Promise<void>;
  /** The extra QMP socket of a side as this process reaches it, or null (say why: `qmpMissing`). */
  qmpSocket(side: Side): string | null;
  /** Why there is no extra QMP socket (and so no memory check, no query-*, no out-of-band pause). */
  readonly qmpMissing: string | null;
  verifyDestination(): Promise<ConsistencyResult>;
  stop(): Promise<void>;
}

/**
 * A long virsh command (`virsh migrate`, which blocks until the migration ends) started in the
 * background; it stays in `running` until it exits, so a session's stop() can kill what is left.
 */
export function startBackground(argv: string[], running: Set<ResultPromise>): Running {
  const child = execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' }, extendEnv: true });
  running.add(child);
  const done = child.then((r) => {
    running.delete(child);
    return { exitCode: r.exitCode, stderr: String(r.stderr ?? '') };
  });
  return { argv, done };
}
