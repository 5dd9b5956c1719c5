/**
 * The bench's baseline hop: `socat -b 131072` (Debian's C userspace TCP forwarder) between the
 * source and the destination, one listener per route, forking per connection (the preempt
 * channel and the recovery each open their own). It shapes nothing: the rows it gives say what
 * any userspace hop costs on this machine, so the relay's rows can be read against it.
 */
import { readFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import type { HostPort, Link, LinkEndpoints, LinkSnapshot } from '../src/types.js';
import { freePort } from './direct-link.js';

export const SOCAT_BUFFER_BYTES = 131072;

/** Why socat cannot be used here, or undefined when it can. */
export async function socatMissing(): Promise<string | undefined> {
  const r = await execa('socat', ['-V'], { reject: false });
  if (r.failed) return 'socat is not installed (scripts/provision.sh --ci installs it; or apt-get install socat)';
  return undefined;
}

/** A listener on `port` shows in /proc/net/tcp as state 0A beside the port in hex. */
function listening(port: number): boolean {
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((l) => l.includes(local) && / 0A /.test(l));
}

/**
 * socat listeners still running, by process group. They are detached (so that stop() ends a
 * listener and its forked children together), which also puts them out of reach of execa's
 * cleanup: a bench stopped by Ctrl-C or kill left them listening. Killed on exit and on SIGINT
 * and SIGTERM.
 */
const liveGroups = new Set<number>();
let exitHooked = false;

function killGroups(): void {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  liveGroups.clear();
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', killGroups);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      killGroups();
      process.exit(code);
    });
  }
}

export class SocatLink implements Link {
  readonly kind = 'relay' as const;
  private readonly children: ResultPromise[] = [];

  /**
   * `targets`: forward to these (say, another link's destination ports, so that two forwarders
   * stand in front of the same servers); free ports of its own otherwise.
   */
  constructor(private readonly targets?: { incoming: HostPort; recover: HostPort }) {}

  /** The process groups of the listeners and their per-connection children (for CPU accounting). */
  get groups(): number[] {
    return this.children.flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  }

  async start(): Promise<LinkEndpoints> {
    const route = async (given?: HostPort): Promise<{ listen: HostPort; connect: HostPort }> => {
      const target = given ?? { host: '127.0.0.1', port: await freePort() };
      const front = { host: '127.0.0.1', port: await freePort() };
      const child = execa(
        'socat',
        ['-b', String(SOCAT_BUFFER_BYTES), `TCP-LISTEN:${front.port},bind=${front.host},reuseaddr,fork`, `TCP:${target.host}:${target.port}`],
        // Its own process group: stop() ends the listener and every forked child together.
        { detached: true, reject: false, stdio: 'ignore' },
      );
      this.children.push(child);
      if (child.pid !== undefined) {
        liveGroups.add(child.pid);
        hookExit();
      }
      const deadline = Date.now() + 5000;
      while (!(listening(front.port))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`socat did not listen on ${front.host}:${front.port}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return { listen: target, connect: front };
    };
    return { incoming: await route(this.targets?.incoming), recover: await route(this.targets?.recover) };
  }

  wrapCommand(_side: 'source' | 'destination', file: string, args: string[]) {
    return { file, args };
  }

  async apply(): Promise<void> {
    throw new Error('the socat link has no faults: use the relay');
  }

  async restore(): Promise<void> {}

  async snapshot(): Promise<LinkSnapshot> {
    const d = { state: 'up' as const, latencyMs: 0, jitterMs: 0, rateBytesPerSec: 0, lossPercent: 0, bytesForwarded: 0, bytesDropped: 0 };
    return { kind: 'relay', up: true, flapping: false, connections: 0, 'source-to-destination': d, 'destination-to-source': { ...d } };
  }

  async stop(): Promise<void> {
    for (const child of this.children.splice(0)) {
      if (child.pid !== undefined) {
        liveGroups.delete(child.pid);
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      await child;
    }
  }
}

