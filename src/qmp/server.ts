/**
 * The QMP server side, as the sim VM's control socket: a unix socket that behaves like QEMU's
 * QMP monitor (monitor/qmp.c, qapi/qmp-dispatch.c) for the parts migration needs.
 *
 * - Greeting on connect, then capabilities negotiation: only `qmp_capabilities` (optionally
 *   `enable: ["oob"]`) is accepted until it succeeds.
 * - Command mode: `execute` requests run strictly one at a time per connection, in arrival order,
 *   so replies come back in order; `exec-oob` requests (oob enabled + command allows it) run at
 *   once, even while an in-band command is still pending.
 * - Arguments are checked against a small QAPI-like spec with QEMU's error texts.
 * - Nothing a client sends, and nothing a handler throws, can take the process down.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { QmpError } from './error.js';
import { encode, JsonObjectSplitter, parseMessage } from './framing.js';

/** Argument types in QAPI terms; a trailing '?' marks optional. 'any' = any JSON. */
export type QmpArgSpec = Record<
  string,
  'str' | 'str?' | 'bool' | 'bool?' | 'int' | 'int?' | 'number' | 'number?' | 'any' | 'any?' | 'array' | 'array?' | 'object' | 'object?'
>;

export interface QmpCommandDef {
  args?: QmpArgSpec;
  allowOob?: boolean;
  handler(args: Record<string, unknown>): unknown | Promise<unknown>;
}

export interface QmpServerOptions {
  path: string;
  commands: Record<string, QmpCommandDef>;
  version?: { major: number; minor: number; micro: number };
  package?: string;
}

export interface QmpServer {
  /** Broadcast a QMP event to every client that has finished capabilities negotiation. */
  emit(event: string, data?: Record<string, unknown>): void;
  /** Stop listening, destroy client connections, remove the socket file. Idempotent. */
  close(): Promise<void>;
  readonly path: string;
}

/** The version the sim reports when the caller gives none (a QEMU with postcopy recovery). */
export const DEFAULT_QMP_VERSION = { major: 9, minor: 2, micro: 0 } as const;
export const DEFAULT_QMP_PACKAGE = 'postcopy-lab-sim';

/** QMP capabilities this server offers (QMPCapability in qapi/control.json). */
const OFFERED_CAPABILITIES = ['oob'] as const;

const QAPI_TYPE_NAME: Record<string, string> = {
  str: 'string',
  bool: 'boolean',
  int: 'integer',
  number: 'number',
  array: 'array',
  object: 'object',
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function matchesType(type: string, v: unknown): boolean {
  switch (type) {
    case 'any':
      return v !== undefined;
    case 'str':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
      return typeof v === 'number' && Number.isSafeInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'array':
      return Array.isArray(v);
    case 'object':
      return isPlainObject(v);
    default:
      return false;
  }
}

/**
 * Check `args` against `spec` the way QEMU's input visitor does: members in schema order
 * (missing, then wrong type), then anything left over is unexpected. Throws QmpError.
 */
export function checkArguments(spec: QmpArgSpec | undefined, args: Record<string, unknown>): void {
  const s = spec ?? {};
  for (const [name, t] of Object.entries(s)) {
    const optional = t.endsWith('?');
    const type = optional ? t.slice(0, -1) : t;
    if (!hasOwn(args, name)) {
      if (!optional) throw new QmpError('GenericError', `Parameter '${name}' is missing`);
      continue;
    }
    if (!matchesType(type, args[name])) {
      throw new QmpError('GenericError', `Invalid parameter type for '${name}', expected: ${QAPI_TYPE_NAME[type] ?? type}`);
    }
  }
  for (const name of Object.keys(args)) {
    if (!hasOwn(s, name)) throw new QmpError('GenericError', `Parameter '${name}' is unexpected`);
  }
}

function errorReply(e: unknown, id: { has: boolean; value: unknown }): Record<string, unknown> {
  const err =
    e instanceof QmpError
      ? { class: e.errorClass, desc: e.message }
      : { class: 'GenericError', desc: e instanceof Error ? e.message : String(e) };
  return withId({ error: err }, id);
}

function withId(reply: Record<string, unknown>, id: { has: boolean; value: unknown }): Record<string, unknown> {
  if (id.has) reply.id = id.value;
  return reply;
}

/** A wall-clock timestamp as QMP events carry it. */
export function qmpTimestamp(nowMs: number = performance.timeOrigin + performance.now()): { seconds: number; microseconds: number } {
  const totalUs = Math.floor(nowMs * 1000);
  return { seconds: Math.floor(totalUs / 1_000_000), microseconds: totalUs % 1_000_000 };
}

interface Connection {
  socket: net.Socket;
  splitter: JsonObjectSplitter;
  negotiated: boolean;
  oob: boolean;
  /** Tail of the in-band queue: each in-band request runs after the previous one settled. */
  inband: Promise<void>;
  /** In-band requests queued or running. */
  queued: number;
}

/**
 * Like QEMU (QMP_REQ_QUEUE_LEN_MAX), stop reading from a client that has this many in-band
 * requests outstanding, so a flood cannot grow memory without bound; oob requests already read
 * still run.
 */
const MAX_QUEUED_INBAND = 8;

/** Is something accepting connections on this unix socket path? */
function probeListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) {
    throw new Error(`QMP socket path ${path} exists and is not a socket; refusing to replace it`);
  }
  if (await probeListening(path)) {
    throw new Error(`QMP socket ${path} is already in use: another process is listening on it`);
  }
  try {
    await fsp.unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** listen() with the socket created 0600: tighten the umask around the (synchronous) bind. */
function listenPrivate(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    let oldMask: number | undefined;
    try {
      oldMask = process.umask(0o177);
    } catch {
      // process.umask() is unavailable in worker threads; the chmod below still applies.
    }
    try {
      server.listen({ path, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      if (oldMask !== undefined) process.umask(oldMask);
    }
  });
}

export async function startQmpServer(opts: QmpServerOptions): Promise<QmpServer> {
  const { path, commands } = opts;
  const version = opts.version ?? DEFAULT_QMP_VERSION;
  const pkg = opts.package ?? DEFAULT_QMP_PACKAGE;
  const connections = new Set<Connection>();
  let closing: Promise<void> | null = null;

  await clearStaleSocket(path);

  const send = (conn: Connection, msg: Record<string, unknown>): void => {
    if (conn.socket.destroyed || !conn.socket.writable) return;
    let text: string;
    try {
      text = encode(msg);
    } catch (e) {
      // A handler returned something JSON cannot carry (BigInt, a cycle): report, don't crash.
      const id = { has: hasOwn(msg, 'id'), value: msg.id };
      text = encode(errorReply(new QmpError('GenericError', `Reply could not be encoded: ${(e as Error).message}`), id));
    }
    conn.socket.write(text);
  };

  const greeting = () => ({
    QMP: {
      version: { qemu: { major: version.major, minor: version.minor, micro: version.micro }, package: pkg },
      capabilities: [...OFFERED_CAPABILITIES],
    },
  });

  /** qmp_capabilities in negotiation mode; throws QmpError. */
  const negotiate = (conn: Connection, args: Record<string, unknown>): void => {
    checkArguments({ enable: 'array?' }, args);
    let oob = false;
    const enable = (args.enable as unknown[] | undefined) ?? [];
    enable.forEach((cap, i) => {
      if (typeof cap !== 'string') throw new QmpError('GenericError', `Invalid parameter type for 'enable[${i}]', expected: string`);
      if (!(OFFERED_CAPABILITIES as readonly string[]).includes(cap)) {
        throw new QmpError('GenericError', `Parameter 'enable[${i}]' does not accept value '${cap}'`);
      }
      oob = true;
    });
    conn.oob = oob;
    conn.negotiated = true;
  };

  /**
   * Validate and run one request. Returns the reply to send (or throws nothing: every failure
   * becomes an error reply).
   */
  const dispatch = async (conn: Connection, req: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const id = { has: hasOwn(req, 'id'), value: req.id };
    try {
      // Member checks, as qmp_dispatch_check_obj() does them.
      let execKey: 'execute' | 'exec-oob' | null = null;
      for (const key of Object.keys(req)) {
        if (key === 'execute' || (key === 'exec-oob' && conn.oob)) {
          if (typeof req[key] !== 'string') throw new QmpError('GenericError', `QMP input member '${key}' must be a string`);
          if (execKey) throw new QmpError('GenericError', `QMP input member '${key}' clashes with '${execKey}'`);
          execKey = key;
        } else if (key === 'arguments') {
          if (!isPlainObject(req.arguments)) throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
        } else if (key !== 'id') {
          throw new QmpError('GenericError', `QMP input member '${key}' is unexpected`);
        }
      }
      if (!execKey) throw new QmpError('GenericError', "QMP input lacks member 'execute'");
      const name = req[execKey] as string;
      const oob = execKey === 'exec-oob';
      const args = (req.arguments as Record<string, unknown> | undefined) ?? {};

      if (!conn.negotiated) {
        if (name !== 'qmp_capabilities') {
          throw new QmpError('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
        }
        negotiate(conn, args);
        return withId({ return: {} }, id);
      }
      if (name === 'qmp_capabilities') {
        throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
      }
      const cmd = hasOwn(commands, name) ? commands[name] : undefined;
      if (!cmd) throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
      if (oob) {
        if (!cmd.allowOob) throw new QmpError('GenericError', `The command ${name} does not support OOB`);
        if (!id.has) throw new QmpError('GenericError', "QMP input lacks member 'id', which out-of-band commands require");
      }
      checkArguments(cmd.args, args);
      const ret = await cmd.handler(args);
      return withId({ return: ret === undefined ? {} : ret }, id);
    } catch (e) {
      return errorReply(e, id);
    }
  };

  const onMessage = (conn: Connection, text: string): void => {
    const parsed = parseMessage(text);
    const isOob = parsed.ok && hasOwn(parsed.value, 'exec-oob') && !hasOwn(parsed.value, 'execute');
    if (parsed.ok && isOob) {
      // Out-of-band: run now, reply as soon as it is done, whatever is queued in-band.
      void dispatch(conn, parsed.value).then((reply) => send(conn, reply));
      return;
    }
    enqueue(conn, async () => {
      if (!parsed.ok) return errorReply(new QmpError('GenericError', parsed.error), { has: false, value: undefined });
      return dispatch(conn, parsed.value);
    });
  };

  const enqueue = (conn: Connection, run: () => Promise<Record<string, unknown>>): void => {
    conn.queued++;
    if (conn.queued >= MAX_QUEUED_INBAND) conn.socket.pause();
    conn.inband = conn.inband.then(async () => {
      try {
        if (!conn.socket.destroyed) send(conn, await run());
      } finally {
        conn.queued--;
        if (conn.queued < MAX_QUEUED_INBAND && conn.socket.isPaused() && !conn.socket.destroyed) conn.socket.resume();
      }
    }).catch(() => {
      // Unreachable (dispatch turns every failure into a reply); keeps the queue alive regardless.
    });
  };

  const server = net.createServer((socket) => {
    const conn: Connection = {
      socket,
      splitter: new JsonObjectSplitter(),
      negotiated: false,
      oob: false,
      inband: Promise.resolve(),
      queued: 0,
    };
    connections.add(conn);
    socket.on('error', () => {
      // EPIPE/ECONNRESET from a client that went away: 'close' follows and cleans up.
    });
    socket.on('close', () => connections.delete(conn));
    socket.on('data', (chunk: Buffer) => {
      for (const item of conn.splitter.push(chunk)) {
        if (item.kind === 'message') onMessage(conn, item.text);
        else {
          const error = item.error;
          enqueue(conn, async () => errorReply(new QmpError('GenericError', error), { has: false, value: undefined }));
        }
      }
    });
    send(conn, greeting());
  });
  // An error on the listening socket after startup (rare) must not become an uncaught exception.
  server.on('error', () => {});

  await listenPrivate(server, path);
  try {
    await fsp.chmod(path, 0o600);
  } catch {
    // The socket is already 0600 from the umask in the normal case.
  }

  return {
    path,
    emit(event: string, data?: Record<string, unknown>): void {
      const msg: Record<string, unknown> = { event };
      if (data !== undefined) msg.data = data;
      msg.timestamp = qmpTimestamp();
      for (const conn of connections) if (conn.negotiated) send(conn, msg);
    },
    close(): Promise<void> {
      if (closing) return closing;
      closing = (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const conn of connections) conn.socket.destroy();
        });
        try {
          await fsp.unlink(path);
        } catch {
          // Already gone (libuv may remove it on close).
        }
      })();
      return closing;
    },
  };
}
