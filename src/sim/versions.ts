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
  // ---- states and events ----
  /**
   * The source passes through `device` at switchover: between `active` and `postcopy-active`,
   * and between `active` and `completed` when precopy converges, with or without
   * pause-before-switchover. Since 10.0 ("migration: Always set DEVICE state"); 7.2 goes
   * straight from `active`.
   */
  readonly deviceState: boolean;
  /**
   * Source `migrate resume=true` goes postcopy-paused -> postcopy-recover-setup ->
   * postcopy-recover (since 9.1). Before, it stays postcopy-paused while connecting and goes
   * straight to postcopy-recover once connected.
   */
  readonly recoverSetupState: boolean;
  /**
   * The destination's migrate-incoming and migrate-recover send MIGRATION {status: setup}
   * whether or not the `events` capability is on, and without a state change after
   * migrate-recover (7.2's qemu_start_incoming_migration sends the event itself). Later
   * versions send it only as a real transition with `events` on.
   */
  readonly incomingSetupEventAlways: boolean;
  /**
   * The destination's query-migrate reports `setup` while it listens. 7.2 reports no status
   * until the source has connected (its fill_destination_migration_info returns early).
   */
  readonly incomingSetupReported: boolean;
  /**
   * A channel failure during the recovery handshake (postcopy-recover) lands both sides back
   * in postcopy-paused, ready for another recovery: since 8.2 ("migration: Allow network to
   * fail even during recovery"). Before, the source stays in postcopy-recover for good (its
   * migration thread waits for a bitmap nothing will post) and the destination crashes
   * (SIGSEGV) reading the channel it has just closed: the qemu-recover-hang lab.
   */
  readonly recoveryFailurePauses: boolean;
  // ---- capabilities and parameters known ----
  /** QEMU's MigrationCapability list in this version, in query-migrate-capabilities order. */
  readonly capabilities: readonly string[];
  /** QEMU's query-migrate-parameters reply in this version with its defaults (no TLS, 64-bit host). */
  readonly parameters: Readonly<Record<string, number | string | boolean>>;
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

// What `query-migrate-capabilities` / `query-migrate-parameters` answered on QEMU 7.2.22 and
// 10.0.2 (Debian builds, x86_64, KVM), in that order; the two lists share most of their rows.
const CAPS_COMMON = [
  'xbzrle', 'rdma-pin-all', 'auto-converge', 'zero-blocks',
  'events', 'postcopy-ram', 'x-colo', 'release-ram',
  'return-path', 'pause-before-switchover', 'multifd', 'dirty-bitmaps', 'postcopy-blocktime', 'late-block-activate',
  'x-ignore-shared', 'validate-uuid', 'background-snapshot', 'zero-copy-send', 'postcopy-preempt',
] as const;

const PARAMS_COMMON = {
  'announce-initial': 50,
  'announce-max': 550,
  'announce-rounds': 5,
  'announce-step': 100,
  'throttle-trigger-threshold': 50,
  'cpu-throttle-initial': 20,
  'cpu-throttle-increment': 10,
  'cpu-throttle-tailslow': false,
  'tls-creds': '',
  'tls-hostname': '',
  'tls-authz': '',
  'max-bandwidth': 134217728,
  'downtime-limit': 300,
  'x-checkpoint-delay': 20000,
  'multifd-channels': 2,
  'xbzrle-cache-size': 67108864,
  'max-postcopy-bandwidth': 0,
  'max-cpu-throttle': 99,
  'multifd-compression': 'none',
  'multifd-zlib-level': 1,
  'multifd-zstd-level': 1,
} as const;

export const VERSION_TRAITS: Readonly<Record<EmulatedVersion, VersionTraits>> = {
  '7.2': {
    version: { major: 7, minor: 2, micro: 0 },
    commands: COMMANDS_7_2,
    deviceState: false,
    recoverSetupState: false,
    incomingSetupEventAlways: true,
    incomingSetupReported: false,
    recoveryFailurePauses: false,
    capabilities: [...CAPS_COMMON.slice(0, 4), 'compress', ...CAPS_COMMON.slice(4, 8), 'block', ...CAPS_COMMON.slice(8)],
    parameters: {
      ...PARAMS_COMMON,
      'decompress-threads': 2,
      'compress-threads': 8,
      'compress-level': 1,
      'compress-wait-thread': true,
      'block-incremental': false,
    },
  },
  '10.0': {
    version: { major: 10, minor: 0, micro: 0 },
    commands: COMMANDS_10_0,
    deviceState: true,
    recoverSetupState: true,
    incomingSetupEventAlways: false,
    incomingSetupReported: true,
    recoveryFailurePauses: true,
    capabilities: [...CAPS_COMMON, 'switchover-ack', 'dirty-limit', 'mapped-ram'],
    parameters: {
      ...PARAMS_COMMON,
      'direct-io': false,
      'avail-switchover-bandwidth': 0,
      'zero-page-detection': 'multifd',
      'multifd-qatzip-level': 1,
      mode: 'normal',
      'vcpu-dirty-limit': 1,
      'x-vcpu-dirty-limit-period': 1000,
    },
  },
};

/** Parse a `--emulate` value; the error names what would be right. */
export function parseEmulatedVersion(s: string): EmulatedVersion {
  if ((EMULATED_VERSIONS as readonly string[]).includes(s)) return s as EmulatedVersion;
  throw new Error(`'${s}' is not a QEMU version the sim emulates (expected ${EMULATED_VERSIONS.join(' or ')})`);
}

/**
 * Whether QEMU `major.minor` lacks 8.2's "Allow network to fail even during recovery" (the
 * emulated versions' `recoveryFailurePauses`, for any version): a recovery channel that fails
 * leaves its source in postcopy-recover for good, and a destination refused there crashes.
 */
export function recoveryFailureStrands(major: number, minor: number): boolean {
  return major < 8 || (major === 8 && minor < 2);
}

export function traitsOf(v: EmulatedVersion): VersionTraits {
  return VERSION_TRAITS[v];
}

// ---- capabilities and parameters: which the sim models ----------------------------------

/** The QEMU capabilities the sim implements; every other one a version knows is listed but refused when set true. */
export const MODELLED_CAPABILITIES = ['events', 'postcopy-ram', 'return-path', 'postcopy-preempt', 'postcopy-blocktime', 'auto-converge', 'dirty-limit'] as const;
/** The sim's own capabilities, the same in every version. */
export const SIM_CAPABILITIES = ['x-recovery-walk', 'x-recovery-file', 'x-recovery-file-continuous', 'x-preempt-thread', 'x-preempt-thread-fifo'] as const;
/** The QEMU parameters the sim implements; every other one a version knows reports QEMU's default and only takes that value. */
export const MODELLED_PARAMETERS = [
  'max-bandwidth',
  'max-postcopy-bandwidth',
  'downtime-limit',
  // auto-converge and dirty-limit (src/sim/throttle.ts)
  'throttle-trigger-threshold',
  'cpu-throttle-initial',
  'cpu-throttle-increment',
  'cpu-throttle-tailslow',
  'max-cpu-throttle',
  'vcpu-dirty-limit',
  'x-vcpu-dirty-limit-period',
] as const;
/** The sim's own parameters, the same in every version. */
export const SIM_PARAMETERS = ['x-stall-timeout', 'x-walk-window', 'x-walk-rate', 'x-recovery-file-window'] as const;

/** Whether this version has parameter `name` (QEMU's list for it, or one of ours). */
export function parameterKnown(t: VersionTraits, name: string): boolean {
  return name in t.parameters || (SIM_PARAMETERS as readonly string[]).includes(name);
}

/** Every capability query-migrate-capabilities lists on this version: QEMU's, then ours. */
export function knownCapabilities(t: VersionTraits): string[] {
  return [...t.capabilities, ...SIM_CAPABILITIES];
}

/**
 * Why setting capability `name` to `state` is refused on this version, or null if the sim
 * takes it. A capability QEMU has but the sim does not implement may be set false (it is), not
 * true: silently accepting it would let a lab believe it was in effect.
 */
export function capabilityRefusal(t: VersionTraits, emulate: EmulatedVersion, name: string, state: boolean): string | null {
  if (!knownCapabilities(t).includes(name)) {
    return `Parameter 'capability' does not accept value '${name}' (QEMU ${emulate} and the sim know: ${knownCapabilities(t).join(', ')})`;
  }
  if (state && !(MODELLED_CAPABILITIES as readonly string[]).includes(name) && !(SIM_CAPABILITIES as readonly string[]).includes(name)) {
    return `Capability '${name}' exists in QEMU ${emulate} but the sim does not model it (it models: ${[...MODELLED_CAPABILITIES, ...SIM_CAPABILITIES].join(', ')})`;
  }
  return null;
}

/** QEMU's parameters of this version that the sim does not model, with the only value it takes. */
export function unmodelledParameters(t: VersionTraits): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {};
  for (const [k, v] of Object.entries(t.parameters)) if (!(MODELLED_PARAMETERS as readonly string[]).includes(k)) out[k] = v;
  return out;
}

/** Why setting unmodelled parameter `name` to `value` is refused, or null if it is QEMU's default (a no-op). */
export function parameterRefusal(t: VersionTraits, emulate: EmulatedVersion, name: string, value: unknown): string | null {
  const dflt = unmodelledParameters(t)[name];
  if (dflt === undefined || value === dflt) return null;
  return `Parameter '${name}' exists in QEMU ${emulate} but the sim does not model it: it keeps QEMU's default ${JSON.stringify(dflt)} (the sim models: ${[...MODELLED_PARAMETERS, ...SIM_PARAMETERS].join(', ')})`;
}

// ---- known, but not emulatable here ---------------------------------------------------------

/** A QEMU behaviour of a version the sim cannot emulate (none installed to check it against). */
export interface KnownLater {
  readonly state: string;
  /** The first QEMU release with it. */
  readonly since: string;
  readonly emulatable: false;
  /** The source's states around it, in order. */
  readonly sequence: readonly string[];
  readonly what: string;
  readonly reference: string;
}

export const KNOWN_LATER: readonly KnownLater[] = [
  {
    state: 'postcopy-device',
    since: '10.2',
    emulatable: false,
    sequence: ['active', 'device', 'postcopy-device', 'postcopy-active'],
    what:
      'A source state after the switchover to postcopy, until the destination confirms (a PONG to a ping sent ' +
      'just before POSTCOPY_RUN) that it loaded the device state and is about to start the guest. A failure in ' +
      'it fails the migration and the guest resumes on the source, because the destination never ran it. ' +
      'Skipped (device -> postcopy-active) without a return path. With 7.2 and 10.0 the same failure leaves ' +
      'the source postcopy-paused and the destination failed: the guest can run on neither side.',
    reference: 'qemu-devel, "[PULL 36/36] migration: Introduce POSTCOPY_DEVICE state" (Juraj Marcin, Nov 2025, for 10.2)',
  },
];
