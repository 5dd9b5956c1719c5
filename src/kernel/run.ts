/**
 * The one place the kernel link runs a program: execa with an argument array (never a shell),
 * stderr captured, a failure turned into a KernelCommandError carrying the program's own words.
 */
import { execa } from 'execa';
import type { Argv } from './argv.js';
import { netnsPids } from './ip.js';
import { KernelCommandError, isNotExist } from './errors.js';

export interface RunOptions {
  /** Written to the program's stdin (nft -f -). */
  input?: string;
  /** Kill the program after this long. Default 15 s: these commands take milliseconds. */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Something that runs an argv: `run` below, or a fake in unit tests. */
export type Runner = (argv: Argv, opts?: RunOptions) => Promise<RunResult>;

export const run: Runner = async (argv, opts = {}) => {
  const [file, ...args] = argv;
  const r = await execa(file, args, {
    reject: false,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    timeout: opts.timeoutMs ?? 15_000,
    // The kernel's and iproute2's messages, in English, whatever the user's locale: we match on them.
    env: { LC_ALL: 'C' },
    extendEnv: true,
  });
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  if (r.failed) {
    throw new KernelCommandError({
      argv,
      exitCode: r.exitCode,
      stderr,
      stdout,
      code: r.code,
      message: r.timedOut ? `timed out after ${opts.timeoutMs ?? 15_000} ms` : undefined,
    });
  }
  return { stdout, stderr };
};

/** Run, but treat "already gone" as success (for teardown). Returns false when it was gone. */
export async function runIgnoringNotExist(runner: Runner, argv: Argv, opts?: RunOptions): Promise<boolean> {
  try {
    await runner(argv, opts);
    return true;
  } catch (err) {
    if (isNotExist(err)) return false;
    throw err;
  }
}

/** Processes inside a network namespace (`ip netns pids`); none when it is gone or unreadable. */
export async function pidsInNamespace(runner: Runner, ns: string): Promise<number[]> {
  try {
    const { stdout } = await runner(netnsPids(ns));
    return stdout
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}
