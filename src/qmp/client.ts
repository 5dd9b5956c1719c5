/**
 * The QMP client side, used by the driver and the console: works against our sim VM and
 * against a real QEMU's `-qmp unix:PATH,server=on` socket alike.
 *
 * Every request carries an auto-generated `id` and replies are matched by it, so an out-of-band
 * reply that overtakes a pending in-band one lands on the right promise.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { encode, JsonObjectSplitter, parseMessage } from './framing.js';
import { QmpError, type QmpErrorClass } from './error.js';

export interface QmpEventMessage {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpConnectOptions {
  /**
   * Bound on reading the greeting and negotiating capabilities, and the default timeout of
   * each `execute` (0 = none). Default 10 000 ms.
   */
  timeoutMs?: number;
  /**
   * How long (ms, from the call) to keep retrying while the socket does not exist yet or
   * refuses connections (ENOENT/ECONNREFUSED: the VM is still starting). Default 0: one try.
   */
  retryUntilMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const RETRY_INTERVAL_MS = 50;

interface Pending {
  command: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path });
    const onError = (e: Error) => {
      s.destroy();
      reject(e);
    };
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

function isRetryable(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class QmpClient extends EventEmitter {
  readonly path: string;
  private greetingMsg: unknown = null;
  private oob = false;

  private readonly socket: net.Socket;
  private readonly splitter = new JsonObjectSplitter();
  private readonly pending = new Map<number, Pending>();
  private readonly defaultTimeoutMs: number;
  private nextId = 1;
  private isClosed = false;
  private lastSocketError: Error | null = null;
  /** Resolves with the greeting, during connect(). */
  private onGreeting: ((msg: Record<string, unknown>) => void) | null = null;

  private constructor(path: string, socket: net.Socket, timeoutMs: number) {
    super();
    this.path = path;
    this.socket = socket;
    this.defaultTimeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => {
      this.lastSocketError = e;
    });
    socket.on('close', () => this.shutdown());
  }

  /**
   * Connect, read the greeting and leave capabilities negotiation (enabling `oob` when offered).
   * Resolves once commands can be executed.
   */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = Date.now() + (opts.retryUntilMs ?? 0);
    let socket: net.Socket;
    for (;;) {
      try {
        socket = await connectOnce(path);
        break;
      } catch (e) {
        if (!isRetryable(e) || Date.now() >= deadline) {
          throw new Error(`Cannot connect to QMP socket ${path}: ${(e as Error).message}`, { cause: e });
        }
        await sleep(Math.min(RETRY_INTERVAL_MS, Math.max(1, deadline - Date.now())));
      }
    }
    const client = new QmpClient(path, socket, timeoutMs);
    try {
      await client.handshake(timeoutMs);
    } catch (e) {
      client.close();
      throw e;
    }
    return client;
  }

  /** The server's greeting, as received (`{"QMP": {"version": ..., "capabilities": [...]}}`). */
  get greeting(): unknown {
    return this.greetingMsg;
  }

  /** Whether out-of-band execution was offered by the server and enabled on this connection. */
  get oobEnabled(): boolean {
    return this.oob;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Run a command in-band; resolves to its `return`, rejects with QmpError on an `error` reply. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    return this.request<T>('execute', command, args, opts.timeoutMs ?? this.defaultTimeoutMs);
  }

  /** Run a command out-of-band (`exec-oob`): overtakes in-band commands still pending on the server. */
  executeOob<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (!this.isClosed && !this.oobEnabled) {
      return Promise.reject(new Error(`QMP server at ${this.path} does not offer out-of-band execution ('oob' capability)`));
    }
    return this.request<T>('exec-oob', command, args, opts.timeoutMs ?? this.defaultTimeoutMs);
  }

  /** Close the connection; pending calls reject. Idempotent. */
  close(): void {
    this.socket.destroy();
    this.shutdown();
  }

  private async handshake(timeoutMs: number): Promise<void> {
    let onClose = (): void => {};
    const greeting = await this.withTimeout(
      new Promise<Record<string, unknown>>((resolve, reject) => {
        this.onGreeting = resolve;
        onClose = () => reject(this.closedError());
        this.once('close', onClose);
      }),
      timeoutMs,
      `QMP greeting from ${this.path} did not arrive within ${timeoutMs} ms`,
    ).finally(() => this.off('close', onClose));
    this.greetingMsg = greeting;
    const qmp = greeting.QMP as { capabilities?: unknown } | undefined;
    const offered = Array.isArray(qmp?.capabilities) ? (qmp.capabilities as unknown[]) : [];
    const enable = offered.includes('oob') ? ['oob'] : [];
    await this.request('execute', 'qmp_capabilities', enable.length ? { enable } : undefined, timeoutMs);
    this.oob = enable.length > 0;
  }

  private withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
    if (!ms) return p;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(message)), ms);
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      );
    });
  }

  private request<T>(key: 'execute' | 'exec-oob', command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<T> {
    if (this.isClosed) return Promise.reject(this.closedError());
    const id = this.nextId++;
    const msg: Record<string, unknown> = { [key]: command };
    if (args !== undefined) msg.arguments = args;
    msg.id = id;
    let text: string;
    try {
      text = encode(msg);
    } catch (e) {
      return Promise.reject(new Error(`QMP command '${command}': arguments are not JSON-serialisable: ${(e as Error).message}`));
    }
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`QMP command '${command}' on ${this.path} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.socket.write(text);
    });
  }

  private onData(chunk: Buffer): void {
    for (const item of this.splitter.push(chunk)) {
      if (item.kind !== 'message') continue; // A server does not send garbage; nothing to match it to.
      const parsed = parseMessage(item.text);
      if (parsed.ok) this.onMessage(parsed.value);
    }
  }

  private onMessage(msg: Record<string, unknown>): void {
    if (this.onGreeting && 'QMP' in msg) {
      const cb = this.onGreeting;
      this.onGreeting = null;
      cb(msg);
      return;
    }
    if (typeof msg.event === 'string') {
      this.emit('event', msg as unknown as QmpEventMessage);
      return;
    }
    if (!('return' in msg) && !('error' in msg)) return;
    const id = msg.id;
    if (typeof id !== 'number') return; // Not one of ours (we always send a numeric id).
    const p = this.pending.get(id);
    if (!p) return; // Timed out already.
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if ('error' in msg) {
      const err = (msg.error ?? {}) as { class?: unknown; desc?: unknown };
      p.reject(new QmpError(String(err.class ?? 'GenericError') as QmpErrorClass, String(err.desc ?? 'unknown error')));
    } else {
      p.resolve(msg.return);
    }
  }

  private closedError(): Error {
    const why = this.lastSocketError ? `: ${this.lastSocketError.message}` : '';
    return new Error(`QMP connection to ${this.path} closed${why}`);
  }

  private shutdown(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const err = this.closedError();
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emit('close');
  }
}
