/**
 * scripts/provision.sh installs libvirt for the libvirt backend without starting the system
 * daemon: --help says so, and a dry run either finds the packages or says it would install
 * them behind a policy-rc.d. The policy file itself is checked by reading the script: a real
 * install cannot run in a test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const SCRIPT = path.resolve('scripts/provision.sh');
const isDebian = fs.existsSync('/etc/os-release') && /^ID(_LIKE)?=.*(debian|ubuntu)/m.test(fs.readFileSync('/etc/os-release', 'utf8'));

describe('provision.sh: libvirt for the libvirt backend', () => {
  it('--help names the libvirt packages and that the system libvirtd is not started', async () => {
    const r = await execa('bash', [SCRIPT, '--help']);
    expect(r.stdout).toMatch(/libvirt-daemon-system and libvirt-clients \(the system\s+libvirtd is not started\)/);
  });

  it.skipIf(!isDebian)('a dry run finds libvirt installed, or would install it with services held back', async () => {
    const r = await execa('bash', [SCRIPT, '--ci', '--dry-run', '--no-qemu10'], { reject: false, timeout: 60_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/already installed: libvirt-daemon-system libvirt-clients|would install libvirt-\S+.* with a policy-rc.d that keeps the system libvirtd stopped/);
  });

  it('holds services back with exit 101 in policy-rc.d, and removes only a policy it wrote', () => {
    const text = fs.readFileSync(SCRIPT, 'utf8');
    expect(text).toContain("policy=/usr/sbin/policy-rc.d");
    expect(text).toMatch(/exit 101/);
    expect(text).toMatch(/if \[ ! -e "\$policy" \]; then/);
  });
});
