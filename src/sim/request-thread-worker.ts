/**
 * The source's request thread (x-preempt-thread; its main-thread side is request-thread.ts): it
 * owns the preempt channel's connection, reads page requests on its reverse direction and
 * answers each at once from the guest's page versions. It connects during precopy, but is handed
 * the versions only at switchover (or with a resume's connect): from then on the source's guest
 * is stopped (it runs on the destination), so they are frozen: no lock, and the page bytes follow
 * from (page, version). A request read before they come waits for them. This thread sleeps until
 * a request arrives, so a busy main thread (the background push) does not delay the answer.
 */
import { readlinkSync } from 'node:fs';
import net from 'node:net';
import { parentPort } from 'node:worker_threads';
import { socketErrorText } from './channel.js';
import { hopClock } from './loop-stats.js';
import type { FromThread, ToThread } from './request-thread.js';
import { encodePagesInto, pageFrameBytes, ReturnPathDecoder } from './wire.js';

const port = parentPort;
if (!port) throw new Error('request-thread-worker.ts runs only as a worker thread (src/sim/request-thread.ts starts it)');
const post = (m: FromThread) => port.postMessage(m);

/** This thread's kernel id, for the main thread's `chrt` (null where /proc has no thread-self). */
function threadId(): number | null {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return null;
  }
}

/** The current connection, how to close it without reporting the close, and how to hand it the frozen versions. */
let current: { gen: number; sock: net.Socket; quiet: boolean; freeze(v: SharedArrayBuffer): void } | null = null;

function open(m: Extract<ToThread, { type: 'connect' }>): void {
  let versions = m.versions ? new Uint32Array(m.versions) : null;
  const frameBytes = pageFrameBytes(m.pageSize);
  const sock = net.connect({ host: m.host, port: m.port });
  sock.setNoDelay(true);
  const conn = {
    gen: m.gen,
    sock,
    quiet: false,
    freeze: (v: SharedArrayBuffer) => {
      versions = new Uint32Array(v);
      serve(hopClock());
    },
  };
  current = conn;
  let reported = false;
  const lost = (reason: string) => {
    if (reported || conn.quiet) return;
    reported = true;
    sock.destroy();
    post({ type: 'lost', gen: m.gen, reason });
  };
  // The pages asked for in one read, answered in one write.
  let pages: number[] = [];
  let requests = 0;
  const decoder = new ReturnPathDecoder(m.pageCount, (msg) => {
    if (msg.type !== 'req-pages') throw new Error(`only page requests belong on the preempt channel's return direction, got ${msg.type}`);
    requests++;
    for (let i = 0; i < msg.count; i++) pages.push(msg.start + i);
  });
  sock.on('connect', () => {
    sock.write(Buffer.from(m.header));
    post({ type: 'up', gen: m.gen });
  });
  sock.on('data', (chunk: Buffer) => {
    const read = hopClock();
    try {
      decoder.push(chunk);
    } catch (e) {
      return lost(`return path protocol error (preempt channel): ${(e as Error).message}`);
    }
    serve(read);
  });
  /** Answer what was asked, once the versions are frozen. */
  const serve = (read: number) => {
    if (!pages.length || !versions || reported || conn.quiet) return;
    const buf = encodePagesInto(Buffer.allocUnsafe(frameBytes * pages.length), pages, versions, m.pageSize);
    sock.write(buf);
    const written = hopClock();
    post({ type: 'served', gen: m.gen, requests, pages, bytes: buf.length, read, written });
    pages = [];
    requests = 0;
  };
  sock.on('error', (e: NodeJS.ErrnoException) => lost(`preempt channel: ${socketErrorText(e)}`));
  sock.on('close', () => lost('the preempt channel was closed by the peer'));
}

port.on('message', (m: ToThread) => {
  if (m.type === 'connect') {
    if (current) {
      current.quiet = true;
      current.sock.destroy();
    }
    return open(m);
  }
  if (m.type === 'versions') {
    if (current?.gen === m.gen) current.freeze(m.versions);
    return;
  }
  // close: the main thread closed the channel (a failure, a newer connection, or completion).
  if (!current || current.gen !== m.gen) return;
  current.quiet = true;
  if (m.graceful) current.sock.end();
  else current.sock.destroy();
  current = null;
});

post({ type: 'tid', tid: threadId() });
