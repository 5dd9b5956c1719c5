/**
 * Helpers for integration tests that run the real sim VM processes (dist/src/sim/vm-main.js),
 * the relay and the CLI: building dist once, starting a VM with a QMP client, free ports,
 * polling, running the CLI, and finding processes left behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { parse as parseYaml } from 'yaml';
import { QmpClient, type QmpEventMessage } from '../../src/qmp/client.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The ids of the shipped labs that run on the sim (their `backends` list has it), sorted. A lab
 * for another backend only (QEMU, libvirt) is drilled with that backend's tests.
 */
export function simLabIds(): string[] {
  const dir = path.join(ROOT, 'labs');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .filter((f) => {
      const backends = (parseYaml(fs.readFileSync(path.join(dir, f), 'utf8')) as { backends?: unknown }).backends;
      return !Array.isArray(backends) || backends.includes('sim');
    })
    .map((f) => f.replace(/\.yaml$/, ''))
    .sort();
}
export const VM_MAIN_DIST = path.join(ROOT, 'dist/src/sim/vm-main.js');
export const RELAY_MAIN_DIST = path.join(ROOT, 'dist/src/link/relay-main.js');
export const CLI_BIN = path.join(ROOT, 'bin/postcopy-lab.js');
const BUILT = [VM_MAIN_DIST, RELAY_MAIN_DIST, path.join(ROOT, 'dist/src/cli.js')];

/**
 * Builds dist/ only when an entry point is missing (`npm test` builds before vitest). Two test
 * files may ask at once: a lock directory makes the second wait for the first's build.
 */
export async function ensureBuilt(): Promise<void> {
  if (BUILT.every((f) => fs.existsSync(f))) return;
  const lock = path.join(os.tmpdir(), 'postcopy-lab-test-build.lock');
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (BUILT.every((f) => fs.existsSync(f))) return;
      // A lock older than the deadline is a crashed builder's.
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 240_000) fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone already
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for another test file to build dist/');
      await sleep(500);
    }
  }
  try {
    if (!BUILT.every((f) => fs.existsSync(f))) await execa('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, reject: false });
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
  for (const f of BUILT) if (!fs.existsSync(f)) throw new Error(`building did not produce ${f}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function tempDir(prefix = 'postcopy-sim-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A port that was free a moment ago on 127.0.0.1 (below the ephemeral range: see src/util/ports.ts). */
export { freePort } from '../../src/util/ports.js';

/** Polls `fn` until it returns a truthy value; throws with `what` and the last value on timeout. */
export async function waitFor<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 15_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await fn();
      if (last) return last as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}

export interface VmOptions {
  role: 'source' | 'destination';
  dir: string;
  memory?: string;
  smp?: number;
  workload?: 'random' | 'sequential' | 'hotset';
  readRate?: number;
  dirtyRate?: number;
  seed?: number;
  pageSize?: number;
  /** The QEMU version the VM behaves as (`--emulate`); the sim's default when not given. */
  emulate?: string;
  /** Guest threads per vCPU (`--threads`); the sim's default (1) when not given. */
  threads?: number;
}

export interface SimVmProcess {
  role: 'source' | 'destination';
  proc: ResultPromise;
  qmp: QmpClient;
  qmpPath: string;
  /** MIGRATION statuses in the order the events arrived (events capability must be on). */
  statuses: string[];
  events: QmpEventMessage[];
  stderr(): string;
  alive(): boolean;
  exec<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  status(): Promise<string>;
  pages(): Promise<import('../../src/types.js').PagesInfo>;
  /** quit over QMP, then SIGKILL; waits for the process to end. Idempotent. */
  stop(): Promise<void>;
}

/** Starts one sim VM process and connects a QMP client to it. */
export async function startVm(o: VmOptions): Promise<SimVmProcess> {
  const qmpPath = path.join(o.dir, `${o.role}-${Math.random().toString(36).slice(2, 8)}.qmp`);
  const args = [
    VM_MAIN_DIST,
    '--name', o.role,
    '--memory', o.memory ?? '16M',
    '--smp', String(o.smp ?? 2),
    '--workload', o.workload ?? 'random',
    '--read-rate', String(o.readRate ?? 2000),
    '--dirty-rate', String(o.dirtyRate ?? 500),
    '--seed', String(o.seed ?? 1),
    '--qmp', qmpPath,
  ];
  if (o.pageSize) args.push('--page-size', String(o.pageSize));
  if (o.emulate) args.push('--emulate', o.emulate);
  if (o.threads) args.push('--threads', String(o.threads));
  if (o.role === 'destination') args.push('--incoming', 'defer');
  // stdin stays a pipe: the VM exits when it closes, so a crashed test leaves no orphan.
  const proc = execa(process.execPath, args, { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', reject: false, buffer: false });
  let stderr = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (t: string) => {
    stderr = (stderr + t).slice(-20_000);
  });
  let exited = false;
  const done = proc.then(() => {
    exited = true;
  });
  let qmp: QmpClient;
  try {
    qmp = await Promise.race([
      QmpClient.connect(qmpPath, { retryUntilMs: 15_000, timeoutMs: 15_000 }),
      done.then(() => {
        throw new Error(`the ${o.role} VM exited while starting: ${stderr}`);
      }),
    ]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  const statuses: string[] = [];
  const events: QmpEventMessage[] = [];
  qmp.on('event', (ev: QmpEventMessage) => {
    events.push(ev);
    if (ev.event === 'MIGRATION' && typeof ev.data?.status === 'string') statuses.push(ev.data.status);
  });
  let stopping: Promise<void> | null = null;
  const vm: SimVmProcess = {
    role: o.role,
    proc,
    qmp,
    qmpPath,
    statuses,
    events,
    stderr: () => stderr,
    alive: () => !exited,
    exec: (cmd, a) => qmp.execute(cmd, a),
    status: async () => ((await qmp.execute<{ status?: string }>('query-migrate')).status ?? 'none'),
    pages: () => qmp.execute('x-query-pages'),
    stop: () => {
      stopping ??= (async () => {
        if (!exited) await qmp.execute('quit', undefined, { timeoutMs: 1000 }).catch(() => {});
        qmp.close();
        const t = setTimeout(() => proc.kill('SIGKILL'), 2000);
        await done;
        clearTimeout(t);
      })();
      return stopping;
    },
  };
  return vm;
}

/** Sets capabilities on a VM (`events` on, so statuses are recorded). */
export async function setCaps(vm: SimVmProcess, caps: Record<string, boolean>): Promise<void> {
  await vm.exec('migrate-set-capabilities', { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) });
}

export interface CliResult {
  code: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

/** An environment for the CLI whose runtime and state directories live under `dir`. */
export function cliEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir, XDG_STATE_HOME: path.join(dir, 'state'), NO_COLOR: '1' };
  delete env.XDG_RUNTIME_DIR;
  delete env.FORCE_COLOR;
  return env;
}

/** Starts the CLI (not awaited). */
export function spawnCli(args: string[], dir: string, timeoutMs = 120_000): ResultPromise<{ reject: false; all: false }> {
  return execa(process.execPath, [CLI_BIN, ...args], { cwd: ROOT, env: cliEnv(dir), extendEnv: false, reject: false, timeout: timeoutMs, stdin: 'ignore' }) as ResultPromise<{
    reject: false;
    all: false;
  }>;
}

export async function runCli(args: string[], dir: string, timeoutMs = 120_000): Promise<CliResult> {
  const r = await spawnCli(args, dir, timeoutMs);
  return { code: r.exitCode, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Parses a --json drill's stdout: every line must be a JSON object. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  const lines = stdout.split('\n').filter((l) => l.length > 0);
  return lines.map((l, i) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      throw new Error(`stdout line ${i + 1} is not JSON: ${l.slice(0, 200)}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`stdout line ${i + 1} is not a JSON object: ${l.slice(0, 200)}`);
    return v as Record<string, unknown>;
  });
}

/** Pids of processes whose command line contains `needle` (not this process). */
export async function pidsMatching(needle: string): Promise<number[]> {
  const r = await execa('pgrep', ['-f', '--', needle], { reject: false });
  return String(r.stdout)
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((p) => p !== process.pid);
}

/** Entries named postcopy-lab-* (runtime directories) under `dir`. */
export function runtimeDirsIn(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.startsWith('postcopy-lab-'));
}

/** Writes a lab file `<id>.yaml` into `dir` (the loader wants the id to match the file name). */
export function writeLab(dir: string, id: string, body: string): string {
  const file = path.join(dir, `${id}.yaml`);
  fs.writeFileSync(file, `id: ${id}\n${body}`);
  return file;
}

/**
 * A lab whose postcopy phase lasts well over a minute (32 MiB pushed at 256 KiB/s): long enough
 * to kill or signal something in the middle of it.
 */
export const SLOW_POSTCOPY_LAB = `title: A long postcopy
summary: Postcopy with a slow background push, for lifecycle tests.
backends: [sim]
setup:
  memory: 32M
  vcpus: 2
  workload: random
  dirty-rate: 200
  read-rate: 2000
  capabilities: { postcopy-ram: true, return-path: true, events: true }
  parameters: { max-bandwidth: 4M, max-postcopy-bandwidth: 256K }
steps:
  - title: Start postcopy
    text: Start.
    hints: [none]
    do:
      - qmp: destination
        execute: migrate-incoming
        arguments: { uri: "\${incoming.listen}" }
      - qmp: source
        execute: migrate
        arguments: { uri: "\${incoming.connect}" }
      - wait: 300ms
      - qmp: source
        execute: migrate-start-postcopy
    until: 'destination.status == "postcopy-active"'
  - title: Finish
    text: Wait.
    hints: [none]
    until: 'source.status == "completed" && destination.status == "completed"'
    timeout: 300s
expect:
  - 'destination.pages.verified == true'
summary-text: done
`;

/** Resolves with the first stdout JSON line (of a --json drill) that satisfies `pred`. */
export function waitForJsonLine(
  proc: ResultPromise,
  pred: (o: Record<string, unknown>) => boolean,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      proc.stdout?.off('data', onData);
      reject(new Error(`no matching JSON line within ${timeoutMs} ms; stdout so far: ${buf.slice(-2000)}`));
    }, timeoutMs);
    const onData = (d: Buffer | string) => {
      buf += String(d);
      for (const line of buf.split('\n').slice(0, -1)) {
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          if (pred(o)) {
            clearTimeout(timer);
            proc.stdout?.off('data', onData);
            resolve(o);
            return;
          }
        } catch {
          // not JSON: the caller's assertions on the whole output will say so
        }
      }
    };
    proc.stdout?.on('data', onData);
  });
}

/** A state event line of a --json drill: side `side` moved to `to`. */
export function isStateEvent(o: Record<string, unknown>, side: string, to: string): boolean {
  return o.type === 'event' && o.kind === 'state' && o.side === side && (o.data as { to?: string } | undefined)?.to === to;
}

/** Run at most `n` of the given async jobs at once (drills spend most of their time waiting). */
export function limiter(n: number) {
  let active = 0;
  const queue: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    while (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}
