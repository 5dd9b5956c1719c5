/**
 * The errors the kernel link raises. Each one carries enough to print a useful line: the
 * command that failed and the kernel's own words, the field that was refused and its valid
 * range, or the missing piece and how to get it.
 */

/** A command (ip, tc, nft, ...) exited non-zero, could not be started, or timed out. */
export class KernelCommandError extends Error {
  override readonly name = 'KernelCommandError';
  readonly argv: readonly string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  readonly stdout: string;
  /** Node's error code when the program could not be started at all (e.g. 'ENOENT'). */
  readonly code: string | undefined;

  constructor(init: { argv: readonly string[]; exitCode?: number; stderr?: string; stdout?: string; code?: string; message?: string }) {
    const stderr = (init.stderr ?? '').trim();
    const shown = init.argv.join(' ');
    const why =
      init.message ??
      (init.code === 'ENOENT'
        ? `${init.argv[0]} is not installed (or not on PATH)`
        : stderr || `exit code ${init.exitCode ?? 'unknown'}`);
    super(`${shown}: ${why}`);
    this.argv = init.argv;
    this.exitCode = init.exitCode;
    this.stderr = stderr;
    this.stdout = init.stdout ?? '';
    this.code = init.code;
  }
}

/** Input refused before anything was run: a bad name, a unit out of range. */
export class KernelValidationError extends Error {
  override readonly name = 'KernelValidationError';
  constructor(
    /** The field that was refused, as the caller named it (e.g. `bytesPerSec`). */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The machine cannot do what was asked (not root, no sch_netem, no nft); `fix` says how to get it. */
export class KernelUnsupportedError extends Error {
  override readonly name = 'KernelUnsupportedError';
  constructor(
    message: string,
    readonly fix?: string,
  ) {
    super(message);
  }
}

/**
 * A fault failed midway. Whatever it had already changed was undone (best effort): `rolledBack`
 * says whether the undo itself went through, `rollbackErrors` lists what could not be undone.
 */
export class KernelApplyError extends Error {
  override readonly name = 'KernelApplyError';
  constructor(
    message: string,
    override readonly cause: unknown,
    readonly rolledBack: boolean,
    readonly rollbackErrors: readonly unknown[] = [],
  ) {
    super(message);
  }
}

/**
 * The answers ip/tc/nft give when the thing to remove is already gone. Teardown ignores them so
 * that it can run any number of times. "Cannot delete qdisc with handle of zero" is what tc says
 * when asked to delete the root qdisc of a device that only has its default one.
 */
const NOT_EXIST_PATTERNS: readonly RegExp[] = [
  /Cannot find device/i,
  /does not exist/i,
  /No such file or directory/i,
  /Cannot open network namespace/i,
  /Cannot delete qdisc with handle of zero/i,
];

/** True when `err` is a failed command whose only complaint is that its target is already gone. */
export function isNotExist(err: unknown): boolean {
  if (!(err instanceof KernelCommandError)) return false;
  if (err.code === 'ENOENT') return false; // the tool itself is missing: not "already gone"
  const text = `${err.stderr}\n${err.stdout}`;
  return NOT_EXIST_PATTERNS.some((re) => re.test(text));
}
