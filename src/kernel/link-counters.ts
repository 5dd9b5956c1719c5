/**
 * What the kernel link reads back from the kernel: per direction the bytes sent on the veth end
 * (`ip -s link`) and the bytes our nft rules dropped (the named counter), and the number of
 * established TCP connections from the source to the destination (`ss`).
 *
 * Reading takes a few `ip netns exec` calls (~0.1-0.25 s here), too slow for a UI polling at
 * 10 Hz: update() by default keeps the last values and starts a new read in the background when
 * they are older than MAX_AGE_MS; `fresh` waits for a new read (tests, the end of a drill).
 */
import type { Direction } from '../types.js';
import { DIRECTIONS } from '../types.js';
import { linkStats, netnsExec } from './ip.js';
import { listCounter, nft, parseCounter } from './nft.js';
import { COUNTER, TABLE, type DirTopo } from './render.js';
import type { Runner } from './run.js';

/** How old the values may be before update() starts a new read in the background. */
const MAX_AGE_MS = 500;

export interface LinkCountersOptions {
  runner: Runner;
  dirs: Record<Direction, DirTopo>;
  /** Where `ss` runs, and the peer it counts connections to. */
  sourceNs: string;
  destinationAddress: string;
  /** Whether our nft table exists (known only after the link started). */
  nftOk: () => boolean;
}

export class LinkCounters {
  private readonly bytes: Record<Direction, { forwarded: number; dropped: number }> = {
    'source-to-destination': { forwarded: 0, dropped: 0 },
    'destination-to-source': { forwarded: 0, dropped: 0 },
  };
  private lastConnections = 0;
  private readAt = 0;
  private reading: Promise<void> | null = null;

  constructor(private readonly opts: LinkCountersOptions) {}

  /** Bytes sent and dropped in direction `d`, as of the last read. */
  of(d: Direction): { forwarded: number; dropped: number } {
    return this.bytes[d];
  }

  /** Established connections from source to destination, as of the last read. */
  get connections(): number {
    return this.lastConnections;
  }

  /** Read now and wait (`fresh`), or start a read in the background if the values are stale. */
  async update(fresh = false): Promise<void> {
    if (fresh) await this.refresh();
    else if (Date.now() - this.readAt > MAX_AGE_MS) void this.refresh().catch(() => undefined);
  }

  /** One read at a time; callers arriving during a read share it. */
  private refresh(): Promise<void> {
    this.reading ??= this.read().finally(() => {
      this.readAt = Date.now();
      this.reading = null;
    });
    return this.reading;
  }

  /** Best effort: a failed read keeps the last values (a snapshot never throws). */
  private async read(): Promise<void> {
    const { runner, dirs } = this.opts;
    await Promise.all([
      this.readConnections(),
      ...DIRECTIONS.map(async (d) => {
        const { ns, dev } = dirs[d];
        try {
          const { stdout } = await runner(linkStats(dev, { ns }));
          const rows = JSON.parse(stdout) as Array<{ stats64?: { tx?: { bytes?: number } } }>;
          this.bytes[d].forwarded = rows[0]?.stats64?.tx?.bytes ?? this.bytes[d].forwarded;
        } catch {
          /* keep the last value */
        }
        if (this.opts.nftOk()) {
          try {
            const { stdout } = await runner(nft(ns, listCounter(TABLE, COUNTER)));
            this.bytes[d].dropped = parseCounter(stdout).bytes;
          } catch {
            /* keep the last value */
          }
        }
      }),
    ]);
  }

  private async readConnections(): Promise<void> {
    try {
      const { stdout } = await this.opts.runner(
        netnsExec(this.opts.sourceNs, 'ss', ['-H', '-t', '-n', 'state', 'established', 'dst', this.opts.destinationAddress]),
      );
      this.lastConnections = stdout.split('\n').filter((l) => l.trim() !== '').length;
    } catch {
      /* keep the last value */
    }
  }
}

/**
 * A cut resets the migration's connections at once on both ends, as the relay does. The nft
 * reject alone only answers packets as they are sent, so a side that is only receiving (a
 * destination whose vCPUs all wait) would never hear of it. `ss -K` aborts the sockets
 * (the kernel's SOCK_DESTROY) to `peer` in each `ns`: each side sees the reset immediately.
 */
export async function abortConnections(runner: Runner, peers: Array<[ns: string, peer: string]>): Promise<void> {
  await Promise.all(
    peers.map(async ([ns, peer]) => {
      try {
        await runner(netnsExec(ns, 'ss', ['-K', '-t', 'state', 'connected', 'dst', peer]));
      } catch {
        // A kernel without INET_DIAG_DESTROY: the reject rules still reset on the next packet.
      }
    }),
  );
}
