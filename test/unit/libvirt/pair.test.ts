import { describe, expect, it } from 'vitest';
import { LibvirtPair } from '../../../src/libvirt/pair.js';

const network = { namespaces: { source: 'pcl-r1-src', destination: 'pcl-r1-dst' }, subnet: { sourceAddress: '10.213.0.1', destinationAddress: '10.213.0.2' } };

describe('the libvirt pair (without starting it)', () => {
  const pair = new LibvirtPair({ runId: 'r1', network, stateRoot: '/run/pcl-test' });

  it('keeps each side under its own directory of the run', () => {
    expect(pair.root).toBe('/run/pcl-test/r1');
    expect(pair.dir('source', 'etc')).toBe('/run/pcl-test/r1/src/etc');
    expect(pair.mountNamespace('destination')).toBe('/run/pcl-test/r1/dst.mnt');
  });

  it("maps a path as a daemon sees it to ours, and refuses one outside libvirt's bound paths", () => {
    expect(pair.hostPath('destination', '/run/libvirt/pcl-qmp.sock')).toBe('/run/pcl-test/r1/dst/run/pcl-qmp.sock');
    expect(pair.hostPath('source', '/var/log/libvirt/pcl-serial.log')).toBe('/run/pcl-test/r1/src/log/pcl-serial.log');
    expect(() => pair.hostPath('source', '/var/lib/libvirtd/x')).toThrow(/not under one of the paths bind-mounted/);
  });

  it('reaches a daemon by its unix socket, from inside a namespace, and the other side over TCP', () => {
    expect(pair.uri('source')).toBe('qemu+unix:///system?socket=/run/pcl-test/r1/src/run/libvirt-sock');
    expect(pair.tcpUri('destination')).toBe('qemu+tcp://10.213.0.2/system');
    expect(pair.virshArgv('destination', ['domstate', 'g'])).toEqual([
      'ip',
      'netns',
      'exec',
      'pcl-r1-src',
      'virsh',
      '-c',
      'qemu+unix:///system?socket=/run/pcl-test/r1/dst/run/libvirt-sock',
      'domstate',
      'g',
    ]);
  });

  it('refuses a run id that could escape its directory', () => {
    expect(() => new LibvirtPair({ runId: '../x', network })).toThrow(/runId/);
  });

  it('stops cleanly when it never started', async () => {
    await expect(new LibvirtPair({ runId: 'never', network, stateRoot: '/nonexistent-pcl' }).stop()).resolves.toBeUndefined();
  });
});
