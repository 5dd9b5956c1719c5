/**
 * `virsh` as argument arrays, and its answers parsed. Pure functions; the pair (pair.ts) runs
 * them. The subcommands are the ones an operator types, spelled as virsh spells them, so a lab
 * can show the exact line.
 */
import type { Argv } from '../kernel/argv.js';

/** A daemon's local URI: its unix socket, which we reach from outside its mount namespace. */
export function unixUri(socketPath: string): string {
  // The path goes into a URI query: keep to characters that need no escaping there.
  if (!/^\/[A-Za-z0-9_./-]+$/.test(socketPath)) throw new Error(`libvirt socket path ${JSON.stringify(socketPath)} must be absolute and use only [A-Za-z0-9_./-]`);
  return `qemu+unix:///system?socket=${socketPath}`;
}

/** A daemon's TCP URI, as the other daemon (or virsh inside a namespace) reaches it. */
export function tcpUri(address: string, port?: number): string {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) throw new Error(`${JSON.stringify(address)} is not an IPv4 address`);
  return `qemu+tcp://${address}${port === undefined || port === 16509 ? '' : `:${port}`}/system`;
}

export function virsh(uri: string, ...args: string[]): Argv {
  return ['virsh', '-c', uri, ...args];
}

export interface MigrateOptions {
  domain: string;
  /** The destination daemon's URI as the client (or, with p2p, the source daemon) reaches it. */
  destUri: string;
  /** Precopy bandwidth, MiB/s (`--bandwidth`). */
  bandwidthMiB?: number;
  /** Postcopy bandwidth, MiB/s (`--postcopy-bandwidth`): keeps postcopy long enough to break. */
  postcopyBandwidthMiB?: number;
  /** Switch to postcopy after the first precopy pass (`--postcopy-after-precopy`). */
  postcopyAfterPrecopy?: boolean;
  /** Peer-to-peer: the source daemon talks to the destination's, not the client (`--p2p`). */
  p2p?: boolean;
}

function mib(n: number | undefined, flag: string): string[] {
  if (n === undefined) return [];
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${flag} is whole MiB/s, at least 1; got ${n}`);
  return [flag, String(n)];
}

/** `virsh migrate --live --postcopy ...`: starts a migration that may switch to postcopy. */
export function migrateArgs(o: MigrateOptions): string[] {
  return [
    'migrate',
    '--live',
    '--postcopy',
    ...(o.postcopyAfterPrecopy ? ['--postcopy-after-precopy'] : []),
    ...(o.p2p ? ['--p2p'] : []),
    ...mib(o.bandwidthMiB, '--bandwidth'),
    ...mib(o.postcopyBandwidthMiB, '--postcopy-bandwidth'),
    o.domain,
    o.destUri,
  ];
}

/** `virsh migrate --postcopy --postcopy-resume ...`: libvirt's recovery after `post-copy failed` (8.5+). */
export function resumeArgs(o: Pick<MigrateOptions, 'domain' | 'destUri' | 'p2p' | 'postcopyBandwidthMiB'>): string[] {
  return ['migrate', '--live', '--postcopy', '--postcopy-resume', ...(o.p2p ? ['--p2p'] : []), ...mib(o.postcopyBandwidthMiB, '--postcopy-bandwidth'), o.domain, o.destUri];
}

export interface DomState {
  /** libvirt's state word(s): running, paused, shut off, ... */
  state: string;
  /** The reason in parentheses: booted, post-copy, post-copy failed, migrated, ... */
  reason: string | null;
}

/** `virsh domstate --reason`: "paused (post-copy failed)". */
export function parseDomstate(out: string): DomState {
  const line = out.trim().split('\n')[0]?.trim() ?? '';
  if (!line) throw new Error('virsh domstate printed nothing');
  const m = /^(.*?)\s*\((.*)\)$/.exec(line);
  return m ? { state: m[1], reason: m[2] } : { state: line, reason: null };
}

/** The states `--postcopy-resume` recovers from: libvirt's own words. */
export function isPostcopyFailed(s: DomState): boolean {
  return s.reason === 'post-copy failed';
}

export interface DomJobInfo {
  /** Every `Key: value` line as printed. */
  fields: Record<string, string>;
  /** "None", "Unbounded", "Completed", "Failed", ... */
  jobType: string;
  /** Bytes, from the MiB/GiB/KiB figures virsh prints (null where absent). */
  dataTotal: number | null;
  dataProcessed: number | null;
  dataRemaining: number | null;
  memoryBandwidth: number | null;
  postcopyRequests: number | null;
  timeElapsedMs: number | null;
}

const UNITS: Record<string, number> = { B: 1, bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** "60.946 MiB" -> bytes; "1.957 MiB/s" -> bytes per second; null when not a size. */
export function parseSize(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^([\d.]+)\s*([A-Za-z]+)(\/s)?$/.exec(v.trim());
  if (!m || !(m[2] in UNITS)) return null;
  return Math.round(Number(m[1]) * UNITS[m[2]]);
}

function parseNumber(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^(\d+)/.exec(v.trim());
  return m ? Number(m[1]) : null;
}

/** `virsh domjobinfo`: the source's job (the destination's monitor is locked during an incoming job). */
export function parseDomjobinfo(out: string): DomJobInfo {
  const fields: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    fields[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return {
    fields,
    jobType: fields['Job type'] ?? 'None',
    dataTotal: parseSize(fields['Data total']),
    dataProcessed: parseSize(fields['Data processed']),
    dataRemaining: parseSize(fields['Data remaining']),
    memoryBandwidth: parseSize(fields['Memory bandwidth']),
    postcopyRequests: parseNumber(fields['Postcopy requests']),
    timeElapsedMs: parseNumber(fields['Time elapsed']),
  };
}

/** `virsh --version`: "9.0.0". */
export function parseLibvirtVersion(out: string): { major: number; minor: number; micro: number } {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(out.trim());
  if (!m) throw new Error(`cannot read a libvirt version from ${JSON.stringify(out.trim())}`);
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0) };
}

/** `virsh migrate --postcopy-resume` exists since libvirt 8.5. */
export const MIN_LIBVIRT = { major: 8, minor: 5 } as const;

export function libvirtSupportsResume(v: { major: number; minor: number }): boolean {
  return v.major > MIN_LIBVIRT.major || (v.major === MIN_LIBVIRT.major && v.minor >= MIN_LIBVIRT.minor);
}
