/**
 * x-preempt-thread: the source's postcopy-preempt channel served by a thread of its own (the
 * worker is request-thread-worker.ts), off the main event loop that runs the background push.
 * On the main thread a page request waits for the push's turn to end, and with both VMs busy on
 * two cores the main thread also waits for a CPU: the floor bench (bench/fault-floor.ts) put that
 * path's p99 at 16-18 ms and a sleeping request thread's at 4-5 ms. x-preempt-thread-fifo also
 * gives that thread SCHED_FIFO 1 (`chrt -f -p 1 <tid>`; 0.5-1 ms there), as QEMU's users do for
 * its postcopy threads.
 *
 * The destination then writes its page requests on the preempt channel's reverse direction (the
 * header says so, WireHeader.requestsOnPreempt): Node cannot share a socket between threads, and
 * the main channel's return path belongs to the main thread. Requests sent before the preempt
 * channel is up still go on the main channel and are served there, as without the option.
 *
 * What the thread sent is reported back in batches, and the main thread books it (to-send set,
 * counters, hop times): until then the push may send a page again, which the destination drops
 * as a duplicate (QEMU's EEXIST), as with a page pushed while its request was in flight.
 */
import { Worker } from 'node:worker_threads';
import { execa } from 'execa';

export type ToThread =
  /** `versions`: the frozen page versions, or null during precopy (a `versions` message follows at switchover). */
  | { type: 'connect'; gen: number; host: string; port: number; header: Uint8Array; versions: SharedArrayBuffer | null; pageSize: number; pageCount: number }
  | { type: 'versions'; gen: number; versions: SharedArrayBuffer }
  | { type: 'close'; gen: number; graceful: boolean };

export type FromThread =
  | { type: 'tid'; tid: number | null }
  | { type: 'up'; gen: number }
  /** `requests` page requests read at `read` (hopClock, ms), answered with `pages` written at `written`. */
  | { type: 'served'; gen: number; requests: number; pages: number[]; bytes: number; read: number; written: number }
  | { type: 'lost'; gen: number; reason: string };

export interface ThreadedPreemptHandlers {
  up(): void;
  served(m: Extract<FromThread, { type: 'served' }>): void;
  lost(reason: string): void;
}

/** The preempt channel as the source's main thread sees it when the request thread owns it. */
export class ThreadedPreempt {
  private closed = false;

  constructor(
    private readonly thread: RequestThread,
    readonly gen: number,
  ) {}

  get open(): boolean {
    return !this.closed;
  }

  /** Close after what is queued is sent (the migration completed). */
  end(): void {
    this.close(true);
  }

  /** Close now (a failure or a newer connection). */
  destroy(): void {
    this.close(false);
  }

  private close(graceful: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.thread.close(this, graceful);
  }
}

/** What x-query-migrate reports of the thread (`x-preempt-thread` in the source's query-migrate). */
export interface RequestThreadInfo {
  /** Pages the thread answered, over the VM's life. */
  served: number;
  /** The thread's scheduling: normal, fifo, or why fifo was refused. */
  priority: string;
}

export class RequestThread {
  private readonly worker: Worker;
  private gen = 0;
  private active: { handle: ThreadedPreempt; handlers: ThreadedPreemptHandlers } | null = null;
  private readonly tid: Promise<number | null>;
  private served = 0;
  private priority = 'normal';
  private fifoAsked = false;

  constructor(private readonly log: (msg: string) => void) {
    // The worker sits beside this module in dist/ (tests and the CLI run the built sim).
    this.worker = new Worker(new URL('./request-thread-worker.js', import.meta.url));
    this.worker.unref();
    let gotTid: (tid: number | null) => void = () => {};
    this.tid = new Promise((r) => (gotTid = r));
    this.worker.on('message', (m: FromThread) => {
      if (m.type === 'tid') return gotTid(m.tid);
      const a = this.active;
      if (!a || a.handle.gen !== m.gen || !a.handle.open) return;
      if (m.type === 'up') return a.handlers.up();
      if (m.type === 'served') {
        this.served += m.pages.length;
        return a.handlers.served(m);
      }
      this.active = null;
      a.handlers.lost(m.reason);
    });
    this.worker.on('error', (e) => {
      this.log(`x-preempt-thread: the request thread failed: ${e.message}`);
      const a = this.active;
      this.active = null;
      if (a?.handle.open) a.handlers.lost(`the request thread failed: ${e.message}`);
    });
  }

  /**
   * Connect the preempt channel from the thread; `header` is its stream header. `versions`: the
   * guest's, once frozen (a resume); null during precopy, and `freeze` hands them over at
   * switchover.
   */
  connect(addr: { host: string; port: number }, header: Buffer, versions: Uint32Array | null, pageSize: number, pageCount: number, handlers: ThreadedPreemptHandlers): ThreadedPreempt {
    this.active?.handle.destroy();
    const handle = new ThreadedPreempt(this, ++this.gen);
    this.active = { handle, handlers };
    const msg: ToThread = { type: 'connect', gen: handle.gen, host: addr.host, port: addr.port, header: new Uint8Array(header), versions: versions && shared(versions), pageSize, pageCount };
    this.worker.postMessage(msg);
    return handle;
  }

  /** The guest has stopped here (switchover): its versions, frozen from now on, go to the thread. */
  freeze(handle: ThreadedPreempt, versions: Uint32Array): void {
    if (this.active?.handle !== handle) return;
    this.worker.postMessage({ type: 'versions', gen: handle.gen, versions: shared(versions) } satisfies ToThread);
  }

  close(handle: ThreadedPreempt, graceful: boolean): void {
    if (this.active?.handle === handle) this.active = null;
    this.worker.postMessage({ type: 'close', gen: handle.gen, graceful } satisfies ToThread);
  }

  /** x-preempt-thread-fifo: SCHED_FIFO 1 for the thread, once; a refusal is logged and the thread runs on as it is. */
  async makeFifo(): Promise<void> {
    if (this.fifoAsked) return;
    this.fifoAsked = true;
    const tid = await this.tid;
    if (tid === null) {
      this.priority = 'normal (no /proc/thread-self: the thread id is unknown)';
      this.log(`x-preempt-thread-fifo: could not set SCHED_FIFO: ${this.priority}; the request thread runs at normal priority`);
      return;
    }
    const refused = await setFifo(tid);
    this.priority = refused ? `normal (${refused})` : 'fifo';
    this.log(refused ? `x-preempt-thread-fifo: could not set SCHED_FIFO 1 on thread ${tid}: ${refused}; the request thread runs at normal priority` : `x-preempt-thread-fifo: request thread ${tid} runs at SCHED_FIFO 1`);
  }

  info(): RequestThreadInfo {
    return { served: this.served, priority: this.priority };
  }

  terminate(): void {
    void this.worker.terminate();
  }
}

/** A copy of `versions` the thread can read (taken once they are frozen, so it needs no lock). */
function shared(versions: Uint32Array): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(versions.byteLength);
  new Uint32Array(sab).set(versions);
  return sab;
}

/**
 * `chrt -f -p 1 <tid>`: null once set, else why not (no chrt, not permitted, no such thread).
 * `command` is for tests (a chrt that is not there).
 */
export async function setFifo(tid: number, command = 'chrt'): Promise<string | null> {
  try {
    const r = await execa(command, ['-f', '-p', '1', String(tid)], { reject: false, timeout: 5000 });
    if (r.failed) {
      const why = (r.stderr || r.stdout || r.shortMessage || '').toString().trim().split('\n')[0];
      return (r as { code?: string }).code === 'ENOENT' ? `${command} is not installed (util-linux)` : why || `${command} exited with ${r.exitCode}`;
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
