/**
 * An accepted socket re-made to read with Node's `onread` (reads into buffers the caller gives,
 * instead of a fresh buffer per read through the stream machinery). Node offers `onread` only
 * to sockets it constructs (`net.connect`), and `net.Server` builds accepted sockets without
 * it; so the accepted socket's handle (`_handle`, the one private field this touches) moves into
 * a socket constructed with the option — what `net.Server` itself does, plus `onread`.
 *
 * Used by the relay (src/link/read-pool.ts) and the sim destination (src/sim/channel.ts), both
 * for the same cost: a fresh 64 KiB buffer per read means thousands of allocations per GB, a
 * young-generation collection every 32 MiB, and (freed in bulk) memory the kernel must fault
 * back in. The handle is checked first: on a Node where it is not what is expected, the
 * accepted socket is returned as it is and the caller reads it as a stream.
 *
 * The accepted socket must come from a server listening with `pauseOnConnect: true`, so no byte
 * was read before the handle moved.
 */
import net from 'node:net';

interface StreamHandle {
  readStart(): number;
  readStop(): number;
  useUserBuffer(b: Uint8Array): void;
}

function isStreamHandle(h: unknown): h is StreamHandle {
  const o = h as Partial<StreamHandle> | null;
  return typeof o === 'object' && o !== null && typeof o.readStart === 'function' && typeof o.readStop === 'function' && typeof o.useUserBuffer === 'function';
}

/**
 * `accepted` as a socket reading with `onread` (`adopted: true`; `accepted` is destroyed without
 * closing the handle, so its server stops counting it), or `accepted` itself (`adopted: false`).
 * The returned socket starts paused when `paused`; the caller owns it only.
 */
export function adoptWithOnRead(accepted: net.Socket, onread: net.OnReadOpts, opts: { paused: boolean }): { socket: net.Socket; adopted: boolean } {
  const holder = accepted as unknown as { _handle?: unknown };
  const handle = holder._handle;
  if (!isStreamHandle(handle) || accepted.destroyed) return { socket: accepted, adopted: false };
  const options = { handle, allowHalfOpen: accepted.allowHalfOpen, readable: true, writable: true, pauseOnCreate: opts.paused, onread };
  const socket = new net.Socket(options as net.SocketConstructorOpts);
  holder._handle = null;
  accepted.destroy();
  return { socket, adopted: true };
}
