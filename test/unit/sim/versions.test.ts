/**
 * The per-version table: the traits each version has (as seen on QEMU 7.2.22 and 10.0.2 on the
 * lab machine), the capability and parameter lists, and what the sim refuses to pretend.
 */
import { describe, expect, it } from 'vitest';
import {
  capabilityRefusal,
  DEFAULT_EMULATED_VERSION,
  knownCapabilities,
  KNOWN_LATER,
  MODELLED_CAPABILITIES,
  MODELLED_PARAMETERS,
  parameterRefusal,
  parseEmulatedVersion,
  traitsOf,
  unmodelledParameters,
} from '../../../src/sim/versions.js';

describe('emulated QEMU versions', () => {
  it('the default is the newest', () => {
    expect(DEFAULT_EMULATED_VERSION).toBe('10.0');
    expect(() => parseEmulatedVersion('9.2')).toThrow("'9.2' is not a QEMU version the sim emulates (expected 7.2 or 10.0)");
  });

  it('7.2: no device state, no postcopy-recover-setup, the setup event on every listen, setup not reported', () => {
    const t = traitsOf('7.2');
    expect(t.version).toEqual({ major: 7, minor: 2, micro: 0 });
    expect([t.deviceState, t.recoverSetupState, t.incomingSetupEventAlways, t.incomingSetupReported]).toEqual([false, false, true, false]);
  });

  it('10.0: device at switchover, postcopy-recover-setup, setup reported as a state', () => {
    const t = traitsOf('10.0');
    expect(t.version).toEqual({ major: 10, minor: 0, micro: 0 });
    expect([t.deviceState, t.recoverSetupState, t.incomingSetupEventAlways, t.incomingSetupReported]).toEqual([true, true, false, true]);
  });

  it("lists QEMU's capabilities of each version in QEMU's order, then ours", () => {
    expect(knownCapabilities(traitsOf('7.2'))).toEqual(
      'xbzrle rdma-pin-all auto-converge zero-blocks compress events postcopy-ram x-colo release-ram block return-path pause-before-switchover multifd dirty-bitmaps postcopy-blocktime late-block-activate x-ignore-shared validate-uuid background-snapshot zero-copy-send postcopy-preempt x-recovery-walk x-recovery-file x-recovery-file-continuous x-preempt-thread x-preempt-thread-fifo'.split(' '),
    );
    expect(knownCapabilities(traitsOf('10.0'))).toEqual(
      'xbzrle rdma-pin-all auto-converge zero-blocks events postcopy-ram x-colo release-ram return-path pause-before-switchover multifd dirty-bitmaps postcopy-blocktime late-block-activate x-ignore-shared validate-uuid background-snapshot zero-copy-send postcopy-preempt switchover-ack dirty-limit mapped-ram x-recovery-walk x-recovery-file x-recovery-file-continuous x-preempt-thread x-preempt-thread-fifo'.split(' '),
    );
    // Every capability the sim models is known to each version, except dirty-limit (8.1+).
    for (const c of MODELLED_CAPABILITIES) expect(knownCapabilities(traitsOf('10.0'))).toContain(c);
    expect(MODELLED_CAPABILITIES.filter((c) => !knownCapabilities(traitsOf('7.2')).includes(c))).toEqual(['dirty-limit']);
  });

  it('refuses a capability the version lacks, and one it has but the sim does not model when set true', () => {
    const t72 = traitsOf('7.2');
    expect(capabilityRefusal(t72, '7.2', 'switchover-ack', false)).toMatch(/does not accept value 'switchover-ack'/);
    expect(capabilityRefusal(traitsOf('10.0'), '10.0', 'compress', true)).toMatch(/does not accept value 'compress'/);
    expect(capabilityRefusal(t72, '7.2', 'xbzrle', true)).toBe(
      "Capability 'xbzrle' exists in QEMU 7.2 but the sim does not model it (it models: events, postcopy-ram, return-path, postcopy-preempt, postcopy-blocktime, auto-converge, dirty-limit, x-recovery-walk, x-recovery-file, x-recovery-file-continuous, x-preempt-thread, x-preempt-thread-fifo)",
    );
    expect(capabilityRefusal(t72, '7.2', 'xbzrle', false)).toBeNull();
    expect(capabilityRefusal(t72, '7.2', 'postcopy-ram', true)).toBeNull();
    expect(capabilityRefusal(t72, '7.2', 'x-recovery-walk', true)).toBeNull();
  });

  it("knows each version's parameters; the unmodelled ones only take QEMU's default", () => {
    expect(Object.keys(traitsOf('7.2').parameters)).toContain('block-incremental');
    expect(Object.keys(traitsOf('10.0').parameters)).not.toContain('block-incremental');
    expect(Object.keys(traitsOf('10.0').parameters)).toContain('zero-page-detection');
    for (const v of ['7.2', '10.0'] as const) {
      const t = traitsOf(v);
      for (const p of MODELLED_PARAMETERS) {
        // dirty-limit's parameters came with it in 8.1.
        if (v === '7.2' && (p === 'vcpu-dirty-limit' || p === 'x-vcpu-dirty-limit-period')) expect(t.parameters).not.toHaveProperty(p);
        else expect(t.parameters).toHaveProperty(p);
        expect(unmodelledParameters(t)).not.toHaveProperty(p);
      }
      expect(parameterRefusal(t, v, 'xbzrle-cache-size', 67108864)).toBeNull();
      expect(parameterRefusal(t, v, 'xbzrle-cache-size', 1024)).toMatch(/'xbzrle-cache-size' exists in QEMU .* but the sim does not model it: it keeps QEMU's default 67108864/);
    }
  });

  it('records postcopy-device (10.2) as known but not emulatable', () => {
    const pd = KNOWN_LATER.find((k) => k.state === 'postcopy-device');
    expect(pd?.since).toBe('10.2');
    expect(pd?.emulatable).toBe(false);
    expect(pd?.sequence).toEqual(['active', 'device', 'postcopy-device', 'postcopy-active']);
  });
});
