/**
 * Reads into reused buffers: the relay's sockets read through Node's `onread` into buffers
 * taken from a pool and given back once the other socket has written them.
 *
 * Why: a plain socket allocates a fresh 64 KiB buffer per read. At loopback speed that is
 * ~16 000 allocations per GB; freed in bulk at each GC, glibc returns the memory to the kernel
 * and the next reads fault it back in page by page. Measured on the development machine, that
 * made the relay's kernel time per GB twice socat's (1.2 s against 0.6 s) on top of the
 * allocation and GC in user space. With the pool, memory is touched once and reused.
 *
 * The dialled socket takes `onread` through Node's public `net.connect` option; the accepted one
 * is moved to such a socket by src/util/adopt-socket.ts (with its fallback to a plain socket).
 */
import net from 'node:net';
import { adoptWithOnRead } from '../util/adopt-socket.js';

/**
 * One read's worth. socat's `-b 131072` was the first choice; 512 KiB measured better on the
 * idle development machine (`npm run bench -- --only throughput,link-accuracy`, runs of each
 * size alternated): CPU per GB 0.68 and 0.76 s against 0.89 (staged, 5 ms set: 1.27-1.29
 * against 1.61 s); the vanilla page request's p50 over socat's +2.5 to +6.0 ms in four runs
 * against +3.8 to +6.5 in three (weak); the preempt rows unchanged.
 */
export const READ_BUFFER_BYTES = 512 * 1024;

/**
 * Free buffers kept beyond this are left to the GC (the pool never holds more than 8 MiB free).
 * A direction with a fault set holds its big chunks' buffers until written (./relay-pump.ts):
 * up to the delay queue's 4 MiB bound (./faults/delay-queue.ts), 8 full buffers a direction, and
 * they come back as fast as they went; a pool smaller than that would allocate afresh under
 * every bulk push.
 */
export const MAX_FREE = 16;

export class ReadPool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out that were not in the pool (for tests: a pool that works stops allocating). */
  allocated = 0;
  /**
   * Buffers taken and not given back: each reading socket's next read buffer, and every chunk
   * read and not yet in the kernel (for tests: what the relay holds).
   */
  lent = 0;

  constructor(readonly size = READ_BUFFER_BYTES) {}

  take(): Buffer {
    this.lent++;
    const b = this.free.pop();
    if (b) return b;
    this.allocated++;
    // Not from Node's shared slab: each buffer is its own memory, reused whole.
    return Buffer.allocUnsafeSlow(this.size);
  }

  /** Gives back a buffer taken from this pool once nothing refers to its bytes any more. */
  give(b: Buffer): void {
    this.lent--;
    if (b.length === this.size && this.free.length < MAX_FREE) this.free.push(b);
  }
}

/**
 * Called for every read: `chunk` is a view of a pool buffer; call `release` once it is written.
 * Returning false stops reading (Node's `onread` contract: the handle stops, the stream stays
 * flowing) until the socket's `resume()`, which then only restarts the handle.
 */
export type PooledReader = (chunk: Buffer, release: () => void) => boolean;

/**
 * The `onread` option for a socket whose reads go to `reader()` (looked up per read, so the
 * reader can be attached after the socket exists; reading must be paused until then).
 */
export function pooledOnRead(pool: ReadPool, reader: () => PooledReader | undefined): net.OnReadOpts {
  return {
    buffer: () => pool.take(),
    callback: (bytes: number, buf: Uint8Array) => {
      const whole = buf as Buffer;
      const read = reader();
      return read ? read(whole.subarray(0, bytes), () => pool.give(whole)) : true;
    },
  };
}

/**
 * The accepted socket `accepted` (from a server listening with `pauseOnConnect: true`, so it
 * has read nothing) as a socket reading with `onread`, paused until resumed; or `accepted`
 * itself when its handle cannot be moved (then it reads with fresh buffers, emitting 'data',
 * also paused). Either way the caller owns the returned socket only.
 */
export function adoptPooled(accepted: net.Socket, onread: net.OnReadOpts): { socket: net.Socket; pooled: boolean } {
  const { socket, adopted } = adoptWithOnRead(accepted, onread, { paused: true });
  return { socket, pooled: adopted };
}
