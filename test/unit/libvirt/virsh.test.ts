import { describe, expect, it } from 'vitest';
import {
  isPostcopyFailed,
  libvirtSupportsResume,
  migrateArgs,
  parseDomjobinfo,
  parseDomstate,
  parseLibvirtVersion,
  parseSize,
  resumeArgs,
  tcpUri,
  unixUri,
  virsh,
} from '../../../src/libvirt/virsh.js';

describe('virsh argv', () => {
  it('connects by URI, as an argument array', () => {
    expect(virsh(unixUri('/run/x/src/run/libvirt-sock'), 'domstate', '--reason', 'g')).toEqual([
      'virsh',
      '-c',
      'qemu+unix:///system?socket=/run/x/src/run/libvirt-sock',
      'domstate',
      '--reason',
      'g',
    ]);
    expect(tcpUri('10.213.0.2')).toBe('qemu+tcp://10.213.0.2/system');
    expect(tcpUri('10.213.0.2', 16600)).toBe('qemu+tcp://10.213.0.2:16600/system');
    expect(() => unixUri('/run/a b/sock')).toThrow(/must be absolute and use only/);
    expect(() => tcpUri('host')).toThrow(/not an IPv4 address/);
  });

  it('spells the migration as an operator types it', () => {
    expect(migrateArgs({ domain: 'g', destUri: 'qemu+tcp://10.213.0.2/system', postcopyAfterPrecopy: true, bandwidthMiB: 20, postcopyBandwidthMiB: 2 })).toEqual([
      'migrate',
      '--live',
      '--postcopy',
      '--postcopy-after-precopy',
      '--bandwidth',
      '20',
      '--postcopy-bandwidth',
      '2',
      'g',
      'qemu+tcp://10.213.0.2/system',
    ]);
    expect(resumeArgs({ domain: 'g', destUri: 'qemu+tcp://d/system', p2p: true })).toEqual(['migrate', '--live', '--postcopy', '--postcopy-resume', '--p2p', 'g', 'qemu+tcp://d/system']);
    expect(() => migrateArgs({ domain: 'g', destUri: 'u', bandwidthMiB: 0.5 })).toThrow(/--bandwidth is whole MiB\/s/);
  });
});

describe('virsh output', () => {
  it('reads domstate --reason', () => {
    expect(parseDomstate('paused (post-copy failed)\n\n')).toEqual({ state: 'paused', reason: 'post-copy failed' });
    expect(parseDomstate('shut off (migrated)')).toEqual({ state: 'shut off', reason: 'migrated' });
    expect(parseDomstate('running')).toEqual({ state: 'running', reason: null });
    expect(isPostcopyFailed(parseDomstate('running (post-copy failed)'))).toBe(true);
    expect(isPostcopyFailed(parseDomstate('running (post-copy)'))).toBe(false);
    expect(() => parseDomstate('\n')).toThrow(/printed nothing/);
  });

  it('reads domjobinfo as libvirt 9.0 prints it during postcopy', () => {
    const out = [
      'Job type:         Unbounded   ',
      'Operation:        Outgoing migration',
      'Time elapsed:     9249         ms',
      'Data processed:   60.946 MiB',
      'Data remaining:   60.496 MiB',
      'Data total:       64.320 MiB',
      'Memory bandwidth: 1.957 MiB/s',
      'Postcopy requests: 18          ',
      '',
    ].join('\n');
    const j = parseDomjobinfo(out);
    expect(j.jobType).toBe('Unbounded');
    expect(j.fields.Operation).toBe('Outgoing migration');
    expect(j.timeElapsedMs).toBe(9249);
    expect(j.dataTotal).toBe(Math.round(64.32 * 1024 * 1024));
    expect(j.dataRemaining).toBe(Math.round(60.496 * 1024 * 1024));
    expect(j.memoryBandwidth).toBe(Math.round(1.957 * 1024 * 1024));
    expect(j.postcopyRequests).toBe(18);
    expect(parseDomjobinfo('Job type:         None        \n').dataTotal).toBeNull();
    expect(parseSize('3 parsecs')).toBeNull();
  });

  it('knows which libvirt has --postcopy-resume (8.5+)', () => {
    expect(parseLibvirtVersion('9.0.0\n')).toEqual({ major: 9, minor: 0, micro: 0 });
    expect(libvirtSupportsResume({ major: 8, minor: 4 })).toBe(false);
    expect(libvirtSupportsResume({ major: 8, minor: 5 })).toBe(true);
    expect(libvirtSupportsResume({ major: 9, minor: 0 })).toBe(true);
    expect(() => parseLibvirtVersion('nope')).toThrow(/cannot read a libvirt version/);
  });
});
