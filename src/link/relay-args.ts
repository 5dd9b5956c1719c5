/**
 * The relay process's command line, kept apart from relay-main.ts so it can be tested without
 * starting a relay.
 */
import type { HostPort } from '../types.js';
import type { Route } from './relay-server.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const USAGE =
  'usage: relay-main --control <path.sock> --route 127.0.0.1:<listen-port>=127.0.0.1:<target-port> [--route ...] [--parent-pid <pid>] [--seed <n>]';

export interface RelayArgs {
  control: string;
  routes: Route[];
  parentPid?: number;
  seed?: number;
}

function parseHostPort(text: string, what: string): HostPort {
  const m = /^(127\.0\.0\.1|localhost):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`${what} ${JSON.stringify(text)} must be 127.0.0.1:<port> (port 0-65535; the relay only uses loopback)`);
  }
  return { host: '127.0.0.1', port };
}

export function parseRelayArgs(argv: readonly string[]): RelayArgs {
  let control: string | undefined;
  let parentPid: number | undefined;
  let seed: number | undefined;
  const routes: Route[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new UsageError(`${flag} needs a value\n${USAGE}`);
    i++;
    switch (flag) {
      case '--control':
        control = value;
        break;
      case '--route': {
        const parts = value.split('=');
        if (parts.length !== 2) throw new UsageError(`--route ${JSON.stringify(value)} must be <listen>=<target>, e.g. 127.0.0.1:0=127.0.0.1:4444`);
        routes.push({ listen: parseHostPort(parts[0], 'listen address'), target: parseHostPort(parts[1], 'target address') });
        break;
      }
      case '--parent-pid':
        parentPid = Number(value);
        if (!Number.isInteger(parentPid) || parentPid <= 0) throw new UsageError(`--parent-pid must be a process id, got ${JSON.stringify(value)}`);
        break;
      case '--seed':
        seed = Number(value);
        if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got ${JSON.stringify(value)}`);
        break;
      default:
        throw new UsageError(`unknown option ${JSON.stringify(flag)}\n${USAGE}`);
    }
  }
  if (!control) throw new UsageError(`--control is required\n${USAGE}`);
  if (routes.length === 0) throw new UsageError(`at least one --route is required\n${USAGE}`);
  return { control, routes, parentPid, seed };
}

/** mulberry32: a small seeded PRNG, so a run's jitter and loss can be replayed with --seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
