/**
 * The two libvirt daemons' configuration files, as text. Pure functions: every value is checked
 * here, before a file is written, so a daemon never starts on a config it would misread.
 *
 * Why each setting (all of them were needed on a Debian 12 host, libvirt 9.0):
 *   - `host_uuid`: libvirt refuses "Attempt to migrate guest to the same host <uuid>" when both
 *     daemons report one; hostnames are not compared, so a distinct UUID per side is enough.
 *   - `listen_tcp` on the namespace address with `auth_tcp = "none"`: acceptable only because
 *     the address exists inside this run's own network namespaces and nowhere else.
 *   - `security_driver = "none"`: no AppArmor/SELinux labelling of our generated ROM and sockets.
 *   - `cgroup_controllers = [ ]`: both daemons number their domains from 1, so their cgroup paths
 *     (machine/qemu-1-<name>) would clash.
 *   - a fixed `migration_port_min/max` and `migration_address`: the migration stream goes where
 *     the kernel link shapes and cuts it.
 *   - `stdio_handler = "file"`: no virtlogd (a third daemon, shared between the two otherwise).
 *   - `namespaces = [ ]`: QEMU stays in the daemon's mount namespace, so paths under the
 *     daemon's bind-mounted directories (the extra QMP socket, the serial file) are the same
 *     for the daemon, for QEMU and for us.
 */
import { randomUUID } from 'node:crypto';

/** libvirt's default TCP port; each daemon has its own address, so both can use it. */
export const LIBVIRT_TCP_PORT = 16509;
/** The port range QEMU's incoming migration listens on (the destination's, and a resume's). */
export const MIGRATION_PORT_MIN = 49152;
export const MIGRATION_PORT_MAX = 49160;

export interface DaemonConfigOptions {
  /** The address the daemon listens on: its side's address on the veth. */
  listenAddress: string;
  /** Distinct per side (see the header). */
  hostUuid: string;
  /** Where libvirtd writes its own log, as seen inside its mount namespace. */
  logFile: string;
  tcpPort?: number;
  migrationPortMin?: number;
  migrationPortMax?: number;
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class LibvirtConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LibvirtConfigError';
  }
}

function checkAddress(a: string, field: string): string {
  const m = IPV4_RE.exec(a);
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new LibvirtConfigError(`${field} ${JSON.stringify(a)} is not an IPv4 address (e.g. 10.213.0.1)`);
  return a;
}

function checkPort(p: number, field: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new LibvirtConfigError(`${field} must be a port number from 1 to 65535, got ${p}`);
  return p;
}

function checkUuid(u: string): string {
  if (!UUID_RE.test(u)) throw new LibvirtConfigError(`hostUuid ${JSON.stringify(u)} is not a lower-case UUID (8-4-4-4-12 hex digits)`);
  // libvirt rejects a host UUID whose digits are all the same (its "unusable" UUIDs).
  if (new Set(u.replace(/-/g, '')).size === 1) throw new LibvirtConfigError(`hostUuid ${u} has all digits the same, which libvirt refuses`);
  return u;
}

/** A libvirt config string: double-quoted; our values never hold a quote or a backslash. */
function str(v: string, field: string): string {
  if (/["\\\n]/.test(v)) throw new LibvirtConfigError(`${field} must not contain a quote, backslash or newline: ${JSON.stringify(v)}`);
  return `"${v}"`;
}

/** A fresh host UUID for one daemon. */
export function newHostUuid(): string {
  return randomUUID();
}

/** /etc/libvirt/libvirtd.conf of one daemon. */
export function renderLibvirtdConf(o: DaemonConfigOptions): string {
  return [
    '# written by postcopy-lab for one daemon of a two-daemon pair; removed with the run',
    'listen_tls = 0',
    'listen_tcp = 1',
    `listen_addr = ${str(checkAddress(o.listenAddress, 'listenAddress'), 'listenAddress')}`,
    `tcp_port = "${checkPort(o.tcpPort ?? LIBVIRT_TCP_PORT, 'tcpPort')}"`,
    '# only reachable inside this run\'s own network namespaces',
    'auth_tcp = "none"',
    'auth_unix_rw = "none"',
    'unix_sock_group = "root"',
    'unix_sock_rw_perms = "0700"',
    'unix_sock_ro_perms = "0700"',
    `host_uuid = ${str(checkUuid(o.hostUuid), 'hostUuid')}`,
    `log_outputs = ${str(`3:file:${o.logFile}`, 'logFile')}`,
    '',
  ].join('\n');
}

/** /etc/libvirt/qemu.conf of one daemon. */
export function renderQemuConf(o: Pick<DaemonConfigOptions, 'listenAddress' | 'migrationPortMin' | 'migrationPortMax'>): string {
  const min = checkPort(o.migrationPortMin ?? MIGRATION_PORT_MIN, 'migrationPortMin');
  const max = checkPort(o.migrationPortMax ?? MIGRATION_PORT_MAX, 'migrationPortMax');
  if (max < min) throw new LibvirtConfigError(`migrationPortMax (${max}) must not be below migrationPortMin (${min})`);
  const addr = str(checkAddress(o.listenAddress, 'listenAddress'), 'listenAddress');
  return [
    '# written by postcopy-lab for one daemon of a two-daemon pair; removed with the run',
    'security_driver = "none"',
    '# both daemons number domains from 1: their cgroup paths would clash',
    'cgroup_controllers = [ ]',
    `migration_address = ${addr}`,
    `migration_host = ${addr}`,
    `migration_port_min = ${min}`,
    `migration_port_max = ${max}`,
    'stdio_handler = "file"',
    'user = "root"',
    'group = "root"',
    'dynamic_ownership = 0',
    'remember_owner = 0',
    '# QEMU in the daemon\'s mount namespace: the same paths for the daemon, QEMU and us',
    'namespaces = [ ]',
    '',
  ].join('\n');
}
