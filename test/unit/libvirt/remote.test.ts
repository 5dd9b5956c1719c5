import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLab } from '../../../src/lab/load.js';
import { buildDomainXml } from '../../../src/libvirt/domain-xml.js';
import { linkFaultsOf, parseHypervisorVersion, parseLibvirtUri, parseRemoteHosts, remoteLabProblem, RemoteUriError } from '../../../src/libvirt/remote.js';

const LABS = path.join(import.meta.dirname, '../../../labs');
const A = 'qemu+ssh://root@host-a/system';
const B = 'qemu+ssh://root@host-b/system';

describe('parseLibvirtUri', () => {
  it('takes the remote transports, with user, port and libvirt options', () => {
    expect(parseLibvirtUri(A, '--source-uri')).toEqual({ uri: A, transport: 'ssh', user: 'root', host: 'host-a', port: null });
    expect(parseLibvirtUri('qemu+tcp://10.213.100.12:16509/system', '--dest-uri')).toMatchObject({ transport: 'tcp', user: null, host: '10.213.100.12', port: 16509 });
    expect(parseLibvirtUri('qemu+ssh://vagrant@pcl-host-b/system?keyfile=/root/.ssh/id_ed25519&no_verify=1', '--dest-uri')).toMatchObject({ host: 'pcl-host-b', user: 'vagrant' });
  });

  it.each([
    ['qemu:///system', /a URI without a transport is the local daemon; use qemu\+ssh/],
    ['qemu://host-a/system', /without a transport is the local daemon/],
    ['qemu+unix:///system', /transport 'unix' is not one libvirt reaches another host with/],
    ['qemu+ssh://host-a/session', /the path must be \/system/],
    ['qemu+ssh://host-a', /the path must be \/system/],
    ['qemu+ssh:///system', /no host: a remote URI names the host/],
    ['xen+ssh://host-a/system', /not a libvirt URI; expected the form qemu\+ssh:\/\/root@host-a\/system/],
    ['host-a', /not a libvirt URI/],
    ['qemu+ssh://ho_st/system', /'ho_st' is not a host name or address/],
    ['qemu+ssh://host-a:70000/system', /port 70000 must be from 1 to 65535/],
    ['qemu+ssh://host-a/system?keyfile=$(id)', /shell characters/],
  ])('%s is refused, naming what is wrong and what is right', (uri, why) => {
    expect(() => parseLibvirtUri(uri, '--source-uri')).toThrow(RemoteUriError);
    expect(() => parseLibvirtUri(uri, '--source-uri')).toThrow(why);
    expect(() => parseLibvirtUri(uri, '--source-uri')).toThrow(`--source-uri ${JSON.stringify(uri)}`);
  });
});

describe('parseRemoteHosts', () => {
  it('is null without URIs (the local pair), a pair with both', () => {
    expect(parseRemoteHosts({ backend: 'libvirt' })).toBeNull();
    expect(parseRemoteHosts({ backend: 'libvirt', sourceUri: A, destUri: B })).toMatchObject({ source: { host: 'host-a' }, destination: { host: 'host-b' } });
    expect(parseRemoteHosts({ backend: 'libvirt', sourceUri: A, destUri: B, link: 'none' })).not.toBeNull();
  });

  it('refuses one URI without the other, naming the missing one', () => {
    expect(() => parseRemoteHosts({ backend: 'libvirt', sourceUri: A })).toThrow(/--source-uri needs --dest-uri too/);
    expect(() => parseRemoteHosts({ backend: 'libvirt', destUri: B })).toThrow(/--dest-uri needs --source-uri too/);
  });

  it('refuses another backend, the same host twice, and a link it cannot run there', () => {
    expect(() => parseRemoteHosts({ backend: 'qemu', sourceUri: A, destUri: B })).toThrow(/need --backend libvirt \(got --backend qemu\)/);
    expect(() => parseRemoteHosts({ backend: 'libvirt', sourceUri: A, destUri: 'qemu+tcp://host-a/system' })).toThrow(/both name host-a: libvirt refuses to migrate a guest to the host it runs on/);
    expect(() => parseRemoteHosts({ backend: 'libvirt', sourceUri: A, destUri: B, link: 'kernel' })).toThrow(/--link kernel: .*the link is none \(leave --link out, or say --link none\)/);
    expect(() => parseRemoteHosts({ backend: 'libvirt', sourceUri: A, destUri: B, link: 'relay' })).toThrow(/--link relay/);
  });
});

describe('remote labs', () => {
  it('refuses a lab that breaks the link, naming its steps and the lab that runs', async () => {
    const lab = await findLab('libvirt-postcopy-recovery', LABS);
    expect(linkFaultsOf(lab)).toEqual(['step 3 (cut)', 'step 4 (restore)']);
    expect(remoteLabProblem(lab)).toMatch(/^lab 'libvirt-postcopy-recovery' changes the link \(step 3 \(cut\), step 4 \(restore\)\).*Run it on the local pair.*libvirt-postcopy-pause\.$/);
  });

  it('takes libvirt-postcopy-pause (its fault is an operator command)', async () => {
    expect(remoteLabProblem(await findLab('libvirt-postcopy-pause', LABS))).toBeUndefined();
  });
});

describe('parseHypervisorVersion', () => {
  it("reads virsh version's running hypervisor, and says what it got otherwise", () => {
    const out = 'Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\n';
    expect(parseHypervisorVersion(out, A)).toMatchObject({ major: 7, minor: 2 });
    expect(() => parseHypervisorVersion('Running hypervisor: Xen 4.17\n', A)).toThrow(/names no QEMU.*Xen 4\.17/);
  });
});

describe('the remote domain', () => {
  it('has no extra QMP socket, no serial file, and leaves the emulator to the daemon', () => {
    const xml = buildDomainXml({ name: 'pcl-guest', memoryMiB: 64, rom: '/var/lib/libvirt/postcopy-lab-x/guest.rom' });
    expect(xml).not.toContain('qemu:commandline');
    expect(xml).not.toContain('<emulator>');
    expect(xml).not.toContain('<serial');
    expect(xml).toContain("<loader type='rom'>/var/lib/libvirt/postcopy-lab-x/guest.rom</loader>");
  });
});
