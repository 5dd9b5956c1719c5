import { describe, expect, it } from 'vitest';
import { buildDomainXml, xmlEscape } from '../../../src/libvirt/domain-xml.js';

const base = {
  name: 'pcl-guest',
  memoryMiB: 64,
  rom: '/run/postcopy-lab/libvirt/r1/guest.rom',
  emulator: '/opt/qemu-10.0/bin/qemu-system-x86_64',
  qmpSocket: '/run/libvirt/pcl-qmp.sock',
  serialFile: '/var/log/libvirt/pcl-serial.log',
};

describe('the domain XML of the generated ROM guest', () => {
  const xml = buildDomainXml(base);

  it('boots the ROM as firmware with no disk, on a versioned machine, with ACPI', () => {
    expect(xml).toContain(`<loader type='rom'>${base.rom}</loader>`);
    expect(xml).not.toContain('<disk');
    expect(xml).toContain("machine='pc-i440fx-7.2'");
    expect(xml).toContain("<memory unit='MiB'>64</memory>");
    // Without <acpi/> libvirt 9.0 passes -no-acpi, which QEMU 10.0 rejects.
    expect(xml).toContain('<features><acpi/></features>');
    expect(xml).toContain(`<emulator>${base.emulator}</emulator>`);
    expect(xml).toContain("<domain type='kvm'");
  });

  it('has no USB controller, no balloon, no video', () => {
    expect(xml).toContain("<controller type='usb' model='none'/>");
    expect(xml).toContain("<memballoon model='none'/>");
    expect(xml).toContain("<model type='none'/>");
  });

  it('adds an extra QMP monitor through qemu:commandline, and COM1 to a file', () => {
    expect(xml).toContain("xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'");
    expect(xml).toContain("<qemu:arg value='-qmp'/>");
    expect(xml).toContain("<qemu:arg value='unix:/run/libvirt/pcl-qmp.sock,server=on,wait=off'/>");
    expect(xml).toContain("<serial type='file'><source path='/var/log/libvirt/pcl-serial.log'/></serial>");
  });

  it('escapes paths and refuses what QEMU or libvirt would misread', () => {
    expect(buildDomainXml({ ...base, rom: "/tmp/a&b'.rom" })).toContain('/tmp/a&amp;b&apos;.rom');
    expect(xmlEscape('<x>')).toBe('&lt;x&gt;');
    expect(() => buildDomainXml({ ...base, qmpSocket: '/run/a,b.sock' })).toThrow(/qmpSocket must not contain a comma/);
    expect(() => buildDomainXml({ ...base, rom: 'guest.rom' })).toThrow(/rom must be an absolute path/);
    expect(() => buildDomainXml({ ...base, name: 'a b' })).toThrow(/domain name "a b"/);
    expect(() => buildDomainXml({ ...base, memoryMiB: 8 })).toThrow(/memoryMiB must be an integer >= 16/);
    expect(() => buildDomainXml({ ...base, machine: "pc'" })).toThrow(/machine/);
  });

  it('can describe a TCG guest', () => {
    expect(buildDomainXml({ ...base, type: 'qemu' })).toContain("<domain type='qemu'");
  });
});
