/**
 * Finding, probing and running qemu-system-x86_64 for the test guest.
 *
 * Both sides of a migration get the same argv from `buildQemuArgs` except for `-incoming`:
 * QEMU refuses (or silently corrupts) a migration between differently configured machines, so
 * the machine options live in exactly one function.
 *
 * Each QEMU gets two QMP monitors: `qmpSocket` for the driver, the console and the user, and a
 * private one the launcher keeps for readiness and `stop()`. A QMP unix socket serves one client
 * at a time, so without the private one a driver that holds the public socket would make a
 * clean `quit` impossible.
 */
import { constants as fsConstants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { QmpClient } from '../qmp/client.js';
import type { GuestImageKind } from './guest-image.js';

/** The binary names tried, in order, when no path is given (qemu-kvm: RHEL-family hosts). */
const QEMU_NAMES = ['qemu-system-x86_64'];
const QEMU_EXTRA_PATHS = ['/usr/libexec/qemu-kvm'];

export const QEMU_INSTALL_HINT =
  'install it with `apt-get install qemu-system-x86` (Debian/Ubuntu) or `scripts/provision.sh`, or pass --qemu PATH; `--backend sim` needs nothing installed';

/** No usable QEMU: the message is the one sentence a user sees. */
export class QemuNotFoundError extends Error {
  constructor(detail: string) {
    super(`QEMU not found (${detail}): ${QEMU_INSTALL_HINT}.`);
    this.name = 'QemuNotFoundError';
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The QEMU binary to run: `path` if given (it must be executable), else the first
 * qemu-system-x86_64 on PATH. Throws QemuNotFoundError with the install hint.
 */
export async function findQemu(path?: string): Promise<string> {
  if (path) {
    if (await isExecutable(path)) return path;
    throw new QemuNotFoundError(`${path} is not an executable file`);
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of QEMU_NAMES) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (await isExecutable(candidate)) return candidate;
    }
  }
  for (const candidate of QEMU_EXTRA_PATHS) {
    if (await isExecutable(candidate)) return candidate;
  }
  return Promise.reject(new QemuNotFoundError(`no ${QEMU_NAMES.join(' or ')} on PATH`));
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
  /** The first line of `--version`, e.g. "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)". */
  text: string;
}

/** Parse the first line of `qemu-system-x86_64 --version`. */
export function parseQemuVersion(output: string): QemuVersion {
  const line = output.split('\n')[0]?.trim() ?? '';
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(line);
  if (!m) throw new Error(`cannot read a QEMU version from: ${JSON.stringify(line)}`);
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0), text: line };
}

/** Run `bin --version` and parse it. */
export async function qemuVersion(bin: string): Promise<QemuVersion> {
  const r = await execa(bin, ['--version'], { timeout: 10_000, reject: false });
  if (r.exitCode !== 0) {
    throw new QemuNotFoundError(`${bin} --version failed: ${(r.stderr || r.stdout || String(r.exitCode)).trim()}`);
  }
  return parseQemuVersion(r.stdout);
}

export interface KvmProbe {
  usable: boolean;
  /** Why not, when not usable. */
  reason?: string;
  /**
   * The loaded KVM module (kvm_intel, kvm_amd, kvm_pvm), when known. kvm_pvm is KVM by shadow
   * paging inside a VM without nested virtualization: usable, but memory remaps and page
   * faults are far slower than with hardware-assisted nesting.
   */
  module?: string;
}

async function kvmModule(): Promise<string | undefined> {
  for (const m of ['kvm_intel', 'kvm_amd', 'kvm_pvm']) {
    try {
      await access(`/sys/module/${m}`);
      return m;
    } catch {
      // not loaded
    }
  }
  return undefined;
}

/** Whether /dev/kvm can be opened read-write, which is what QEMU's `accel=kvm` needs. */
export async function kvmUsable(device = '/dev/kvm'): Promise<KvmProbe> {
  try {
    const fh = await open(device, 'r+');
    await fh.close();
    const module = await kvmModule();
    return module ? { usable: true, module } : { usable: true };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? `${device} does not exist (no KVM module loaded, or virtualization is off or not nested into this VM)`
        : code === 'EACCES' || code === 'EPERM'
          ? `${device} is not accessible to this user (add the user to the kvm group, or run as root)`
          : `${device} cannot be opened: ${(e as Error).message}`;
    return { usable: false, reason };
  }
}

export type Accel = 'kvm' | 'tcg';

/** The accelerator to use, and a note to show when it is TCG. */
export async function chooseAccel(prefer: Accel | 'auto' = 'auto'): Promise<{ accel: Accel; note?: string }> {
  if (prefer === 'tcg') return { accel: 'tcg', note: 'TCG chosen explicitly.' };
  const kvm = await kvmUsable();
  if (kvm.usable) return { accel: 'kvm' };
  const note =
    `KVM is not usable (${kvm.reason}); falling back to TCG, which translates every guest ` +
    'instruction in software instead of running it on the CPU, so the guest runs several times ' +
    'slower and dirties memory more slowly.';
  if (prefer === 'kvm') throw new Error(note.replace('; falling back to TCG', ', and KVM was required'));
  return { accel: 'tcg', note };
}

export interface QemuArgsOptions {
  bin: string;
  memoryMiB: number;
  /** The guest image (guest-image.ts). */
  image: string;
  /**
   * 'boot-sector' (default): a raw disk SeaBIOS boots. 'rom': the image is the firmware
   * (`-bios`), no SeaBIOS and no disk; boots in well under a second on any accelerator.
   */
  imageKind?: GuestImageKind;
  /** The public QMP socket (driver, console, user). */
  qmpSocket: string;
  /** A second QMP socket, private to whoever started QEMU (startQemu fills it in). */
  controlSocket?: string;
  /** The destination: wait for `migrate-incoming`. */
  incoming?: 'defer';
  kvm: boolean;
  /** Where COM1 (the guest's markers) goes; without it COM1 is absent and markers are dropped. */
  serialFile?: string;
  /** Machine type; default `pc` (i440fx). Pin a versioned one (e.g. pc-i440fx-7.2) across QEMU versions. */
  machine?: string;
  /** A name shown in `ps` and in QEMU's messages. */
  name?: string;
  /**
   * KVM's dirty ring, entries per vCPU (`-accel kvm,dirty-ring-size=N`): what QEMU's
   * `dirty-limit` capability needs. KVM only; see `dirtyLimitRefusal` for when it can be used.
   */
  dirtyRingSize?: number;
}

/** The ring size used when a run asks for dirty-limit: QEMU's documented example, 4096 entries. */
export const DIRTY_RING_SIZE = 4096;

/**
 * Why `dirty-limit` cannot be used with this QEMU and accelerator, or null when it can. QEMU
 * added the capability in 8.1, and it works only with KVM's dirty ring (QEMU itself refuses it
 * otherwise: "dirty-limit requires KVM with accelerator property 'dirty-ring-size' set"). A
 * kernel without the ring (before Linux 5.11) makes QEMU exit at start, with its own message.
 */
export function dirtyLimitRefusal(version: Pick<QemuVersion, 'major' | 'minor'>, accel: Accel): string | null {
  const v = `${version.major}.${version.minor}`;
  if (version.major < 8 || (version.major === 8 && version.minor < 1)) {
    return `dirty-limit needs QEMU 8.1 or newer (this is QEMU ${v}, whose migrate-set-capabilities has no dirty-limit); use auto-converge, or pass --qemu with a newer QEMU`;
  }
  if (accel !== 'kvm') {
    return `dirty-limit needs KVM's dirty ring (-accel kvm,dirty-ring-size=...), and this run uses TCG, which has none; make /dev/kvm usable to use it`;
  }
  return null;
}

/**
 * The argv for one side. `file` is the binary; wrap it for a network namespace with
 * `Link.wrapCommand`.
 */
export function buildQemuArgs(o: QemuArgsOptions): { file: string; args: string[] } {
  if (!Number.isInteger(o.memoryMiB) || o.memoryMiB < 2) throw new RangeError(`memoryMiB must be an integer >= 2, got ${o.memoryMiB}`);
  if (o.dirtyRingSize !== undefined) {
    // KVM wants a power of two between 1024 and 65536 entries.
    const n = o.dirtyRingSize;
    if (!o.kvm) throw new Error("dirtyRingSize needs KVM: TCG has no dirty ring (dirty-limit cannot be used under TCG)");
    if (!Number.isInteger(n) || n < 1024 || n > 65536 || (n & (n - 1)) !== 0) {
      throw new RangeError(`dirtyRingSize must be a power of two from 1024 to 65536 (KVM's dirty ring entries per vCPU), got ${n}`);
    }
  }
  for (const [what, v] of [
    ['image', o.image],
    ['qmpSocket', o.qmpSocket],
    ['controlSocket', o.controlSocket],
    ['serialFile', o.serialFile],
  ] as const) {
    // QEMU's option syntax splits on commas; a path with one would be misread (it would need ",,").
    if (v !== undefined && v.includes(',')) throw new Error(`${what} path must not contain a comma: ${v}`);
  }
  const args = [
    ...(o.name ? ['-name', o.name] : []),
    // No default NIC (it would need an option ROM from ipxe-qemu), VGA, floppy, CD-ROM or
    // monitor: less state to migrate, nothing that depends on packages outside qemu-system-x86.
    '-nodefaults',
    '-no-user-config',
    '-machine',
    o.machine ?? 'pc',
    '-accel',
    o.kvm ? `kvm${o.dirtyRingSize ? `,dirty-ring-size=${o.dirtyRingSize}` : ''}` : 'tcg',
    '-m',
    String(o.memoryMiB),
    '-display',
    'none',
    '-serial',
    o.serialFile ? `file:${o.serialFile}` : 'none',
    // The boot sector on an IDE disk. file.locking=off: source and destination open the same
    // file at the same time; QEMU's image locking would refuse the second, and the guest never
    // writes the disk, so there is nothing to protect. A ROM replaces SeaBIOS and needs no disk.
    ...(o.imageKind === 'rom' ? ['-bios', o.image] : ['-drive', `file=${o.image},format=raw,if=ide,file.locking=off`]),
    '-qmp',
    `unix:${o.qmpSocket},server=on,wait=off`,
    ...(o.controlSocket ? ['-qmp', `unix:${o.controlSocket},server=on,wait=off`] : []),
    ...(o.incoming ? ['-incoming', o.incoming] : []),
  ];
  return { file: o.bin, args };
}

export interface StartQemuOptions extends QemuArgsOptions {
  /** Run the argv through this first (the kernel link's `ip netns exec`); identity by default. */
  wrap?: (file: string, args: string[]) => { file: string; args: string[] };
  /** How long to wait for QMP to answer. Default 15 000 ms. */
  readyTimeoutMs?: number;
}

export interface QemuHandle {
  readonly pid: number | undefined;
  /** The command actually run (after `wrap`). */
  readonly argv: { file: string; args: string[] };
  readonly qmpSocket: string;
  /** The launcher's own QMP connection (private socket); usable for commands too. */
  readonly control: QmpClient;
  /** QEMU's stderr so far (bounded to the last 64 KiB). */
  stderr(): string;
  /** Whether the process has exited. */
  readonly exited: boolean;
  /** Resolves when the process exits, with its exit code or signal. */
  readonly exit: Promise<{ code: number | undefined; signal: string | undefined }>;
  /**
   * Stop QEMU: `quit` over QMP, then SIGTERM, then SIGKILL, each with a bounded wait.
   * Idempotent; resolves once the process is gone.
   */
  stop(): Promise<void>;
}

const STDERR_LIMIT = 64 * 1024;

function waitOrTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve(true);
      },
      () => {
        clearTimeout(t);
        resolve(true);
      },
    );
  });
}

/**
 * Start one QEMU and wait until its QMP answers. If it exits first, or QMP does not answer
 * in time, the process is killed and the error carries QEMU's own stderr.
 */
export async function startQemu(opts: StartQemuOptions): Promise<QemuHandle> {
  const controlSocket = opts.controlSocket ?? `${opts.qmpSocket}.launcher`;
  const built = buildQemuArgs({ ...opts, controlSocket });
  const argv = opts.wrap ? opts.wrap(built.file, built.args) : built;
  let stderrText = '';
  let exited = false;
  // execa's default `cleanup: true` also kills the child if this Node process exits first.
  const child: ResultPromise = execa(argv.file, argv.args, {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    reject: false,
    buffer: false,
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderrText = (stderrText + s).slice(-STDERR_LIMIT);
  });
  const exit = child.then((r) => {
    exited = true;
    return { code: r.exitCode, signal: r.signal };
  });
  // A spawn failure (ENOENT after findQemu, EACCES) rejects inside execa's result; normalise.
  const exitOrSpawnError = exit.catch((e: unknown) => {
    exited = true;
    return { code: undefined, signal: undefined, error: e as Error };
  });

  const describe = (what: string): string => {
    const tail = stderrText.trim().split('\n').slice(-5).join(' | ');
    return `QEMU (${argv.file}) ${what}${tail ? `: ${tail}` : ''}`;
  };

  let control: QmpClient;
  try {
    const readyMs = opts.readyTimeoutMs ?? 15_000;
    const died = exitOrSpawnError.then((r) => {
      const how = 'error' in r ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
      throw new Error(describe(`exited before QMP was ready (${how})`));
    });
    died.catch(() => {}); // Exits after QMP is ready are reported through `exit`, not here.
    control = await Promise.race([QmpClient.connect(controlSocket, { retryUntilMs: readyMs, timeoutMs: 10_000 }), died]);
  } catch (e) {
    child.kill('SIGKILL');
    await exitOrSpawnError;
    throw e instanceof Error && e.message.startsWith('QEMU') ? e : new Error(describe(`did not answer on QMP: ${(e as Error).message}`));
  }

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        // quit: QEMU replies, closes the monitors and exits 0. It may close the socket before
        // the reply arrives; either way the exit below is what counts.
        await control.execute('quit', undefined, { timeoutMs: 2_000 }).catch(() => {});
        if (!(await waitOrTimeout(exitOrSpawnError, 3_000))) {
          child.kill('SIGTERM');
          if (!(await waitOrTimeout(exitOrSpawnError, 3_000))) {
            child.kill('SIGKILL');
            await exitOrSpawnError;
          }
        }
      }
      control.close();
    })();
    return stopping;
  };

  return {
    pid: child.pid,
    argv,
    qmpSocket: opts.qmpSocket,
    control,
    stderr: () => stderrText,
    get exited() {
      return exited;
    },
    exit: exitOrSpawnError.then(({ code, signal }) => ({ code, signal })),
    stop,
  };
}
