/**
 * `postcopy-lab doctor`: what this machine can do, as a checklist with the exact fix for each
 * missing piece, and every QEMU installed with the accelerator it would run with. runDoctor()
 * probes (probe.ts, probeQemus); buildDoctorReport() turns the probes into checks (pure, so
 * fabricated probes can be tested); formatDoctor() renders them.
 */
import { execa } from 'execa';
import { installedQemus } from '../qemu/installed.js';
import { findQemu } from '../qemu/launcher.js';
import type { KernelProbe, QdiscKind } from './probe.js';
import { probeKernel } from './probe.js';
import { libvirtChecks, probeLibvirt, type LibvirtProbe } from '../libvirt/doctor.js';

/** ✓ works · ✗ missing (the fix says how to get it) · ! worth a look · - could not be checked. */
export type CheckStatus = 'ok' | 'missing' | 'warn' | 'skipped';

export interface DoctorCheck {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

/** A fault kind of LinkFault, or `jitter` (netem as well). */
export type KernelFaultName = 'latency' | 'jitter' | 'loss' | 'bandwidth' | 'blackhole' | 'cut' | 'down' | 'flap';

/** One installed QEMU, as probed. */
export interface QemuFound {
  bin: string;
  /** "7.2", "10.0". */
  short: string;
  /** The first line of `--version`. */
  versionText: string;
  /** The one on PATH: what `--backend qemu` runs without `--qemu`. */
  isDefault: boolean;
  /** Whether `-accel help` lists kvm (null: it could not be asked). */
  kvmBuiltIn: boolean | null;
}

/** One installed QEMU and the accelerator a lab would run it with here. */
export interface QemuListing extends QemuFound {
  accel: 'kvm' | 'tcg';
  /** Why TCG, when TCG. */
  why?: string;
}

export interface DoctorReport {
  host: { kernel: string; distro: string };
  checks: DoctorCheck[];
  /** Every QEMU found, oldest first. */
  qemus: QemuListing[];
  kernelLink: {
    /** Namespaces and a veth pair can be made: `--link kernel` can start at all. */
    usable: boolean;
    supported: KernelFaultName[];
    unsupported: { fault: KernelFaultName; reason: string }[];
  };
  probe: KernelProbe;
}

type Family = 'debian' | 'ubuntu' | 'fedora' | 'other';

function family(p: KernelProbe): Family {
  const ids = [p.distro.id, ...p.distro.idLike];
  if (ids.includes('ubuntu')) return 'ubuntu';
  if (ids.includes('debian')) return 'debian';
  if (ids.some((i) => ['fedora', 'rhel', 'centos', 'rocky', 'almalinux'].includes(i))) return 'fedora';
  return 'other';
}

function install(f: Family, debPkg: string, rpmPkg: string): string {
  if (f === 'debian' || f === 'ubuntu') return `apt-get install -y ${debPkg}`;
  if (f === 'fedora') return `dnf install -y ${rpmPkg}`;
  return `apt-get install -y ${debPkg} (Debian/Ubuntu) or dnf install -y ${rpmPkg} (Fedora/RHEL)`;
}

/** How to get sch_netem on this machine. */
export function netemFix(p: KernelProbe): string {
  const relay = 'or use --link relay for latency, jitter and loss';
  if (!p.moduleTree) {
    return (
      `this kernel (${p.kernelRelease}) has no module tree (/lib/modules/${p.kernelRelease}), so sch_netem cannot be loaded: ` +
      `boot a kernel built with CONFIG_NET_SCH_NETEM (the stock Debian, Ubuntu and Fedora kernels have it), ${relay}`
    );
  }
  const modprobe = p.tools.modprobe.present ? 'modprobe sch_netem' : 'apt-get install -y kmod && modprobe sch_netem';
  switch (family(p)) {
    case 'ubuntu':
      return `apt-get install -y linux-modules-extra-$(uname -r) && modprobe sch_netem, ${relay}`;
    case 'debian':
      return `${modprobe} (the stock Debian kernel ships sch_netem), ${relay}`;
    case 'fedora':
      return `dnf install -y kernel-modules-extra && modprobe sch_netem (reboot first if that installed a newer kernel), ${relay}`;
    default:
      return (
        `modprobe sch_netem; if the module is missing: Ubuntu apt-get install linux-modules-extra-$(uname -r), ` +
        `Fedora/RHEL dnf install kernel-modules-extra, Debian's stock kernel has it; ${relay}`
      );
  }
}

function toolCheck(p: KernelProbe, id: 'ip' | 'tc' | 'nft', fix: string): DoctorCheck {
  const t = p.tools[id];
  return t.present
    ? { id, title: id, status: 'ok', detail: t.version ?? t.path ?? 'present' }
    : { id, title: id, status: 'missing', detail: 'not installed', fix };
}

function fromResult(id: string, title: string, r: { ok: boolean | null; detail: string }, fix: string): DoctorCheck {
  if (r.ok === true) return { id, title, status: 'ok', detail: r.detail };
  if (r.ok === null) return { id, title, status: 'skipped', detail: r.detail };
  return { id, title, status: 'missing', detail: r.detail, fix };
}

/** KVM when this build has it and /dev/kvm opens; TCG otherwise, saying why. */
function listQemu(p: KernelProbe, q: QemuFound): QemuListing {
  if (q.kvmBuiltIn === false) return { ...q, accel: 'tcg', why: 'this build has no KVM accelerator' };
  if (p.kvm.ok !== true) return { ...q, accel: 'tcg', why: p.kvm.detail };
  return { ...q, accel: 'kvm' };
}

/** Turn the probes into the doctor's checklist. Pure. */
export function buildDoctorReport(p: KernelProbe, qemus: QemuFound[] = [], libvirt?: LibvirtProbe): DoctorReport {
  const f = family(p);
  const checks: DoctorCheck[] = [];
  checks.push(
    p.root
      ? { id: 'root', title: 'root', status: 'ok', detail: 'running as uid 0' }
      : {
          id: 'root',
          title: 'root',
          status: 'missing',
          detail: `running as uid ${p.uid}; the kernel link creates network namespaces`,
          fix: 'run with sudo, or use --link relay (needs no privileges)',
        },
  );
  checks.push(toolCheck(p, 'ip', install(f, 'iproute2', 'iproute')));
  checks.push(toolCheck(p, 'tc', install(f, 'iproute2', 'iproute-tc')));
  checks.push(toolCheck(p, 'nft', install(f, 'nftables', 'nftables')));
  checks.push(
    fromResult('netns', 'network namespaces', p.netns, 'the kernel needs CONFIG_NET_NS and CONFIG_VETH; in a container, run it privileged (CAP_SYS_ADMIN, CAP_NET_ADMIN)'),
  );
  const qdiscFix: Record<QdiscKind, string> = {
    netem: netemFix(p),
    tbf: 'modprobe sch_tbf (kernel option CONFIG_NET_SCH_TBF)',
    htb: 'modprobe sch_htb (kernel option CONFIG_NET_SCH_HTB)',
  };
  const qdiscUse: Record<QdiscKind, string> = { netem: 'latency, jitter, loss', tbf: 'rate', htb: 'not used by the link' };
  for (const k of ['netem', 'tbf', 'htb'] as QdiscKind[]) {
    checks.push(fromResult(`qdisc-${k}`, `qdisc ${k} (${qdiscUse[k]})`, p.qdiscs[k], qdiscFix[k]));
  }
  checks.push(
    fromResult(
      'nftables',
      'nftables (blackhole, cut)',
      p.nftables,
      p.tools.nft.present ? 'the kernel needs CONFIG_NF_TABLES_INET and CONFIG_NFT_REJECT' : install(f, 'nftables', 'nftables'),
    ),
  );
  const kvmFix = /does not exist/.test(p.kvm.detail)
    ? 'modprobe kvm_intel or modprobe kvm_amd (enable VT-x/AMD-V in firmware; inside a VM, enable nested virtualization); without it QEMU runs with TCG, slowly'
    : 'usermod -aG kvm $USER and log in again, or run as root; without it QEMU runs with TCG, slowly';
  checks.push({ ...fromResult('kvm', '/dev/kvm (QEMU backend)', p.kvm, kvmFix), ...(p.kvm.ok === false ? { status: 'warn' as const } : {}) });
  const listed = qemus.map((q) => listQemu(p, q));
  const qemuTitle = 'qemu-system-x86_64 (QEMU backend)';
  if (listed.length > 0) {
    checks.push({ id: 'qemu', title: qemuTitle, status: 'ok', detail: `${listed.map((q) => q.short).join(', ')} (listed below)` });
  } else {
    checks.push({
      id: 'qemu',
      title: qemuTitle,
      status: 'warn',
      detail: p.tools.qemu.present
        ? `${p.tools.qemu.path ?? 'qemu-system-x86_64'} is on PATH but does not report its version`
        : 'not installed; the sim backend does not need it',
      fix:
        f === 'debian' || f === 'ubuntu'
          ? 'apt-get install -y qemu-system-x86 (scripts/provision.sh --ci also unpacks QEMU 10.0 beside it on Debian 12)'
          : install(f, 'qemu-system-x86', 'qemu-system-x86 (RHEL: qemu-kvm)'),
    });
  }

  const lo = p.leftovers;
  const stale = lo.namespaces.filter((n) => !n.active);
  const active = lo.namespaces.filter((n) => n.active);
  const staleThings = [
    ...stale.map((n) => n.name),
    ...lo.nftTables.map((t) => `nft table ${t.family} ${t.name}`),
    ...lo.runtimeDirs.filter((d) => !d.active).map((d) => `runtime directory ${d.path}`),
  ];
  if (staleThings.length > 0) {
    const pids = stale.flatMap((n) => n.pids);
    checks.push({
      id: 'leftovers',
      title: 'leftovers',
      status: 'warn',
      detail:
        `${staleThings.length} left by runs that did not clean up: ${staleThings.join(', ')}` +
        (pids.length ? `; processes still inside: ${pids.join(' ')}` : ''),
      fix: 'postcopy-lab cleanup',
    });
  } else {
    checks.push({
      id: 'leftovers',
      title: 'leftovers',
      status: lo.notes.length ? 'skipped' : 'ok',
      detail: lo.notes.length
        ? lo.notes.join('; ')
        : active.length
          ? `none left behind; ${active.length} in use by a running postcopy-lab: ${active.map((n) => n.name).join(', ')}`
          : 'none',
    });
  }

  if (libvirt) checks.push(...libvirtChecks(libvirt));

  const usable = p.root && p.tools.ip.present && p.tools.tc.present && p.netns.ok === true;
  const supported: KernelFaultName[] = [];
  const unsupported: { fault: KernelFaultName; reason: string }[] = [];
  const gate = (faults: KernelFaultName[], ok: boolean, reason: string) => {
    for (const fault of faults) {
      if (ok) supported.push(fault);
      else unsupported.push({ fault, reason });
    }
  };
  if (!usable) {
    gate(['latency', 'jitter', 'loss', 'bandwidth', 'blackhole', 'cut', 'down', 'flap'], false, 'the kernel link cannot start here');
  } else {
    gate(['latency', 'jitter', 'loss'], p.qdiscs.netem.ok === true, 'needs sch_netem');
    gate(['bandwidth'], p.qdiscs.tbf.ok === true, 'needs sch_tbf');
    gate(['blackhole', 'cut', 'flap'], p.nftables.ok === true, 'needs nftables');
    gate(['down'], true, '');
  }
  return {
    host: { kernel: p.kernelRelease, distro: p.distro.prettyName || p.distro.id || 'unknown distribution' },
    checks,
    qemus: listed,
    kernelLink: { usable, supported, unsupported },
    probe: p,
  };
}

/** Whether a QEMU binary was built with KVM (`-accel help` lists it); null if it cannot say. */
async function kvmBuiltIn(bin: string): Promise<boolean | null> {
  const r = await execa(bin, ['-accel', 'help'], { timeout: 10_000, reject: false });
  if (r.exitCode !== 0) return null;
  return String(r.stdout).split('\n').some((l) => l.trim() === 'kvm');
}

/** Every installed QEMU (src/qemu/installed.ts), with what doctor says about each. */
export async function probeQemus(): Promise<QemuFound[]> {
  const [found, onPath] = await Promise.all([installedQemus(), findQemu().catch(() => undefined)]);
  return Promise.all(
    found.map(async (q) => ({
      bin: q.bin,
      short: q.short,
      versionText: q.version.text,
      isDefault: q.bin === onPath,
      kvmBuiltIn: await kvmBuiltIn(q.bin),
    })),
  );
}

/** Probe this machine and build the report. */
export async function runDoctor(): Promise<DoctorReport> {
  const [kernel, qemus, libvirt] = await Promise.all([probeKernel(), probeQemus(), probeLibvirt()]);
  return buildDoctorReport(kernel, qemus, libvirt);
}

const SYMBOL: Record<CheckStatus, string> = { ok: '✓', missing: '✗', warn: '!', skipped: '-' };
const COLOR: Record<CheckStatus, string> = { ok: '\x1b[32m', missing: '\x1b[31m', warn: '\x1b[33m', skipped: '\x1b[2m' };
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

/** The checklist as text. `color` adds ANSI colours; the words are the same either way. */
export function formatDoctor(report: DoctorReport, opts: { color: boolean }): string {
  const c = (code: string, s: string) => (opts.color ? `${code}${s}${RESET}` : s);
  const width = Math.max(...report.checks.map((k) => k.title.length));
  const lines = [`postcopy-lab doctor: kernel ${report.host.kernel}, ${report.host.distro}`, ''];
  for (const k of report.checks) {
    lines.push(`  ${c(COLOR[k.status], SYMBOL[k.status])} ${k.title.padEnd(width)}  ${k.detail}`);
    if (k.fix && k.status !== 'ok') lines.push(`    ${' '.repeat(width)}  ${c(DIM, 'fix:')} ${k.fix}`);
  }
  lines.push('');
  if (report.qemus.length > 0) {
    lines.push('QEMUs (--backend qemu runs the default; --qemu PATH picks another):');
    const cols = (pick: (q: QemuListing) => string) => Math.max(...report.qemus.map((q) => pick(q).length));
    const [wShort, wBin] = [cols((q) => q.short), cols((q) => q.bin)];
    for (const q of report.qemus) {
      const accel = q.accel === 'kvm' ? c(COLOR.ok, 'KVM') : c(COLOR.warn, 'TCG');
      const tail = [q.isDefault ? 'default' : '', q.why ? `TCG: ${q.why}` : ''].filter(Boolean).join('; ');
      lines.push(`  ${q.short.padEnd(wShort)}  ${accel}  ${q.bin.padEnd(wBin)}  ${q.versionText}${tail ? c(DIM, `  (${tail})`) : ''}`);
    }
    lines.push('');
  }
  const kl = report.kernelLink;
  if (!kl.usable) {
    lines.push('Kernel link (--link kernel): not available here; the relay (--link relay, the default) works everywhere.');
  } else if (kl.unsupported.length === 0) {
    lines.push(`Kernel link (--link kernel): every fault works (${kl.supported.join(', ')}).`);
  } else {
    const byReason = new Map<string, KernelFaultName[]>();
    for (const u of kl.unsupported) byReason.set(u.reason, [...(byReason.get(u.reason) ?? []), u.fault]);
    const missing = [...byReason]
      .map(([reason, faults]) => `${faults.join(', ')} ${reason.replace(/^needs/, faults.length > 1 ? 'need' : 'needs')}`)
      .join('; ');
    lines.push(
      `Kernel link (--link kernel): ${kl.supported.join(', ') || 'nothing'} work; ${missing} (use --link relay for those).`,
    );
  }
  return lines.join('\n') + '\n';
}
