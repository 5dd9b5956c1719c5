/**
 * What `postcopy-lab doctor` says about the libvirt backend: libvirtd and virsh present, libvirt
 * new enough for `virsh migrate --postcopy-resume` (8.5), and the util-linux tools the pair's
 * mount namespaces need. libvirtChecks() is pure (tested with made-up probes); probeLibvirt()
 * asks the machine.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import type { DoctorCheck } from '../kernel/doctor.js';
import { LIBVIRTD } from './pair.js';
import { MIN_LIBVIRT, libvirtSupportsResume, parseLibvirtVersion } from './virsh.js';

export interface LibvirtProbe {
  libvirtd: boolean;
  /** virsh's version ("9.0.0"), null when virsh is missing or does not answer. */
  virshVersion: string | null;
  nsenter: boolean;
  unshare: boolean;
}

const INSTALL = 'apt-get install -y libvirt-daemon-system libvirt-clients (scripts/provision.sh --ci installs them without starting the system service)';

export function libvirtChecks(p: LibvirtProbe): DoctorCheck[] {
  const title = 'libvirt (--backend libvirt)';
  const min = `${MIN_LIBVIRT.major}.${MIN_LIBVIRT.minor}`;
  if (!p.libvirtd || p.virshVersion === null) {
    const what = [!p.libvirtd ? `no ${LIBVIRTD}` : '', p.virshVersion === null ? 'no virsh' : ''].filter(Boolean).join(', ');
    return [{ id: 'libvirt', title, status: 'warn', detail: `${what}: the libvirt backend cannot run (the other backends do not need it)`, fix: INSTALL }];
  }
  const v = parseLibvirtVersion(p.virshVersion);
  const checks: DoctorCheck[] = [];
  if (!libvirtSupportsResume(v)) {
    checks.push({
      id: 'libvirt',
      title,
      status: 'warn',
      detail: `libvirt ${p.virshVersion} has no \`virsh migrate --postcopy-resume\` (added in ${min}): a failed postcopy cannot be recovered through libvirt`,
      fix: `a libvirt >= ${min} (Debian 12 has 9.0)`,
    });
  } else {
    checks.push({ id: 'libvirt', title, status: 'ok', detail: `libvirt ${p.virshVersion} (>= ${min}: --postcopy-resume)` });
  }
  if (!p.nsenter || !p.unshare) {
    checks.push({
      id: 'libvirt-namespaces',
      title: 'nsenter and unshare (libvirt pair)',
      status: 'warn',
      detail: `missing ${[!p.nsenter ? 'nsenter' : '', !p.unshare ? 'unshare' : ''].filter(Boolean).join(' and ')}: each daemon's mount namespace is made with them`,
      fix: 'apt-get install -y util-linux',
    });
  }
  return checks;
}

async function executable(p: string): Promise<boolean> {
  return access(p, constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).filter(Boolean)) {
    if (await executable(join(dir, name))) return true;
  }
  return false;
}

export async function probeLibvirt(): Promise<LibvirtProbe> {
  const [libvirtd, v, nsenter, unshare] = await Promise.all([
    executable(LIBVIRTD),
    execa('virsh', ['--version'], { reject: false, timeout: 10_000 }),
    onPath('nsenter'),
    onPath('unshare'),
  ]);
  return { libvirtd, virshVersion: v.exitCode === 0 ? String(v.stdout).trim() : null, nsenter, unshare };
}
