/**
 * A link with nothing in it: the destination listens and the source connects to the same
 * loopback port. Only for the benchmark's "direct" rows, to show what the relay costs; the
 * product always puts a real link (relay or kernel) between the VMs.
 */
import type { Link, LinkEndpoints, LinkSnapshot } from '../src/types.js';

import { freePort } from '../src/util/ports.js';

export { freePort };

export class DirectLink implements Link {
  readonly kind = 'relay' as const;

  async start(): Promise<LinkEndpoints> {
    const a = { host: '127.0.0.1', port: await freePort() };
    const b = { host: '127.0.0.1', port: await freePort() };
    return { incoming: { listen: a, connect: a }, recover: { listen: b, connect: b } };
  }

  wrapCommand(_side: 'source' | 'destination', file: string, args: string[]) {
    return { file, args };
  }

  async apply(): Promise<void> {
    throw new Error('the direct link has no faults: use the relay');
  }

  async restore(): Promise<void> {}

  async snapshot(): Promise<LinkSnapshot> {
    const d = { state: 'up' as const, latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0 };
    return { kind: 'relay', up: true, flapping: false, connections: 0, 'source-to-destination': d, 'destination-to-source': { ...d } };
  }

  async stop(): Promise<void> {}
}
