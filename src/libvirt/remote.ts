/**
 * `--source-uri URI --dest-uri URI`: run the libvirt labs against two libvirt daemons the user
 * already has (two hosts, `qemu+ssh://a/system`, `qemu+tcp://…`) instead of the local pair.
 * Pure checks here, each answering with one sentence that names what is wrong and what would be
 * right; the run itself is remote-session.ts.
 *
 * The link between the user's hosts is not ours: we do not shape or cut it (that would mean
 * firewall rules on the user's machines over ssh, and a cut of the wrong rule takes down the
 * ssh session that would remove it). So a lab that breaks the link is refused before it
 * starts, and the run says `link: none`; the labs that stay are those whose fault is an
 * operator's command (`virsh domjobabort --postcopy`).
 */
import type { Lab } from '../lab/schema.js';

/** The transports a libvirt client can reach another host's daemon with. */
export const REMOTE_TRANSPORTS = ['ssh', 'tcp', 'tls', 'libssh', 'libssh2'] as const;
export type RemoteTransport = (typeof REMOTE_TRANSPORTS)[number];

export interface LibvirtUri {
  /** As given: what virsh is passed (`-c`), and what `${libvirt.dest-uri}` gives `virsh migrate`. */
  uri: string;
  transport: RemoteTransport;
  user: string | null;
  host: string;
  port: number | null;
}

export interface RemoteHosts {
  source: LibvirtUri;
  destination: LibvirtUri;
}

export class RemoteUriError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RemoteUriError';
  }
}

const EXAMPLE = 'qemu+ssh://root@host-a/system';
// A host name or IPv4 address; an IPv6 address in brackets.
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*|\[[0-9A-Fa-f:.]+\])$/;
const USER_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/** Parse and check one remote libvirt URI (`flag` names the option in the error). */
export function parseLibvirtUri(raw: string, flag: string): LibvirtUri {
  const bad = (why: string) => new RemoteUriError(`${flag} ${JSON.stringify(raw)}: ${why}`);
  const m = /^qemu(?:\+([a-z0-9]+))?:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(raw);
  if (!m) throw bad(`not a libvirt URI; expected the form ${EXAMPLE} (or qemu+tcp://host/system)`);
  const [, transport, authority, uriPath, query] = m;
  if (!transport || !(REMOTE_TRANSPORTS as readonly string[]).includes(transport)) {
    const given = transport ? `transport '${transport}' is not one libvirt reaches another host with` : 'a URI without a transport is the local daemon';
    throw bad(`${given}; use qemu+${REMOTE_TRANSPORTS.join(', qemu+')} (e.g. ${EXAMPLE})`);
  }
  if (uriPath !== '/system') throw bad(`the path must be /system (the hosts' system daemons, which can migrate a KVM guest), e.g. ${EXAMPLE}`);
  const at = authority.lastIndexOf('@');
  const user = at >= 0 ? authority.slice(0, at) : null;
  const hostPort = at >= 0 ? authority.slice(at + 1) : authority;
  if (!hostPort) throw bad(`no host: a remote URI names the host its daemon runs on, e.g. ${EXAMPLE}`);
  if (user !== null && !USER_RE.test(user)) throw bad(`'${user}' is not a user name`);
  const pm = /^(.*?)(?::(\d+))?$/.exec(hostPort)!;
  const host = pm[1];
  if (!HOST_RE.test(host)) throw bad(`'${host}' is not a host name or address`);
  const port = pm[2] === undefined ? null : Number(pm[2]);
  if (port !== null && (port < 1 || port > 65535)) throw bad(`port ${port} must be from 1 to 65535`);
  // Options libvirt reads from the query (keyfile=, no_verify=, …) are the user's: passed on as written.
  if (query && /[\s'"`$;|<>\\]/.test(query)) throw bad('its query holds characters a libvirt URI option value does not need (spaces, quotes, shell characters)');
  return { uri: raw, transport: transport as RemoteTransport, user, host, port };
}

export interface RemoteFlags {
  sourceUri?: string;
  destUri?: string;
  backend: string;
  /** --link as given (undefined: not given). */
  link?: string;
  qemu?: string;
}

/**
 * The two URIs as a pair, or null when neither is given. Throws RemoteUriError: one URI without
 * the other, not --backend libvirt, the same daemon twice, or a link we cannot run remotely.
 */
export function parseRemoteHosts(f: RemoteFlags): RemoteHosts | null {
  if (f.sourceUri === undefined && f.destUri === undefined) return null;
  if (f.backend !== 'libvirt') throw new RemoteUriError(`--source-uri/--dest-uri name two libvirt daemons, so they need --backend libvirt (got --backend ${f.backend})`);
  if (f.sourceUri === undefined || f.destUri === undefined) {
    const [given, missing] = f.sourceUri === undefined ? ['--dest-uri', '--source-uri'] : ['--source-uri', '--dest-uri'];
    throw new RemoteUriError(`${given} needs ${missing} too: a migration runs between two daemons (e.g. --source-uri qemu+ssh://root@host-a/system --dest-uri qemu+ssh://root@host-b/system), or leave both out for the local pair`);
  }
  const source = parseLibvirtUri(f.sourceUri, '--source-uri');
  const destination = parseLibvirtUri(f.destUri, '--dest-uri');
  if (source.host === destination.host && source.port === destination.port) {
    throw new RemoteUriError(`--source-uri and --dest-uri both name ${source.host}${source.port ? `:${source.port}` : ''}: libvirt refuses to migrate a guest to the host it runs on; give two hosts`);
  }
  if (f.link !== undefined && f.link !== 'none') {
    throw new RemoteUriError(
      `--link ${f.link}: with --source-uri/--dest-uri the link between your hosts is not postcopy-lab's to shape or cut, so the link is none (leave --link out, or say --link none); for faults, run the lab on the local pair without the URIs`,
    );
  }
  return { source, destination };
}

/** The lab's link faults (setup and steps) as "step 3 (cut)"; empty when it has none. */
export function linkFaultsOf(lab: Lab): string[] {
  const found: string[] = lab.setup.link.map((f) => `setup (${f.kind})`);
  lab.steps.forEach((step, i) => {
    for (const a of step.actions) {
      if (a.type === 'link') found.push(`step ${i + 1} (${a.fault.kind})`);
      if (a.type === 'restore') found.push(`step ${i + 1} (restore)`);
    }
  });
  return found;
}

/** Why `lab` cannot run across remote hosts (one sentence), or undefined when it can. */
export function remoteLabProblem(lab: Lab): string | undefined {
  const faults = linkFaultsOf(lab);
  if (faults.length === 0) return undefined;
  return `lab '${lab.id}' changes the link (${faults.join(', ')}), and with --source-uri/--dest-uri the link is none: the network between your hosts is not postcopy-lab's to break. Run it on the local pair (leave out the URIs), or run a lab whose fault is an operator's command, such as libvirt-postcopy-pause.`;
}

/** `virsh version`'s "Running hypervisor: QEMU 7.2.0": the QEMU a remote daemon runs by default. */
export function parseHypervisorVersion(out: string, uri: string): { major: number; minor: number; text: string } {
  const m = /Running hypervisor:\s*QEMU\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  if (!m) throw new RemoteUriError(`${uri}: virsh version names no QEMU ("Running hypervisor: QEMU x.y.z"); is it a QEMU/KVM daemon? It said: ${out.trim().split('\n').slice(0, 3).join(' | ') || 'nothing'}`);
  return { major: Number(m[1]), minor: Number(m[2]), text: `QEMU emulator version ${m[1]}.${m[2]}${m[3] ? `.${m[3]}` : ''} (the default of ${uri})` };
}
