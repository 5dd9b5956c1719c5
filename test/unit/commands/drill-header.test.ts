import { describe, expect, it } from 'vitest';
import { backendLabel } from '../../../src/commands/drill.js';
import { LibvirtBackend } from '../../../src/driver/libvirt-backend.js';
import { SimBackend } from '../../../src/driver/sim-backend.js';

describe("the drill header's backend", () => {
  const version = { major: 7, minor: 2, text: 'QEMU emulator version 7.2.0' };

  it("names libvirt's version and the QEMU it runs apart", () => {
    expect(backendLabel(new LibvirtBackend({ emulator: '/usr/bin/qemu-system-x86_64', version, libvirtVersion: '9.0' }))).toBe('backend libvirt 9.0, QEMU 7.2');
  });

  it("still says which number is QEMU's when libvirt's is unknown (remote hosts)", () => {
    expect(backendLabel(new LibvirtBackend({ version }))).toBe('backend libvirt, QEMU 7.2');
  });

  it('the sim says which QEMU it behaves as', () => {
    expect(backendLabel(new SimBackend('7.2'))).toBe('sim as QEMU 7.2');
  });
});
