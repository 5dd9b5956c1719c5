import { describe, expect, it } from 'vitest';
import { libvirtChecks } from '../../../src/libvirt/doctor.js';

const all = { libvirtd: true, virshVersion: '9.0.0', nsenter: true, unshare: true };

describe('doctor: the libvirt backend', () => {
  it('is ok with libvirt 9.0 and the namespace tools', () => {
    expect(libvirtChecks(all)).toEqual([{ id: 'libvirt', title: 'libvirt (--backend libvirt)', status: 'ok', detail: 'libvirt 9.0.0 (>= 8.5: --postcopy-resume)' }]);
  });

  it('warns that a libvirt before 8.5 cannot resume a failed postcopy', () => {
    const [c] = libvirtChecks({ ...all, virshVersion: '8.4.0' });
    expect(c.status).toBe('warn');
    expect(c.detail).toMatch(/has no `virsh migrate --postcopy-resume` \(added in 8\.5\)/);
  });

  it('names what is missing and how to install it', () => {
    const [c] = libvirtChecks({ ...all, libvirtd: false, virshVersion: null });
    expect(c.detail).toMatch(/^no \/usr\/sbin\/libvirtd, no virsh/);
    expect(c.fix).toMatch(/libvirt-daemon-system libvirt-clients/);
    expect(libvirtChecks({ ...all, nsenter: false }).find((x) => x.id === 'libvirt-namespaces')?.detail).toMatch(/missing nsenter/);
  });
});
