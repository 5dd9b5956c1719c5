import { describe, expect, it } from 'vitest';
import { LibvirtConfigError, newHostUuid, renderLibvirtdConf, renderQemuConf } from '../../../src/libvirt/config.js';

const base = { listenAddress: '10.213.0.1', hostUuid: '5f0c1a2b-0000-4000-8000-000000000001', logFile: '/var/log/libvirt/libvirtd.log' };

describe('libvirtd.conf', () => {
  it('listens on TCP on the namespace address only, without auth, with the given host UUID', () => {
    const text = renderLibvirtdConf(base);
    expect(text).toContain('listen_tcp = 1');
    expect(text).toContain('listen_tls = 0');
    expect(text).toContain('listen_addr = "10.213.0.1"');
    expect(text).toContain('auth_tcp = "none"');
    expect(text).toContain('host_uuid = "5f0c1a2b-0000-4000-8000-000000000001"');
    expect(text).toContain('tcp_port = "16509"');
    expect(text).toContain('log_outputs = "3:file:/var/log/libvirt/libvirtd.log"');
  });

  it('refuses what libvirt would misread or reject, saying what is expected', () => {
    expect(() => renderLibvirtdConf({ ...base, listenAddress: '10.213.0.300' })).toThrow(/listenAddress "10.213.0.300" is not an IPv4 address/);
    expect(() => renderLibvirtdConf({ ...base, hostUuid: 'not-a-uuid' })).toThrow(LibvirtConfigError);
    expect(() => renderLibvirtdConf({ ...base, hostUuid: '11111111-1111-1111-1111-111111111111' })).toThrow(/all digits the same/);
    expect(() => renderLibvirtdConf({ ...base, logFile: '/var/log/"x' })).toThrow(/quote/);
    expect(() => renderLibvirtdConf({ ...base, tcpPort: 70000 })).toThrow(/tcpPort must be a port number/);
  });

  it('gives each daemon its own host UUID (libvirt refuses to migrate to "the same host")', () => {
    const a = newHostUuid();
    const b = newHostUuid();
    expect(a).not.toBe(b);
    expect(() => renderLibvirtdConf({ ...base, hostUuid: a })).not.toThrow();
  });
});

describe('qemu.conf', () => {
  it('has no security driver, no cgroup controllers, a fixed migration port range on the namespace address', () => {
    const text = renderQemuConf({ listenAddress: '10.213.0.2' });
    expect(text).toContain('security_driver = "none"');
    expect(text).toContain('cgroup_controllers = [ ]');
    expect(text).toContain('migration_address = "10.213.0.2"');
    expect(text).toContain('migration_host = "10.213.0.2"');
    expect(text).toMatch(/migration_port_min = 49152\nmigration_port_max = 49160/);
    expect(text).toContain('stdio_handler = "file"');
    expect(text).toContain('namespaces = [ ]');
  });

  it('refuses an inverted port range', () => {
    expect(() => renderQemuConf({ listenAddress: '10.213.0.2', migrationPortMin: 50000, migrationPortMax: 49999 })).toThrow(/migrationPortMax \(49999\) must not be below migrationPortMin \(50000\)/);
  });
});
