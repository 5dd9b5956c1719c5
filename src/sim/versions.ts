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
}

export const VERSION_TRAITS: Readonly<Record<EmulatedVersion, VersionTraits>> = {
  '7.2': {
    version: { major: 7, minor: 2, micro: 0 },
  },
  '10.0': {
    version: { major: 10, minor: 0, micro: 0 },
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
