/**
 * What differs between the QEMU versions the sim can emulate, in one place: the greeting,
 * the states each side passes through, which commands are allowed when and the error texts
 * they give, the events sent, and the capabilities and parameters known.
 *
 * Every row here was checked against the real QEMU of that version on the lab machine (the
 * QMP parity test, test/integration/qemu/qmp-parity.test.ts, runs the same commands against
 * both); where the sim still differs on purpose, the README's list of deliberate differences
 * says so. The sim's own extras (x-) are the same in every version.
 */

/** The QEMU versions the sim can emulate. The newest is the default. */
export const EMULATED_VERSIONS = ['7.2', '10.0'] as const;
export type EmulatedVersion = (typeof EMULATED_VERSIONS)[number];
export const DEFAULT_EMULATED_VERSION: EmulatedVersion = '10.0';

export interface VersionTraits {
  /** What query-version and the QMP greeting report. */
  readonly version: { readonly major: number; readonly minor: number; readonly micro: number };
  // ---- states and events (filled in by the sim-versions work) ----
  // ---- commands: allowed when, error texts (filled in by the QMP parity work) ----
  readonly commands: CommandTraits;
}

// ---- commands: which are allowed when, and their error texts -------------------------------
// Recorded from QEMU 7.2.22 and 10.0.2 by test/integration/qemu/qmp-parity.test.ts (its TABLE
// has every row, including the many where the versions agree).

export interface CommandTraits {
  /** migrate / migrate-incoming without `uri`: 7.2 requires it; 9.0+ takes `uri` or `channels`. */
  readonly uriMissing: string;
  /** Whether migrate-pause also works while a recovery is under way (8.2+), not only in postcopy-active. */
  readonly pauseWhileRecovering: boolean;
  /** migrate-pause refused. */
  readonly pauseRefused: string;
  /**
   * migrate_cancel on the source in postcopy. 10.0 refuses with this text; 7.2 accepts and its
   * source sits in `cancelling` for good (the sim refuses there too: the README's deliberate
   * differences say why).
   */
  readonly postcopyCancelRefused: string;
}

const COMMANDS_7_2: CommandTraits = {
  uriMissing: "Parameter 'uri' is missing",
  pauseWhileRecovering: false,
  pauseRefused: 'migrate-pause is currently only supported during postcopy-active state',
  postcopyCancelRefused: 'Postcopy migration in progress, cannot cancel.',
};

const COMMANDS_10_0: CommandTraits = {
  uriMissing: "need either 'uri' or 'channels' argument",
  pauseWhileRecovering: true,
  pauseRefused: 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state',
  postcopyCancelRefused: 'Postcopy migration in progress, cannot cancel.',
};

export const VERSION_TRAITS: Readonly<Record<EmulatedVersion, VersionTraits>> = {
  '7.2': {
    version: { major: 7, minor: 2, micro: 0 },
    commands: COMMANDS_7_2,
  },
  '10.0': {
    version: { major: 10, minor: 0, micro: 0 },
    commands: COMMANDS_10_0,
  },
};

/** Parse a `--emulate` value; the error names what would be right. */
export function parseEmulatedVersion(s: string): EmulatedVersion {
  if ((EMULATED_VERSIONS as readonly string[]).includes(s)) return s as EmulatedVersion;
  throw new Error(`'${s}' is not a QEMU version the sim emulates (expected ${EMULATED_VERSIONS.join(' or ')})`);
}

export function traitsOf(v: EmulatedVersion): VersionTraits {
  return VERSION_TRAITS[v];
}
