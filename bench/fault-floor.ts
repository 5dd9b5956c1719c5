/**
 * The floor of a postcopy fault's latency on this machine (issue 13), without the sim: can a
 * 4 KiB page request be answered in < 2 ms at p99 while a bulk push keeps both cores busy, and
 * does it take a thread that sleeps until asked (QEMU's shape) to get there?
 *
 * Two processes of their own over loopback TCP, shaped like a postcopy migration with
 * postcopy-preempt. The source's main thread pushes 16-page batches to the destination as fast
 * as the socket takes them (the sim's batch, high-water mark and 0.25 ms turns); the
 * destination's main thread copies each page into guest memory. Meanwhile one faulting "vCPU"
 * asks for a random page, waits until it is placed, thinks 1 ms, and asks again. Variants:
 *
 *   main    the request path on the main threads (today's sim): requests on the main connection's
 *           return direction, pages on a second (preempt) connection.
 *   worker  the request path in a worker thread on each side, on a connection of its own (Node
 *           cannot share a socket between threads): the destination's worker asks and awaits, the
 *           source's worker answers from guest memory in a SharedArrayBuffer.
 *   vcpu    as worker, but the fault is taken by a third thread blocked in Atomics.wait (a vCPU in
 *           a userfault); the destination's worker is woken by Atomics.waitAsync.
 *
 * Each row runs with the push and without it (the idle control). Experiments change only the
 * request-path threads' scheduling: `fifo` SCHED_FIFO 1 (`chrt -f -p 1 <tid>`), `nice` nice -20
 * (`renice`), `slice` an EEVDF slice of 0.1 ms (sched_setattr's sched_runtime for SCHED_OTHER,
 * Linux >= 6.12, through python3's ctypes: no tool here sets it). Every thread
 * records its run-queue wait (/proc/thread-self/schedstat), GC pauses and event-loop delay; every
 * fault its hops, joined on one clock (timeOrigin + now) across threads and processes.
 *
 *   node dist/bench/run.js --only fault-floor [--quick]
 *
 * The children end when the bench's pipe to them closes, so a killed bench leaves nothing behind.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { execa, type ResultPromise } from 'execa';
import os from 'node:os';

const PAGE = 4096;
/** Guest memory on each side: big enough that the push does not sit in the cache. */
const MEMORY = 128 * 1024 * 1024;
const PAGES = MEMORY / PAGE;
/** The sim's postcopy batch (src/sim/page-sender.ts), its high-water mark and its turn length. */
const BATCH = 16;
const HIGH_WATER = 128 * 1024;
const TURN_MS = 0.25;
/** Push frame: [u32 page][page]. Request: [u32 seq][u32 page]. Reply: [u32 seq][u32 page][f64 read][f64 written][page]. */
const PUSH_FRAME = 4 + PAGE;
const REQUEST = 8;
const REPLY_HEAD = 24;
const REPLY = REPLY_HEAD + PAGE;
const THINK_MS = 1;

export type FloorVariant = 'main' | 'worker' | 'vcpu';
/** How the request-path threads are scheduled (an experiment unless 'normal'). */
export type Prio = 'normal' | 'fifo' | 'nice' | 'slice';

export interface ThreadStats {
  thread: string;
  tid: number;
  cpuMs: number;
  /** Time runnable but waiting for a CPU over the window. */
  waitMs: number;
  gcCount: number;
  gcMaxMs: number;
  /** Event-loop delay p99 / max, ms (-1: a thread without a loop while measured). */
  loopP99Ms: number;
  loopMaxMs: number;
}

/** One fault: absolute times (ms, timeOrigin + now) as it passed each point. */
type Hops = [asked: number, sent: number, read: number, written: number, placed: number, awake: number];

interface SideResult {
  cpuMs: number;
  pushBytes: number;
  threads: ThreadStats[];
  faults: Hops[];
}

export interface FloorRun {
  variant: FloorVariant;
  push: boolean;
  prio: Prio;
  seconds: number;
  pushMBps: number;
  /** Fault latency asked → awake, ms, in order. */
  latencies: number[];
  faults: Hops[];
  threads: Record<'source' | 'destination', ThreadStats[]>;
  cpuMsPerGB: Record<'source' | 'destination', number>;
}

const now = () => performance.timeOrigin + performance.now();

// ---- per-thread figures ---------------------------------------------------------------------------

/** What delays one thread: read at `begin` and `end` of the measured window, from inside it. */
function probe(thread: string, loop: boolean) {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  const sched = () => readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ').map(Number);
  const h = loop ? monitorEventLoopDelay({ resolution: 1 }) : null;
  let gcCount = 0;
  let gcMaxMs = 0;
  let on = false;
  new PerformanceObserver((l) => {
    if (!on) return;
    for (const e of l.getEntries()) {
      gcCount++;
      gcMaxMs = Math.max(gcMaxMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  let start = sched();
  return {
    tid,
    begin() {
      start = sched();
      on = true;
      h?.enable();
    },
    end(): ThreadStats {
      const e = sched();
      h?.disable();
      on = false;
      return {
        thread,
        tid,
        cpuMs: (e[0]! - start[0]!) / 1e6,
        waitMs: (e[1]! - start[1]!) / 1e6,
        gcCount,
        gcMaxMs,
        loopP99Ms: h ? h.percentile(99) / 1e6 : -1,
        loopMaxMs: h ? h.max / 1e6 : -1,
      };
    },
  };
}

/** Calls `f` with each complete `size`-byte frame read from `s` (frames may span reads). */
function frames(s: net.Socket, size: number, f: (b: Buffer) => void): void {
  let carry = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    let b = carry.length ? Buffer.concat([carry, d]) : d;
    while (b.length >= size) {
      f(b.subarray(0, size));
      b = b.subarray(size);
    }
    carry = Buffer.from(b);
  });
}

/** Resets when the other process ends first at teardown are expected; a run's figures are already taken by then. */
function quiet(s: net.Socket): net.Socket {
  s.setNoDelay(true);
  return s.on('error', () => {});
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.off('error', reject);
      quiet(s);
      resolve(s);
    });
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

// ---- the request path ----------------------------------------------------------------------------

/** The source's side: answer each request with the page from `mem`, stamped when read and written. */
function answer(rx: net.Socket, tx: net.Socket, mem: Buffer): void {
  frames(rx, REQUEST, (q) => {
    const read = now();
    const page = q.readUInt32LE(4);
    const r = Buffer.allocUnsafe(REPLY);
    q.copy(r, 0, 0, REQUEST);
    mem.copy(r, REPLY_HEAD, page * PAGE, (page + 1) * PAGE);
    r.writeDoubleLE(read, 8);
    r.writeDoubleLE(now(), 16);
    tx.write(r);
  });
}

/**
 * The destination's side: `ask(page)` sends a request; each reply is placed in `mem` and
 * `placed` is called with its hops (asked = sent; the vCPU variant fills in its own ends).
 */
function requester(tx: net.Socket, rx: net.Socket, mem: Buffer, placed: (h: Hops) => void) {
  let seq = 0;
  const sent = new Map<number, number>();
  frames(rx, REPLY, (r) => {
    const s = r.readUInt32LE(0);
    const page = r.readUInt32LE(4);
    r.copy(mem, page * PAGE, REPLY_HEAD, REPLY);
    const t = now();
    const t0 = sent.get(s)!;
    sent.delete(s);
    placed([t0, t0, r.readDoubleLE(8), r.readDoubleLE(16), t, t]);
  });
  return (page: number) => {
    const q = Buffer.allocUnsafe(REQUEST);
    q.writeUInt32LE(++seq, 0);
    q.writeUInt32LE(page, 4);
    sent.set(seq, now());
    tx.write(q);
  };
}

const randomPage = () => Math.floor(Math.random() * PAGES);

/** One vCPU faulting on the event loop: ask, await the page, think THINK_MS, again, until stopped. */
function faultLoop(ask: (page: number) => void, onPlaced: (f: (h: Hops) => void) => void, out: { measuring: boolean; faults: Hops[]; running: boolean }) {
  onPlaced((h) => {
    if (out.measuring) out.faults.push(h);
    if (out.running) setTimeout(() => out.running && ask(randomPage()), THINK_MS);
  });
  ask(randomPage());
}

// ---- the push ------------------------------------------------------------------------------------

/** The source's main thread: batches of pages from `mem`, in order, as fast as `s` takes them. */
function push(s: net.Socket, mem: Buffer): () => void {
  let next = 0;
  let stopped = false;
  const spare = Array.from({ length: 8 }, () => Buffer.allocUnsafe(BATCH * PUSH_FRAME));
  let starved = false;
  const pump = () => {
    const t0 = performance.now();
    while (!stopped) {
      if (s.writableLength >= HIGH_WATER) return void s.once('drain', pump);
      const b = spare.pop();
      if (!b) return void (starved = true);
      for (let i = 0; i < BATCH; i++, next = (next + 1) % PAGES) {
        b.writeUInt32LE(next, i * PUSH_FRAME);
        mem.copy(b, i * PUSH_FRAME + 4, next * PAGE, (next + 1) * PAGE);
      }
      s.write(b, () => {
        spare.push(b);
        if (starved) {
          starved = false;
          setImmediate(pump);
        }
      });
      if (performance.now() - t0 > TURN_MS) return void setImmediate(pump);
    }
  };
  pump();
  return () => void (stopped = true);
}

/** The destination's main thread: each pushed page copied into `mem`; returns the bytes placed so far. */
function place(s: net.Socket, mem: Buffer): () => number {
  const head = Buffer.alloc(4);
  let off = 0;
  let page = 0;
  let bytes = 0;
  s.on('data', (d: Buffer) => {
    let i = 0;
    while (i < d.length) {
      if (off < 4) {
        head[off++] = d[i++]!;
        if (off === 4) page = head.readUInt32LE(0);
        continue;
      }
      const n = Math.min(PUSH_FRAME - off, d.length - i);
      d.copy(mem, page * PAGE + off - 4, i, i + n);
      i += n;
      off += n;
      if (off === PUSH_FRAME) off = 0;
    }
    bytes += d.length;
  });
  return () => bytes;
}

// ---- workers ---------------------------------------------------------------------------------------

type WorkerRole = 'source-answer' | 'destination-ask' | 'destination-vcpu';
interface WorkerData {
  floor: WorkerRole;
  mem: SharedArrayBuffer;
  /** vcpu: [asked seq, page, placed seq, (sleep), stop, measuring, go]; times: the last fault's hops. */
  ctrl?: SharedArrayBuffer;
  times?: SharedArrayBuffer;
  port?: number;
  vcpu?: boolean;
}
/** Atomics.waitAsync (Node 20 has it; this TypeScript lib predates it). */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync;
const ASKED = 0;
const ASK_PAGE = 1;
const PLACED = 2;
const SLEEP = 3;
const STOP = 4;
const MEASURING = 5;
const GO = 6;

async function runWorker(d: WorkerData): Promise<void> {
  const port = parentPort!;
  const mem = Buffer.from(d.mem);
  const p = probe(d.floor, d.floor !== 'destination-vcpu');
  if (d.floor === 'destination-vcpu') {
    const ctrl = new Int32Array(d.ctrl!);
    const times = new Float64Array(d.times!);
    const faults: Hops[] = [];
    port.postMessage({ type: 'ready', tid: p.tid });
    Atomics.wait(ctrl, GO, 0);
    let measuring = false;
    while (!Atomics.load(ctrl, STOP)) {
      if (!measuring && Atomics.load(ctrl, MEASURING)) {
        measuring = true;
        p.begin();
      }
      Atomics.wait(ctrl, SLEEP, 0, THINK_MS);
      const done = Atomics.load(ctrl, PLACED);
      const asked = now();
      Atomics.store(ctrl, ASK_PAGE, randomPage());
      Atomics.add(ctrl, ASKED, 1);
      Atomics.notify(ctrl, ASKED);
      while (Atomics.load(ctrl, PLACED) === done && !Atomics.load(ctrl, STOP)) Atomics.wait(ctrl, PLACED, done, 50);
      const awake = now();
      if (measuring) faults.push([asked, times[1]!, times[2]!, times[3]!, times[4]!, awake]);
    }
    // Give the observer's GC entries a turn to arrive before reading them.
    await new Promise((r) => setImmediate(r));
    port.postMessage({ type: 'result', stats: p.end(), faults });
    return;
  }
  let stats: ThreadStats | null = null;
  const state = { measuring: false, running: true, faults: [] as Hops[] };
  if (d.floor === 'source-answer') {
    const s = await connect(d.port!);
    answer(s, s, mem);
    port.postMessage({ type: 'ready', tid: p.tid });
  } else {
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port.postMessage({ type: 'ready', tid: p.tid, port: (server.address() as net.AddressInfo).port });
    const s = quiet(await accepted);
    server.close();
    let onPlaced: (h: Hops) => void = () => {};
    const ask = requester(s, s, mem, (h) => onPlaced(h));
    if (d.vcpu) {
      // The vCPU thread's fault arrives as a change of ASKED; its page goes back through PLACED.
      const ctrl = new Int32Array(d.ctrl!);
      const times = new Float64Array(d.times!);
      let seen = 0;
      const wait = () => {
        const w = waitAsync(ctrl, ASKED, seen);
        if (w.async) void (w.value as Promise<string>).then(wake);
        else wake();
      };
      const wake = () => {
        seen = Atomics.load(ctrl, ASKED);
        ask(Atomics.load(ctrl, ASK_PAGE));
        wait();
      };
      onPlaced = (h) => {
        times.set(h.slice(0, 5), 0);
        Atomics.add(ctrl, PLACED, 1);
        Atomics.notify(ctrl, PLACED);
      };
      wait();
    } else {
      port.on('message', (m: string) => {
        if (m === 'go') faultLoop(ask, (f) => (onPlaced = f), state);
      });
    }
  }
  port.on('message', (m: string) => {
    if (m === 'measure') {
      p.begin();
      state.measuring = true;
    } else if (m === 'stop') {
      state.measuring = false;
      state.running = false;
      stats = p.end();
      port.postMessage({ type: 'result', stats, faults: state.faults });
      setTimeout(() => process.exit(0), 10);
    }
  });
}

function startWorker(d: WorkerData): { w: Worker; ready: Promise<{ tid: number; port?: number }>; result: Promise<{ stats: ThreadStats; faults: Hops[] }> } {
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: d });
  const ready = new Promise<{ tid: number; port?: number }>((resolve, reject) => {
    w.on('message', (m: { type: string; tid: number; port?: number }) => m.type === 'ready' && resolve(m));
    w.once('error', reject);
  });
  const result = new Promise<{ stats: ThreadStats; faults: Hops[] }>((resolve, reject) => {
    w.on('message', (m: { type: string; stats: ThreadStats; faults: Hops[] }) => m.type === 'result' && resolve(m));
    w.once('error', reject);
  });
  return { w, ready, result };
}

// ---- the two processes -------------------------------------------------------------------------

/** Lines from the bench on stdin: go, measure, stop; the process ends when stdin closes. */
function commands(on: (c: string) => void): void {
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += String(d);
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      on(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function destination(variant: FloorVariant): Promise<void> {
  const sab = new SharedArrayBuffer(MEMORY);
  const mem = Buffer.from(sab);
  const main = probe('destination-main', true);
  const ctrl = new SharedArrayBuffer(8 * 4);
  const times = new SharedArrayBuffer(8 * 5);
  const workers: ReturnType<typeof startWorker>[] = [];
  if (variant !== 'main') workers.push(startWorker({ floor: 'destination-ask', mem: sab, ctrl, times, vcpu: variant === 'vcpu' }));
  if (variant === 'vcpu') workers.push(startWorker({ floor: 'destination-vcpu', mem: sab, ctrl, times }));
  const readies = await Promise.all(workers.map((w) => w.ready));
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // The source connects the main connection first, then (variant main) the preempt connection.
  const sockets: net.Socket[] = [];
  const connected = new Promise<void>((resolve) =>
    server.on('connection', (s) => {
      sockets.push(quiet(s));
      if (sockets.length === (variant === 'main' ? 2 : 1)) resolve();
    }),
  );
  say({ port: (server.address() as net.AddressInfo).port, requestPort: readies[0]?.port, tids: [main.tid, ...readies.map((r) => r.tid)] });
  await connected;
  const placed = place(sockets[0]!, mem);
  const state = { measuring: false, running: true, faults: [] as Hops[] };
  let onPlaced: (h: Hops) => void = () => {};
  const ask = variant === 'main' ? requester(sockets[0]!, sockets[1]!, mem, (h) => onPlaced(h)) : null;
  let cpu0 = process.cpuUsage();
  let bytes0 = 0;
  let t0 = 0;
  commands(async (c) => {
    for (const w of workers) w.w.postMessage(c);
    if (c === 'go') {
      if (ask) faultLoop(ask, (f) => (onPlaced = f), state);
      Atomics.store(new Int32Array(ctrl), GO, 1);
      Atomics.notify(new Int32Array(ctrl), GO);
    } else if (c === 'measure') {
      main.begin();
      state.measuring = true;
      Atomics.store(new Int32Array(ctrl), MEASURING, 1);
      cpu0 = process.cpuUsage();
      bytes0 = placed();
      t0 = performance.now();
    } else if (c === 'stop') {
      state.measuring = false;
      state.running = false;
      Atomics.store(new Int32Array(ctrl), STOP, 1);
      Atomics.notify(new Int32Array(ctrl), PLACED);
      const seconds = (performance.now() - t0) / 1000;
      const pushBytes = placed() - bytes0;
      const cpu = process.cpuUsage(cpu0);
      const threads = [main.end()];
      const results = await Promise.all(workers.map((w) => w.result));
      const vcpu = results.find((r) => r.stats.thread === 'destination-vcpu');
      threads.push(...results.map((r) => r.stats));
      const faults = variant === 'main' ? state.faults : (vcpu ?? results[0]!).faults;
      say({ seconds, cpuMs: (cpu.user + cpu.system) / 1000, pushBytes, threads, faults });
    }
  });
}

async function source(variant: FloorVariant, port: number, requestPort: number | undefined, withPush: boolean): Promise<void> {
  const sab = new SharedArrayBuffer(MEMORY);
  const mem = Buffer.from(sab);
  // Something other than zeros, so a page is worth its bytes.
  for (let i = 0; i < MEMORY; i += PAGE) mem.writeUInt32LE(i / PAGE, i);
  const main = probe('source-main', true);
  const s = await connect(port);
  const workers: ReturnType<typeof startWorker>[] = [];
  if (variant === 'main') answer(s, await connect(port), mem);
  else workers.push(startWorker({ floor: 'source-answer', mem: sab, port: requestPort }));
  const readies = await Promise.all(workers.map((w) => w.ready));
  say({ tids: [main.tid, ...readies.map((r) => r.tid)] });
  let stopPush = () => {};
  let cpu0 = process.cpuUsage();
  commands(async (c) => {
    for (const w of workers) w.w.postMessage(c);
    if (c === 'go' && withPush) stopPush = push(s, mem);
    else if (c === 'measure') {
      main.begin();
      cpu0 = process.cpuUsage();
    } else if (c === 'stop') {
      const cpu = process.cpuUsage(cpu0);
      const threads = [main.end()];
      stopPush();
      for (const r of await Promise.all(workers.map((w) => w.result))) threads.push(r.stats);
      say({ cpuMs: (cpu.user + cpu.system) / 1000, pushBytes: 0, threads, faults: [] });
    }
  });
}

// ---- the bench -----------------------------------------------------------------------------------

/** The next JSON line the child prints. */
function line<T>(child: ResultPromise): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += String(d);
      const i = buf.indexOf('\n');
      if (i < 0) return;
      child.stdout!.off('data', onData);
      resolve(JSON.parse(buf.slice(0, i)) as T);
    };
    child.stdout!.on('data', onData);
    void child.then(() => reject(new Error('a fault-floor process exited before it answered')), reject);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One run: the two processes for `seconds` after 0.5 s of warm-up, then both gone. */
export async function floorRun(variant: FloorVariant, withPush: boolean, prio: Prio, seconds: number): Promise<FloorRun> {
  const self = fileURLToPath(import.meta.url);
  const spawn = (args: string[]) => execa(process.execPath, [self, ...args], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit', reject: false });
  const dst = spawn(['destination', variant]);
  const children = [dst];
  try {
    const d = await line<{ port: number; requestPort?: number; tids: number[] }>(dst);
    const src = spawn(['source', variant, String(d.port), String(d.requestPort ?? 0), withPush ? 'push' : 'idle']);
    children.push(src);
    const s = await line<{ tids: number[] }>(src);
    // Only the request path: the destination's asking (and vCPU) threads and the source's
    // answering one; with the request path on the main threads, those.
    const tids = variant === 'main' ? [d.tids[0]!, s.tids[0]!] : [...d.tids.slice(1), ...s.tids.slice(1)];
    if (prio !== 'normal') for (const tid of tids) await execa(...PRIO_COMMAND[prio](tid));
    const send = (c: string) => children.forEach((ch) => ch.stdin!.write(`${c}\n`));
    const dResult = line<SideResult & { seconds: number }>(dst);
    const sResult = line<SideResult>(src);
    send('go');
    await sleep(500);
    send('measure');
    await sleep(seconds * 1000);
    send('stop');
    const [dr, sr] = await Promise.all([dResult, sResult]);
    const gb = dr.pushBytes / 1e9;
    // Each thread's timeOrigin is its own reading of the wall clock, and a thread descheduled
    // while it took it can be off by ms: align the source's stamps to the destination's by the
    // fastest request and the fastest reply (NTP's estimate, both ways assumed equally fast).
    const fastest = (a: number, b: number) => Math.min(...dr.faults.map((h) => h[b] - h[a]));
    const offset = dr.faults.length ? (fastest(1, 2) - fastest(3, 4)) / 2 : 0;
    const faults = dr.faults.map((h): Hops => [h[0], h[1], h[2] - offset, h[3] - offset, h[4], h[5]]);
    return {
      variant,
      push: withPush,
      prio,
      seconds: dr.seconds,
      pushMBps: dr.pushBytes / 1e6 / dr.seconds,
      latencies: faults.map((h) => h[5] - h[0]),
      faults,
      threads: { source: sr.threads, destination: dr.threads },
      cpuMsPerGB: { source: gb ? sr.cpuMs / gb : NaN, destination: gb ? dr.cpuMs / gb : NaN },
    };
  } finally {
    for (const ch of children) ch.stdin!.end();
    await Promise.all(children.map((ch) => Promise.race([ch, sleep(3000).then(() => ch.kill('SIGKILL'))])));
  }
}

/** sched_setattr(tid, {SCHED_OTHER, sched_runtime = ns}): the thread's EEVDF slice. */
const SET_SLICE = `import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack('IIQiIQQQ', 48, 0, 0, 0, 0, int(sys.argv[2]), 0, 0))
if libc.syscall(314, int(sys.argv[1]), attr, 0) != 0: sys.exit('sched_setattr: ' + os.strerror(ctypes.get_errno()))`;

const PRIO_COMMAND: Record<Exclude<Prio, 'normal'>, (tid: number) => [string, string[]]> = {
  fifo: (tid) => ['chrt', ['-f', '-p', '1', String(tid)]],
  nice: (tid) => ['renice', ['-n', '-20', '-p', String(tid)]],
  slice: (tid) => ['python3', ['-c', SET_SLICE, String(tid), '100000']],
};

/** Why `prio` cannot be set here (tried on a sleep of our own), or null. */
async function prioMissing(prio: Exclude<Prio, 'normal'>): Promise<string | null> {
  if (prio === 'slice' && (os.arch() !== 'x64' || os.platform() !== 'linux')) return 'sched_setattr is called by its x86-64 number';
  const probe = execa('sleep', ['5'], { reject: false });
  try {
    const r = await execa(...PRIO_COMMAND[prio](probe.pid!), { reject: false });
    return r.exitCode === 0 ? null : `${PRIO_COMMAND[prio](0)[0]} refused: ${String(r.stderr || r.shortMessage).trim()}`;
  } finally {
    probe.kill();
  }
}

const quantile = (xs: number[], q: number) => {
  const a = [...xs].sort((x, y) => x - y);
  return a.length ? a[Math.min(a.length - 1, Math.floor(q * a.length))]! : NaN;
};

type Table = (head: string[], rows: (string | number)[][]) => string;

export async function benchFaultFloor(o: { quick: boolean }, table: Table): Promise<FloorRun[]> {
  const reps = o.quick ? 1 : 3;
  const seconds = o.quick ? 2 : 3;
  const rows: Array<[FloorVariant, boolean, Prio]> = [];
  for (const v of ['main', 'worker', 'vcpu'] as const) rows.push([v, true, 'normal'], [v, false, 'normal']);
  // The experiments, on the worker variants only: their request-path threads sleep until asked.
  // (The main variant at SCHED_FIFO would put the push itself above everything else on the machine.)
  const experiments: Array<[FloorVariant, Prio]> = [['worker', 'fifo'], ['vcpu', 'fifo'], ['worker', 'nice'], ['worker', 'slice']];
  for (const [v, prio] of experiments) {
    const missing = await prioMissing(prio as Exclude<Prio, 'normal'>);
    if (missing) console.log(`fault-floor ${v}, ${prio}: skipped (${missing})`);
    else rows.push([v, true, prio]);
  }
  const runs: FloorRun[] = [];
  // Each rep runs every row once, in turn, so a change in the machine's load hits all rows alike.
  for (let i = 0; i < reps; i++) for (const [v, p, prio] of rows) runs.push(await floorRun(v, p, prio, seconds));
  const label = (v: FloorVariant, p: boolean, prio: Prio) => `${v}${p ? ', push' : ', idle'}${prio === 'normal' ? '' : `, ${prio}`}`;
  const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  const out: (string | number)[][] = [];
  const why: (string | number)[][] = [];
  for (const [v, p, f] of rows) {
    const rs = runs.filter((r) => r.variant === v && r.push === p && r.prio === f);
    const all = rs.flatMap((r) => r.latencies);
    const faults = rs.flatMap((r) => r.faults);
    out.push([
      label(v, p, f),
      p ? rs.map((r) => fmt(r.pushMBps, 0)).join(', ') : '-',
      fmt(all.length / rs.reduce((a, r) => a + r.seconds, 0), 0),
      fmt(all.reduce((a, x) => a + x, 0) / all.length),
      `${fmt(quantile(all, 0.5))} / ${fmt(quantile(all, 0.9))} / ${fmt(quantile(all, 0.99))} / ${fmt(quantile(all, 1))}`,
      rs.map((r) => fmt(quantile(r.latencies, 0.99))).join(', '),
      p ? `${fmt(rs.reduce((a, r) => a + r.cpuMsPerGB.source, 0) / rs.length, 0)} / ${fmt(rs.reduce((a, r) => a + r.cpuMsPerGB.destination, 0) / rs.length, 0)}` : '-',
    ]);
    // Where the slowest 1 % of faults spent their time, hop by hop (means over those faults).
    const cut = quantile(all, 0.99);
    const slow = faults.filter((h) => h[5] - h[0] >= cut);
    const hop = (a: number, b: number) => fmt(slow.reduce((s, h) => s + h[b]! - h[a]!, 0) / (slow.length || NaN));
    const th = (side: 'source' | 'destination', name: string, f: (t: ThreadStats) => number, d = 1) => {
      const ts = rs.map((r) => r.threads[side].find((t) => t.thread === name)).filter((t): t is ThreadStats => !!t);
      return ts.length ? fmt(Math.max(...ts.map(f)), d) : '-';
    };
    const waitPerS = (t: ThreadStats) => t.waitMs / rs[0]!.seconds;
    const asker = v === 'main' ? 'destination-main' : 'destination-ask';
    const answerer = v === 'main' ? 'source-main' : 'source-answer';
    why.push([
      label(v, p, f),
      `${hop(0, 1)} / ${hop(1, 2)} / ${hop(2, 3)} / ${hop(3, 4)} / ${hop(4, 5)}`,
      `${th('destination', asker, waitPerS)} / ${th('source', answerer, waitPerS)}${v === 'vcpu' ? ` / ${th('destination', 'destination-vcpu', waitPerS)}` : ''}`,
      `${th('destination', asker, (t) => t.loopP99Ms)}, ${th('destination', asker, (t) => t.loopMaxMs)} / ${th('source', answerer, (t) => t.loopP99Ms)}, ${th('source', answerer, (t) => t.loopMaxMs)}`,
      `${th('destination', asker, (t) => t.gcMaxMs, 2)} / ${th('source', answerer, (t) => t.gcMaxMs, 2)}`,
      `${th('destination', 'destination-main', waitPerS)} / ${th('source', 'source-main', waitPerS)}`,
    ]);
  }
  console.log(`The fault floor: two processes over loopback, one vCPU faulting (think ${THINK_MS} ms), ${BATCH}-page push batches; ${reps} run(s) of ${seconds} s per row, latencies pooled`);
  console.log(table(['row', 'push MB/s (each run)', 'faults/s', 'mean ms', 'fault p50 / p90 / p99 / max ms', 'p99 each run', 'CPU ms per GB: source / dest'], out) + '\n');
  console.log('Where the slowest 1 % of faults went (ms, mean): vCPU→asker / request: sent→source read / source: read→written / page: written→placed / placed→vCPU awake; each thread: worst run');
  console.log(
    table(
      ['row', 'slowest 1 %: hops ms', 'run-queue wait ms/s: asker / answerer (/ vCPU)', 'loop p99, max ms: asker / answerer', 'GC max ms: asker / answerer', 'main threads run-queue ms/s: dest / source'],
      why,
    ) + '\n',
  );
  return runs;
}

// ---- entry points --------------------------------------------------------------------------------

if (!isMainThread && (workerData as WorkerData | null)?.floor) void runWorker(workerData as WorkerData);
else if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  const [role, variant, port, requestPort, pushing] = process.argv.slice(2) as [string, FloorVariant, string, string, string];
  if (role === 'destination') void destination(variant);
  else if (role === 'source') void source(variant, Number(port), Number(requestPort) || undefined, pushing === 'push');
  else {
    process.stderr.write(`fault-floor: a child is started as 'destination <variant>' or 'source <variant> <port> <request port> push|idle', not '${role}'\n`);
    process.exit(2);
  }
}
