import { describe, expect, it } from 'vitest';
import { buildDoctorReport, formatDoctor, netemFix, type QemuFound } from '../../../src/kernel/doctor.js';
import type { KernelProbe } from '../../../src/kernel/probe.js';

function probe(over: Partial<KernelProbe> = {}): KernelProbe {
  return {
    kernelRelease: '6.1.0-18-amd64',
    distro: { id: 'debian', idLike: [], prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    moduleTree: true,
    root: true,
    uid: 0,
    tools: {
      ip: { present: true, version: 'iproute2-6.1.0' },
      tc: { present: true, version: 'iproute2-6.1.0' },
      nft: { present: true, version: 'nftables v1.0.6' },
      modprobe: { present: true },
      qemu: { present: false },
    },
    netns: { ok: true, detail: 'created and removed pcl-probe-1-abc' },
    qdiscs: {
      netem: { ok: false, detail: 'Error: Specified qdisc kind is unknown.' },
      tbf: { ok: true, detail: 'added and removed on a veth end' },
      htb: { ok: true, detail: 'added and removed on a veth end' },
    },
    nftables: { ok: true, detail: 'created an inet table in a scratch namespace' },
    kvm: { ok: false, detail: '/dev/kvm does not exist' },
    leftovers: {
      namespaces: [{ name: 'pcl-old-src', runId: 'old', active: false, pids: [] }],
      nftTables: [],
      staleMarkers: [],
      runtimeDirs: [],
      notes: [],
    },
    ...over,
  };
}

describe('formatDoctor', () => {
  it('renders a checklist with fixes and a leftovers warning', () => {
    const text = formatDoctor(buildDoctorReport(probe()), { color: false });
    expect(text).toBe(
      [
        'postcopy-lab doctor: kernel 6.1.0-18-amd64, Debian GNU/Linux 12 (bookworm)',
        '',
        '  ✓ root                                 running as uid 0',
        '  ✓ ip                                   iproute2-6.1.0',
        '  ✓ tc                                   iproute2-6.1.0',
        '  ✓ nft                                  nftables v1.0.6',
        '  ✓ network namespaces                   created and removed pcl-probe-1-abc',
        '  ✗ qdisc netem (latency, jitter, loss)  Error: Specified qdisc kind is unknown.',
        '                                         fix: modprobe sch_netem (the stock Debian kernel ships sch_netem), or use --link relay for latency, jitter and loss',
        '  ✓ qdisc tbf (rate)                     added and removed on a veth end',
        '  ✓ qdisc htb (not used by the link)     added and removed on a veth end',
        '  ✓ nftables (blackhole, cut)            created an inet table in a scratch namespace',
        '  ! /dev/kvm (QEMU backend)              /dev/kvm does not exist',
        '                                         fix: modprobe kvm_intel or modprobe kvm_amd (enable VT-x/AMD-V in firmware; inside a VM, enable nested virtualization); without it QEMU runs with TCG, slowly',
        '  ! qemu-system-x86_64 (QEMU backend)    not installed; the sim backend does not need it',
        '                                         fix: apt-get install -y qemu-system-x86 (scripts/provision.sh --ci also unpacks QEMU 10.0 beside it on Debian 12)',
        '  ! leftovers                            1 left by runs that did not clean up: pcl-old-src',
        '                                         fix: postcopy-lab cleanup',
        '',
        'Kernel link (--link kernel): bandwidth, blackhole, cut, flap, down work; latency, jitter, loss need sch_netem (use --link relay for those).',
        '',
      ].join('\n'),
    );
  });

  it('colours only when asked', () => {
    const r = buildDoctorReport(probe());
    expect(formatDoctor(r, { color: true })).toContain('\x1b[32m✓\x1b[0m');
    expect(formatDoctor(r, { color: false })).not.toContain('\x1b[');
  });

  it('not root: the probes are skipped and the kernel link is reported unavailable', () => {
    const skipped = { ok: null, detail: 'needs root to create a scratch network namespace' };
    const r = buildDoctorReport(
      probe({ root: false, uid: 1000, netns: skipped, qdiscs: { netem: skipped, tbf: skipped, htb: skipped }, nftables: skipped }),
    );
    const text = formatDoctor(r, { color: false });
    expect(text).toMatch(/✗ root +running as uid 1000/);
    expect(text).toMatch(/fix: run with sudo, or use --link relay/);
    expect(text).toMatch(/- network namespaces +needs root/);
    expect(text).toMatch(/Kernel link \(--link kernel\): not available here/);
    expect(r.kernelLink.usable).toBe(false);
  });

  it('lists the socket directory of a killed run as a leftover, even without root', () => {
    const r = buildDoctorReport(
      probe({
        root: false,
        uid: 1000,
        leftovers: {
          namespaces: [],
          nftTables: [],
          staleMarkers: [],
          runtimeDirs: [
            { path: '/tmp/postcopy-lab-AbC123', ownerPid: 4242, active: false },
            { path: '/tmp/postcopy-lab-Live99', ownerPid: 1, active: true },
          ],
          notes: ['could not list nft tables: Operation not permitted'],
        },
      }),
    );
    const check = r.checks.find((c) => c.id === 'leftovers')!;
    expect(check.status).toBe('warn');
    expect(check.detail).toBe('1 left by runs that did not clean up: runtime directory /tmp/postcopy-lab-AbC123');
    expect(check.fix).toBe('postcopy-lab cleanup');
  });

  it('gives the fix that fits the distribution and the kernel', () => {
    expect(netemFix(probe({ distro: { id: 'ubuntu', idLike: ['debian'], prettyName: 'Ubuntu' } }))).toMatch(/^apt-get install -y linux-modules-extra-\$\(uname -r\) && modprobe sch_netem/);
    expect(netemFix(probe({ distro: { id: 'rocky', idLike: ['rhel', 'centos', 'fedora'], prettyName: 'Rocky' } }))).toMatch(/^dnf install -y kernel-modules-extra/);
    expect(netemFix(probe({ moduleTree: false, kernelRelease: '6.18.44-fc-v782' }))).toMatch(/no module tree \(\/lib\/modules\/6.18.44-fc-v782\).*CONFIG_NET_SCH_NETEM/);
    expect(netemFix(probe({ distro: { id: 'arch', idLike: [], prettyName: 'Arch' } }))).toMatch(/linux-modules-extra.*kernel-modules-extra/);
  });
});

describe('doctor: the installed QEMUs', () => {
  const q72: QemuFound = {
    bin: '/usr/bin/qemu-system-x86_64',
    short: '7.2',
    versionText: 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)',
    isDefault: true,
    kvmBuiltIn: true,
  };
  const q10: QemuFound = {
    bin: '/opt/qemu-10.0/bin/qemu-system-x86_64',
    short: '10.0',
    versionText: 'QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)',
    isDefault: false,
    kvmBuiltIn: true,
  };
  const kvmOk = { kvm: { ok: true, detail: '/dev/kvm opened read/write' } };

  it('lists every QEMU, aligned, with its version, path, accelerator and which is the default', () => {
    const text = formatDoctor(buildDoctorReport(probe(kvmOk), [q72, q10]), { color: false });
    expect(text).toContain('  ✓ qemu-system-x86_64 (QEMU backend)    7.2, 10.0 (listed below)\n');
    expect(text).toContain(
      [
        'QEMUs (--backend qemu runs the default; --qemu PATH picks another):',
        '  7.2   KVM  /usr/bin/qemu-system-x86_64            QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)  (default)',
        '  10.0  KVM  /opt/qemu-10.0/bin/qemu-system-x86_64  QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)',
        '',
      ].join('\n'),
    );
  });

  it('TCG, and why: no usable /dev/kvm, or a build without KVM', () => {
    const r = buildDoctorReport(probe(), [q72, { ...q10, kvmBuiltIn: false }]);
    expect(r.qemus.map((q) => [q.short, q.accel, q.why])).toEqual([
      ['7.2', 'tcg', '/dev/kvm does not exist'],
      ['10.0', 'tcg', 'this build has no KVM accelerator'],
    ]);
    const text = formatDoctor(r, { color: false });
    expect(text).toMatch(/ {2}7\.2 {3}TCG {2}\/usr\/bin\/qemu-system-x86_64 +QEMU emulator version 7\.2\.22 .*\(default; TCG: \/dev\/kvm does not exist\)/);
    expect(text).toMatch(/ {2}10\.0 {2}TCG .*\(TCG: this build has no KVM accelerator\)/);
  });

  it('none found: no list, and the check says how to install', () => {
    const r = buildDoctorReport(probe(), []);
    expect(r.qemus).toEqual([]);
    expect(formatDoctor(r, { color: false })).not.toContain('QEMUs (');
    expect(r.checks.find((c) => c.id === 'qemu')?.status).toBe('warn');
  });
});
