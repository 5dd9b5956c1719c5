/**
 * Argument arrays for `ip`: namespaces, veth pairs, addresses, link state and counters.
 * Pure functions: every name is validated here, before anything runs. Pass the result to run().
 */
import { type Argv, inNs } from './argv.js';
import { validateIfName, validateNetnsName } from './validate.js';

export type { Argv } from './argv.js';

export function netnsAdd(ns: string): Argv {
  return ['ip', 'netns', 'add', validateNetnsName(ns)];
}

export function netnsDel(ns: string): Argv {
  return ['ip', 'netns', 'del', validateNetnsName(ns)];
}

/** `ip -j netns list`: prints `[{"name": ...}]` (or nothing on some versions when empty). */
export function netnsList(): Argv {
  return ['ip', '-j', 'netns', 'list'];
}

/** `ip netns pids NS`: the processes inside, one pid per line. */
export function netnsPids(ns: string): Argv {
  return ['ip', 'netns', 'pids', validateNetnsName(ns)];
}

/** Run `file args...` inside the namespace. `file` and `args` are passed through as argv words. */
export function netnsExec(ns: string, file: string, args: readonly string[] = []): Argv {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('netnsExec: file must be a non-empty string');
  return ['ip', 'netns', 'exec', validateNetnsName(ns), file, ...args];
}

/**
 * `ip [-n NS] link add NAME type veth peer name PEER [netns PEER_NS]`. Creating the pair inside
 * the namespaces directly means it never appears, even briefly, in the root namespace.
 */
export function vethAdd(name: string, peer: string, opts: { ns?: string; peerNs?: string } = {}): Argv {
  return [
    'ip',
    ...inNs(opts.ns),
    'link',
    'add',
    validateIfName(name),
    'type',
    'veth',
    'peer',
    'name',
    validateIfName(peer, 'peer'),
    ...(opts.peerNs === undefined ? [] : ['netns', validateNetnsName(opts.peerNs, 'peerNs')]),
  ];
}

/** `ip [-n NS] link set dev DEV netns TARGET`. */
export function linkSetNetns(dev: string, target: string, opts: { ns?: string } = {}): Argv {
  return ['ip', ...inNs(opts.ns), 'link', 'set', 'dev', validateIfName(dev), 'netns', validateNetnsName(target, 'target namespace')];
}

/** `ip [-n NS] link del dev DEV` (deleting one end of a veth deletes both). */
export function linkDel(dev: string, opts: { ns?: string } = {}): Argv {
  return ['ip', ...inNs(opts.ns), 'link', 'del', 'dev', validateIfName(dev)];
}

export function linkSetUp(dev: string, opts: { ns?: string } = {}): Argv {
  return ['ip', ...inNs(opts.ns), 'link', 'set', 'dev', validateIfName(dev), 'up'];
}

export function linkSetDown(dev: string, opts: { ns?: string } = {}): Argv {
  return ['ip', ...inNs(opts.ns), 'link', 'set', 'dev', validateIfName(dev), 'down'];
}

/** `ip [-n NS] -s -j link show dev DEV`: JSON with `stats64.tx.bytes` etc. */
export function linkStats(dev: string, opts: { ns?: string } = {}): Argv {
  return ['ip', ...inNs(opts.ns), '-s', '-j', 'link', 'show', 'dev', validateIfName(dev)];
}

const CIDR_RE = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;

/** `ip [-n NS] addr add ADDR/PREFIX dev DEV`. */
export function addrAdd(dev: string, cidr: string, opts: { ns?: string } = {}): Argv {
  if (!CIDR_RE.test(cidr)) throw new TypeError(`addrAdd: ${JSON.stringify(cidr)} is not an IPv4 address/prefix`);
  return ['ip', ...inNs(opts.ns), 'addr', 'add', cidr, 'dev', validateIfName(dev)];
}
