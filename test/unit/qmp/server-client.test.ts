import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonObjectSplitter } from '../../../src/qmp/framing.js';
import { QmpError } from '../../../src/qmp/error.js';
import { startQmpServer, type QmpCommandDef, type QmpServer } from '../../../src/qmp/server.js';
import { QmpClient } from '../../../src/qmp/client.js';

/** A raw QMP connection: write bytes, read parsed messages in order. */
class Raw {
  private readonly splitter = new JsonObjectSplitter();
  private readonly queue: Record<string, unknown>[] = [];
  private waiters: ((m: Record<string, unknown>) => void)[] = [];
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      for (const item of this.splitter.push(c)) {
        if (item.kind !== 'message') throw new Error(`server sent garbage: ${item.error}`);
        const m = JSON.parse(item.text) as Record<string, unknown>;
        const w = this.waiters.shift();
        if (w) w(m);
        else this.queue.push(m);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }
  static open(p: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path: p });
      s.once('error', reject);
      s.once('connect', () => resolve(new Raw(s)));
    });
  }
  next(): Promise<Record<string, unknown>> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((r) => this.waiters.push(r));
  }
  send(text: string): void {
    this.socket.write(text);
  }
  async cmd(obj: unknown): Promise<Record<string, unknown>> {
    this.send(JSON.stringify(obj) + '\n');
    return this.next();
  }
  /** Read the greeting and negotiate; returns the greeting. */
  async negotiate(enableOob = false): Promise<Record<string, unknown>> {
    const greeting = await this.next();
    const r = await this.cmd({ execute: 'qmp_capabilities', ...(enableOob ? { arguments: { enable: ['oob'] } } : {}) });
    expect(r).toEqual({ return: {} });
    return greeting;
  }
  close(): void {
    this.socket.destroy();
  }
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

let dir: string;
let sock: string;
let server: QmpServer | null;
const toClose: { close(): void }[] = [];

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'qmp-test-'));
  await fsp.chmod(dir, 0o700);
  sock = path.join(dir, 'qmp.sock');
  server = null;
});

afterEach(async () => {
  for (const c of toClose.splice(0)) c.close();
  await server?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function start(commands: Record<string, QmpCommandDef> = {}, extra: { version?: { major: number; minor: number; micro: number }; package?: string } = {}) {
  server = await startQmpServer({ path: sock, commands, ...extra });
  return server;
}

async function raw(): Promise<Raw> {
  const r = await Raw.open(sock);
  toClose.push(r);
  return r;
}

async function client(): Promise<QmpClient> {
  const c = await QmpClient.connect(sock, { timeoutMs: 5000 });
  toClose.push(c);
  return c;
}

const migrateDef: QmpCommandDef = {
  args: { uri: 'str', resume: 'bool?', blk: 'bool?', 'max-bandwidth': 'int?', ratio: 'number?', caps: 'array?', opts: 'object?', x: 'any?' },
  handler: (args) => ({ got: args }),
};

describe('QMP server: greeting and negotiation', () => {
  it('greets with version, package and the oob capability', async () => {
    await start({}, { version: { major: 8, minor: 2, micro: 1 }, package: 'sim-test' });
    const r = await raw();
    expect(await r.next()).toEqual({
      QMP: { version: { qemu: { major: 8, minor: 2, micro: 1 }, package: 'sim-test' }, capabilities: ['oob'] },
    });
  });

  it('sends the greeting CRLF-terminated', async () => {
    await start();
    const r = await raw();
    const first = await new Promise<string>((res) => r.socket.once('data', (c: Buffer) => res(c.toString())));
    expect(first.endsWith('}\r\n')).toBe(true);
  });

  it('accepts only qmp_capabilities before negotiation', async () => {
    await start({ 'query-status': { handler: () => ({ status: 'running' }) } });
    const r = await raw();
    await r.next();
    expect(await r.cmd({ execute: 'query-status', id: 1 })).toEqual({
      error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
      id: 1,
    });
    expect(await r.cmd({ execute: 'qmp_capabilities', arguments: { enable: ['bogus'] } })).toEqual({
      error: { class: 'GenericError', desc: "Parameter 'enable[0]' does not accept value 'bogus'" },
    });
    expect(await r.cmd({ execute: 'qmp_capabilities', arguments: { enable: 'oob' } })).toEqual({
      error: { class: 'GenericError', desc: "Invalid parameter type for 'enable', expected: array" },
    });
    expect(await r.cmd({ execute: 'qmp_capabilities', id: 'x' })).toEqual({ return: {}, id: 'x' });
    expect(await r.cmd({ execute: 'query-status' })).toEqual({ return: { status: 'running' } });
    expect(await r.cmd({ execute: 'qmp_capabilities' })).toEqual({
      error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' },
    });
  });
});

describe('QMP server: commands and errors', () => {
  it('echoes any id verbatim and returns {} for a handler returning nothing', async () => {
    await start({ stop: { handler: () => undefined } });
    const r = await raw();
    await r.negotiate();
    const id = { a: [1, 'two', null], b: { c: true } };
    expect(await r.cmd({ execute: 'stop', id })).toEqual({ return: {}, id });
    expect(await r.cmd({ execute: 'stop', id: null })).toEqual({ return: {}, id: null });
    expect(await r.cmd({ execute: 'stop' })).toEqual({ return: {} });
  });

  it('reports an unknown command as CommandNotFound', async () => {
    await start();
    const r = await raw();
    await r.negotiate();
    expect(await r.cmd({ execute: 'migrate-frobnicate', id: 2 })).toEqual({
      error: { class: 'CommandNotFound', desc: 'The command migrate-frobnicate has not been found' },
      id: 2,
    });
  });

  it('validates arguments with QEMU texts', async () => {
    await start({ migrate: migrateDef });
    const r = await raw();
    await r.negotiate();
    const err = async (args: unknown) => ((await r.cmd({ execute: 'migrate', arguments: args })).error as { desc: string }).desc;
    expect(await err({})).toBe("Parameter 'uri' is missing");
    expect(await err({ uri: 5 })).toBe("Invalid parameter type for 'uri', expected: string");
    expect(await err({ uri: 'u', resume: 'yes' })).toBe("Invalid parameter type for 'resume', expected: boolean");
    expect(await err({ uri: 'u', resume: null })).toBe("Invalid parameter type for 'resume', expected: boolean");
    expect(await err({ uri: 'u', 'max-bandwidth': 1.5 })).toBe("Invalid parameter type for 'max-bandwidth', expected: integer");
    expect(await err({ uri: 'u', ratio: '1' })).toBe("Invalid parameter type for 'ratio', expected: number");
    expect(await err({ uri: 'u', caps: {} })).toBe("Invalid parameter type for 'caps', expected: array");
    expect(await err({ uri: 'u', opts: [] })).toBe("Invalid parameter type for 'opts', expected: object");
    expect(await err({ uri: 'u', foo: 1 })).toBe("Parameter 'foo' is unexpected");
    const ok = await r.cmd({ execute: 'migrate', arguments: { uri: 'u', resume: true, 'max-bandwidth': 10, ratio: 0.5, caps: [], opts: {}, x: null } });
    expect(ok).toEqual({ return: { got: { uri: 'u', resume: true, 'max-bandwidth': 10, ratio: 0.5, caps: [], opts: {}, x: null } } });
    const bad = await r.cmd({ execute: 'migrate', arguments: { uri: 'u' }, id: 9 });
    expect(bad).toEqual({ return: { got: { uri: 'u' } }, id: 9 });
  });

  it('checks the request members', async () => {
    await start({ stop: { handler: () => undefined } });
    const r = await raw();
    await r.negotiate();
    const desc = async (o: unknown) => ((await r.cmd(o)).error as { desc: string }).desc;
    expect(await desc({ execute: 'stop', arguments: [] })).toBe("QMP input member 'arguments' must be an object");
    expect(await desc({ arguments: {} })).toBe("QMP input lacks member 'execute'");
    expect(await desc({ execute: 1 })).toBe("QMP input member 'execute' must be a string");
    expect(await desc({ execute: 'stop', extra: 1 })).toBe("QMP input member 'extra' is unexpected");
    // Without the oob capability, exec-oob is just an unexpected member (as in QEMU).
    expect(await desc({ 'exec-oob': 'stop', id: 1 })).toBe("QMP input member 'exec-oob' is unexpected");
  });

  it('answers a JSON parse error and stays usable, replies in order', async () => {
    await start({ stop: { handler: () => undefined } });
    const r = await raw();
    await r.negotiate();
    r.send('{"execute": "stop", "id": 1}\n{"execute": }\nnonsense\n{"execute": "stop", "id": 2}\n');
    expect(await r.next()).toEqual({ return: {}, id: 1 });
    const e1 = (await r.next()).error as { class: string; desc: string };
    expect(e1.class).toBe('GenericError');
    expect(e1.desc).toMatch(/^JSON parse error, /);
    expect(await r.next()).toEqual({ error: { class: 'GenericError', desc: "JSON parse error, expecting a JSON object, got 'nonsense'" } });
    expect(await r.next()).toEqual({ return: {}, id: 2 });
  });

  it('turns handler throws into error replies without crashing', async () => {
    await start({
      'x-qmp-error': { handler: () => { throw new QmpError('DeviceNotFound', 'Device foo not found'); } },
      'x-plain-error': { handler: async () => { throw new Error('boom'); } },
      'x-throw-string': { handler: () => { throw 'weird'; } },
      'x-bigint': { handler: () => ({ n: 1n }) },
      'query-status': { handler: () => ({ status: 'running' }) },
    });
    const c = await client();
    await expect(c.execute('x-qmp-error')).rejects.toMatchObject({ errorClass: 'DeviceNotFound', message: 'Device foo not found' });
    await expect(c.execute('x-plain-error')).rejects.toMatchObject({ errorClass: 'GenericError', message: 'boom' });
    await expect(c.execute('x-throw-string')).rejects.toMatchObject({ errorClass: 'GenericError', message: 'weird' });
    await expect(c.execute('x-bigint')).rejects.toMatchObject({ errorClass: 'GenericError' });
    expect(await c.execute('query-status')).toEqual({ status: 'running' });
  });

  it('runs in-band commands one at a time, in order, while oob overtakes them', async () => {
    const log: string[] = [];
    const gate = deferred();
    await start({
      slow: { handler: async () => { log.push('slow:start'); await gate.promise; log.push('slow:end'); return 'slow'; } },
      fast: { handler: () => { log.push('fast'); return 'fast'; } },
      'x-ping': { allowOob: true, handler: () => { log.push('ping'); return 'pong'; } },
    });
    const r = await raw();
    await r.negotiate(true);
    r.send('{"execute": "slow", "id": 1}{"execute": "fast", "id": 2}\n{"exec-oob": "x-ping", "id": 3}');
    // The oob reply arrives first; since it was sent after 'fast' on the same stream, the server
    // has read 'fast' by now, and must not have started it.
    expect(await r.next()).toEqual({ return: 'pong', id: 3 });
    expect([...log].sort()).toEqual(['ping', 'slow:start']);
    gate.resolve();
    expect(await r.next()).toEqual({ return: 'slow', id: 1 });
    expect(await r.next()).toEqual({ return: 'fast', id: 2 });
    expect(log.slice(2)).toEqual(['slow:end', 'fast']);
  });
});

describe('QMP server: flow control', () => {
  it('answers a flood of queued in-band requests, all of them, in order', async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    await start({
      work: {
        args: { n: 'int' },
        handler: async (a) => {
          maxRunning = Math.max(maxRunning, ++running);
          await gate.promise;
          running--;
          return a.n;
        },
      },
    });
    const r = await raw();
    await r.negotiate();
    r.send(Array.from({ length: 100 }, (_, n) => JSON.stringify({ execute: 'work', arguments: { n }, id: n })).join('\n'));
    gate.resolve();
    for (let n = 0; n < 100; n++) expect(await r.next()).toEqual({ return: n, id: n });
    expect(maxRunning).toBe(1);
  });
});

describe('QMP server: out-of-band rules', () => {
  const cmds = (): Record<string, QmpCommandDef> => ({
    'migrate-pause': { allowOob: true, handler: () => undefined },
    'query-status': { handler: () => ({ status: 'running' }) },
  });

  it('refuses exec-oob for a command without allowOob', async () => {
    await start(cmds());
    const r = await raw();
    await r.negotiate(true);
    expect(await r.cmd({ 'exec-oob': 'query-status', id: 1 })).toEqual({
      error: { class: 'GenericError', desc: 'The command query-status does not support OOB' },
      id: 1,
    });
  });

  it('requires an id for exec-oob', async () => {
    await start(cmds());
    const r = await raw();
    await r.negotiate(true);
    expect(await r.cmd({ 'exec-oob': 'migrate-pause' })).toEqual({
      error: { class: 'GenericError', desc: "QMP input lacks member 'id', which out-of-band commands require" },
    });
    expect(await r.cmd({ 'exec-oob': 'migrate-pause', id: 'p' })).toEqual({ return: {}, id: 'p' });
  });

  it('refuses execute and exec-oob together', async () => {
    await start(cmds());
    const r = await raw();
    await r.negotiate(true);
    const reply = await r.cmd({ execute: 'query-status', 'exec-oob': 'migrate-pause', id: 1 });
    expect((reply.error as { desc: string }).desc).toBe("QMP input member 'exec-oob' clashes with 'execute'");
  });

  it('client: executeOob overtakes a pending in-band command', async () => {
    const gate = deferred();
    const started = deferred();
    await start({
      migrate: { handler: async () => { started.resolve(); await gate.promise; return { done: true }; } },
      'migrate-pause': { allowOob: true, handler: () => ({ paused: true }) },
    });
    const c = await client();
    expect(c.oobEnabled).toBe(true);
    const order: string[] = [];
    const inband = c.execute('migrate').then((v) => { order.push('migrate'); return v; });
    await started.promise;
    const oob = await c.executeOob('migrate-pause');
    order.push('migrate-pause');
    expect(oob).toEqual({ paused: true });
    gate.resolve();
    expect(await inband).toEqual({ done: true });
    expect(order).toEqual(['migrate-pause', 'migrate']);
  });
});

describe('QMP server: events', () => {
  it('broadcasts events to every negotiated client, not to those still negotiating', async () => {
    const srv = await start({ 'query-status': { handler: () => ({}) } });
    const a = await client();
    const b = await client();
    const pending = await raw(); // connected, greeting only: must not get events
    await pending.next();
    const got = (c: QmpClient) => new Promise<Record<string, unknown>>((res) => c.once('event', res));
    const ea = got(a);
    const eb = got(b);
    srv.emit('MIGRATION', { status: 'postcopy-paused' });
    for (const e of [await ea, await eb]) {
      expect(e.event).toBe('MIGRATION');
      expect(e.data).toEqual({ status: 'postcopy-paused' });
      const ts = e.timestamp as { seconds: number; microseconds: number };
      expect(Number.isInteger(ts.seconds) && Number.isInteger(ts.microseconds)).toBe(true);
      expect(ts.microseconds).toBeGreaterThanOrEqual(0);
      expect(ts.microseconds).toBeLessThan(1_000_000);
      expect(Math.abs(ts.seconds - Date.now() / 1000)).toBeLessThan(60);
    }
    const ec = got(a);
    srv.emit('STOP');
    const stop = await ec;
    expect(stop.event).toBe('STOP');
    expect('data' in stop).toBe(false);
    // The negotiating connection got nothing but its reply to negotiation afterwards.
    expect(await pending.cmd({ execute: 'qmp_capabilities', id: 'n' })).toEqual({ return: {}, id: 'n' });
  });
});

describe('QMP server: socket file lifecycle', () => {
  it('creates the socket 0600 and removes it on close()', async () => {
    const srv = await start();
    const st = await fsp.stat(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    const c = await client();
    const closed = new Promise<void>((res) => c.once('close', res));
    await srv.close();
    await closed;
    expect(c.closed).toBe(true);
    await expect(fsp.stat(sock)).rejects.toMatchObject({ code: 'ENOENT' });
    await srv.close(); // idempotent
  });

  it('replaces a stale socket file nobody listens on', async () => {
    // A socket file left by a killed process: bind it, then close the handle without unlinking.
    const { spawnSync } = await import('node:child_process');
    const res = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(res.signal).toBe('SIGKILL');
    expect((await fsp.lstat(sock)).isSocket()).toBe(true);
    await start({ 'query-status': { handler: () => ({ status: 'running' }) } });
    const c = await client();
    expect(await c.execute('query-status')).toEqual({ status: 'running' });
  });

  it('refuses to take over a socket something listens on, naming the path', async () => {
    const other = net.createServer();
    await new Promise<void>((res) => other.listen(sock, res));
    try {
      await expect(startQmpServer({ path: sock, commands: {} })).rejects.toThrow(sock);
      expect((await fsp.lstat(sock)).isSocket()).toBe(true);
    } finally {
      await new Promise<void>((res) => other.close(() => res()));
    }
  });

  it('refuses to replace a path that is not a socket', async () => {
    await fsp.writeFile(sock, 'not a socket');
    await expect(startQmpServer({ path: sock, commands: {} })).rejects.toThrow(/not a socket/);
    expect(await fsp.readFile(sock, 'utf8')).toBe('not a socket');
  });
});

describe('QmpClient', () => {
  it('exposes the greeting and negotiates oob', async () => {
    await start();
    const c = await client();
    expect(c.greeting).toMatchObject({ QMP: { capabilities: ['oob'] } });
    expect(c.oobEnabled).toBe(true);
    expect(c.closed).toBe(false);
  });

  it('rejects with QmpError carrying class and desc', async () => {
    await start();
    const c = await client();
    const e = await c.execute('nope').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QmpError);
    expect(e).toMatchObject({ errorClass: 'CommandNotFound', desc: 'The command nope has not been found' });
  });

  it('retries while the socket does not exist yet', async () => {
    const connecting = QmpClient.connect(sock, { retryUntilMs: 20_000, timeoutMs: 5000 });
    await start({ 'query-status': { handler: () => ({ status: 'inmigrate' }) } });
    const c = await connecting;
    toClose.push(c);
    expect(await c.execute('query-status')).toEqual({ status: 'inmigrate' });
  });

  it('fails at once without retryUntilMs, naming the path', async () => {
    await expect(QmpClient.connect(sock)).rejects.toThrow(`Cannot connect to QMP socket ${sock}`);
  });

  it('rejects pending calls when the connection closes', async () => {
    const started = deferred();
    const srv = await start({ hang: { handler: () => { started.resolve(); return new Promise(() => {}); } } });
    const c = await client();
    const p = c.execute('hang');
    const settled = p.then(() => 'resolved', (e: unknown) => e);
    await started.promise;
    await srv.close();
    expect(await settled).toBeInstanceOf(Error);
    await expect(p).rejects.toThrow(`QMP connection to ${sock} closed`);
    await expect(c.execute('hang')).rejects.toThrow(`QMP connection to ${sock} closed`);
  });

  it('close() rejects pending calls and emits close once', async () => {
    await start({ hang: { handler: () => new Promise(() => {}) } });
    const c = await client();
    let closes = 0;
    c.on('close', () => closes++);
    const p = c.execute('hang');
    c.close();
    c.close();
    await expect(p).rejects.toThrow(`QMP connection to ${sock} closed`);
    expect(c.closed).toBe(true);
    expect(closes).toBe(1);
  });

  it('times out a command, naming it, and ignores the late reply', async () => {
    const gate = deferred();
    await start({ hang: { handler: async () => { await gate.promise; return 1; } }, 'query-status': { handler: () => 2 } });
    const c = await client();
    await expect(c.execute('hang', undefined, { timeoutMs: 50 })).rejects.toThrow(/'hang'.*timed out after 50 ms/);
    gate.resolve();
    expect(await c.execute('query-status')).toBe(2);
  });

  it('works with pretty-printed, multi-chunk replies from the server side', async () => {
    // A server that writes like QEMU with pretty=on, byte by byte.
    const fake = net.createServer((s) => {
      const write = (o: unknown) => { for (const ch of JSON.stringify(o, null, 4) + '\n') s.write(ch); };
      write({ QMP: { version: { qemu: { major: 9, minor: 0, micro: 0 }, package: '' }, capabilities: [] } });
      const sp = new JsonObjectSplitter();
      s.on('data', (d: Buffer) => {
        for (const it of sp.push(d)) {
          if (it.kind !== 'message') continue;
          const req = JSON.parse(it.text) as { id: unknown; arguments?: unknown };
          expect(req.arguments).toBeUndefined(); // no oob offered: plain qmp_capabilities
          write({ return: { pretty: '{ } "' }, id: req.id });
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((res) => fake.listen(sock, res));
    try {
      const c = await client();
      expect(c.oobEnabled).toBe(false);
      expect(await c.execute('anything')).toEqual({ pretty: '{ } "' });
      await expect(c.executeOob('migrate-pause')).rejects.toThrow(/does not offer out-of-band/);
      c.close();
    } finally {
      await new Promise<void>((res) => fake.close(() => res()));
    }
  });
});
