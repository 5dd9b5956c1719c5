/**
 * The real relay process between real TCP peers on 127.0.0.1. Waits are bounded polls; the only
 * timing assertion is a loose lower bound on a rate-capped transfer.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RelayControl, RelayLink } from '../../../src/link/relay.js';
import type { LinkEndpoints } from '../../../src/types.js';
import { client, dial, ensureBuilt, peer, RELAY_MAIN_DIST, sleep, tempDir, waitFor } from './helpers.js';

beforeAll(ensureBuilt, 120_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function startLink(): Promise<{ link: RelayLink; ends: LinkEndpoints; dir: string }> {
  const dir = tempDir();
  const link = new RelayLink({ runtimeDir: dir, relayMain: RELAY_MAIN_DIST });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => link.stop());
  const ends = await link.start();
  return { link, ends, dir };
}

async function startEcho(ends: LinkEndpoints, echo = true) {
  const p = await peer(ends.incoming.listen.port, echo);
  cleanups.push(() => p.close());
  return p;
}

async function connect(port: number) {
  const c = await client(port);
  cleanups.push(() => void c.socket.destroy());
  return c;
}

/** A connection the relay is expected to reset (nothing listens behind it). */
function refused(port: number) {
  const c = dial(port);
  cleanups.push(() => void c.socket.destroy());
  return c;
}

describe('relay link', () => {
  it('relays both ways on both routes and the counters add up', async () => {
    const { link, ends } = await startLink();
    expect(ends.incoming.connect.port).not.toBe(ends.incoming.listen.port);
    const echo = await startEcho(ends);
    const recoverPeer = await peer(ends.recover.listen.port);
    cleanups.push(() => recoverPeer.close());

    const c = await connect(ends.incoming.connect.port);
    const payload = Buffer.alloc(1 << 20, 0xab);
    c.socket.write(payload);
    await waitFor(() => c.state.received === payload.length, 5000, 'the echo');
    expect(Buffer.concat(c.state.data).equals(payload)).toBe(true);

    const r = await connect(ends.recover.connect.port);
    r.socket.write('recover');
    await waitFor(() => r.state.received === 7, 5000, 'the recover route');

    const snap = await link.snapshot();
    expect(snap.kind).toBe('relay');
    expect(snap.up).toBe(true);
    expect(snap.connections).toBe(2);
    expect(snap['source-to-destination'].bytesForwarded).toBe(payload.length + 7);
    expect(snap['destination-to-source'].bytesForwarded).toBe(payload.length + 7);
    expect(snap['source-to-destination'].bytesDropped).toBe(0);
    expect(echo.received).toBe(payload.length);
  });

  it('resets a connection nothing listens behind, and counts it as refused (a cut reset is not)', async () => {
    const { link, ends } = await startLink();
    expect((await link.snapshot()).refused).toBe(0);
    // Nothing listens on the recover route yet: the relay accepts, the destination refuses.
    // Dialled, not awaited: the relay's reset may come before the client sees it connect
    // (ECONNRESET from connect: failed a fresh-clone CI run once).
    const early = refused(ends.recover.connect.port);
    await waitFor(() => early.state.error !== undefined || early.state.closed, 5000, 'the early connection to end');
    await waitFor(async () => (await link.snapshot()).refused === 1, 5000, 'the refusal to be counted');
    expect((await link.snapshot()).refusedSecond).toBe(0);

    // A second connection to a listener that took one and closed (a destination without
    // postcopy-preempt, the source's preempt channel): refused beside an open one.
    const once = net.createServer((s) => {
      s.on('error', () => {});
      once.close();
    });
    await new Promise<void>((resolve) => once.listen(ends.recover.listen.port, ends.recover.listen.host, resolve));
    const main = await connect(ends.recover.connect.port);
    main.socket.write('main');
    await waitFor(async () => (await link.snapshot())['source-to-destination'].bytesForwarded === 4, 5000, 'the main channel through');
    const second = refused(ends.recover.connect.port);
    await waitFor(() => second.state.error !== undefined || second.state.closed, 5000, 'the second connection to end');
    await waitFor(async () => (await link.snapshot()).refused === 2, 5000, 'the second refusal');
    expect((await link.snapshot()).refusedSecond).toBe(1);

    await startEcho(ends);
    const c = await connect(ends.incoming.connect.port);
    c.socket.write('x');
    await waitFor(() => c.state.received === 1, 5000, 'the echo');
    await link.apply({ kind: 'cut' });
    await waitFor(() => c.state.error !== undefined, 5000, 'the cut');
    expect((await link.snapshot()).refused).toBe(2);
  });

  it('passes a half-close on, after the data', async () => {
    const { ends } = await startLink();
    await startEcho(ends);
    const c = await connect(ends.incoming.connect.port);
    c.socket.end('last words');
    await waitFor(() => c.state.closed, 5000, 'the connection to close both ways');
    expect(Buffer.concat(c.state.data).toString()).toBe('last words');
    expect(c.state.error).toBeUndefined();
  });

  it('cut resets both ends and refuses new connections until up', async () => {
    const { link, ends } = await startLink();
    const echo = await startEcho(ends);
    const c = await connect(ends.incoming.connect.port);
    c.socket.write('hello');
    await waitFor(() => c.state.received === 5);

    await link.apply({ kind: 'cut' });
    await waitFor(() => c.state.error !== undefined, 5000, 'the client to see the cut');
    expect(c.state.error).toBe('ECONNRESET');
    await waitFor(() => echo.errors.includes('ECONNRESET'), 5000, 'the server to see the cut');

    // New connections are reset at once (or refused): never silently accepted.
    const again = net.connect(ends.incoming.connect.port, '127.0.0.1');
    const code = await new Promise<string>((resolve) => {
      again.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? ''));
      again.on('close', () => resolve('closed'));
    });
    expect(['ECONNRESET', 'ECONNREFUSED']).toContain(code);
    expect((await link.snapshot()).up).toBe(false);

    await link.apply({ kind: 'up' });
    const after = await connect(ends.incoming.connect.port);
    after.socket.write('back');
    await waitFor(() => after.state.received === 4, 5000, 'traffic after up');
  });

  it('blackhole keeps sockets open, delivers nothing and counts the drops; restore brings data back', async () => {
    const { link, ends } = await startLink();
    const echo = await startEcho(ends);
    const c = await connect(ends.incoming.connect.port);

    await link.apply({ kind: 'blackhole', direction: 'source-to-destination' });
    c.socket.write(Buffer.alloc(10_000));
    await waitFor(async () => (await link.snapshot())['source-to-destination'].bytesDropped === 10_000, 5000, 'the drops to be counted');
    expect(echo.received).toBe(0);
    expect(c.state.received).toBe(0);
    expect(c.state.closed).toBe(false);
    expect(c.state.error).toBeUndefined();

    // New connections are accepted, and their bytes vanish too.
    const late = await connect(ends.incoming.connect.port);
    late.socket.write('lost');
    await waitFor(async () => (await link.snapshot())['source-to-destination'].bytesDropped === 10_004);

    await link.restore();
    c.socket.write('again');
    await waitFor(() => c.state.received === 5, 5000, 'traffic after restore');
    expect(Buffer.concat(c.state.data).toString()).toBe('again');
    expect(echo.received).toBe(5);
  });

  it('down holds bytes (nothing lost) and delivers them intact when up', async () => {
    const { link, ends } = await startLink();
    const echo = await startEcho(ends);
    const c = await connect(ends.incoming.connect.port);
    await link.apply({ kind: 'down', direction: 'source-to-destination' });
    c.socket.write('held through the outage');
    await sleep(200);
    expect(echo.received).toBe(0);
    await link.apply({ kind: 'up' });
    await waitFor(() => c.state.received === 23, 5000, 'the held bytes');
    expect(Buffer.concat(c.state.data).toString()).toBe('held through the outage');
    expect((await link.snapshot())['source-to-destination'].bytesDropped).toBe(0);
  });

  it('latency delays each direction (a lower bound only)', async () => {
    const { link, ends } = await startLink();
    await startEcho(ends);
    await link.apply({ kind: 'latency', ms: 100 });
    const c = await connect(ends.incoming.connect.port);
    const t0 = Date.now();
    c.socket.write('ping');
    await waitFor(() => c.state.received === 4, 5000, 'the echo');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190); // 100 ms out, 100 ms back
  });

  it('a counted flap cuts, comes back up and stops flapping', async () => {
    const { link, ends } = await startLink();
    await startEcho(ends);
    const c = await connect(ends.incoming.connect.port);
    await link.apply({ kind: 'flap', upMs: 100, downMs: 200, mode: 'cut', count: 1 });
    await waitFor(() => c.state.error !== undefined, 5000, 'the cut');
    expect(c.state.error).toBe('ECONNRESET');
    await waitFor(async () => !(await link.snapshot()).flapping, 5000, 'the flap to finish');
    expect((await link.snapshot()).up).toBe(true);
    const after = await connect(ends.incoming.connect.port);
    after.socket.write('up');
    await waitFor(() => after.state.received === 2, 5000, 'traffic after the flap');
  });

  it('a bandwidth cap slows a 4 MiB transfer, and the sender feels the backpressure', async () => {
    const { link, ends } = await startLink();
    const sink = await startEcho(ends, false);
    const rate = 4 * 1024 * 1024;
    await link.apply({ kind: 'bandwidth', bytesPerSec: rate, direction: 'source-to-destination' });
    const c = await connect(ends.incoming.connect.port);
    const size = 4 * 1024 * 1024;
    const t0 = Date.now();
    c.socket.write(Buffer.alloc(size));
    await waitFor(() => sink.received === size, 15_000, 'the capped transfer');
    expect(Date.now() - t0).toBeGreaterThan(0.5 * (size / rate) * 1000);

    // At 256 KiB/s the relay must not soak up a 32 MiB write: most of it stays in the sender.
    await link.apply({ kind: 'bandwidth', bytesPerSec: 256 * 1024, direction: 'source-to-destination' });
    // Many small writes, so writableLength is exactly what neither the kernels nor the relay took.
    for (let i = 0; i < 512; i++) c.socket.write(Buffer.alloc(64 * 1024));
    await sleep(1000);
    expect(c.socket.writableLength).toBeGreaterThan(16 * 1024 * 1024);
  });

  it('answers a bad control command with an error and keeps working', async () => {
    const { link, ends, dir } = await startLink();
    await startEcho(ends);
    const control = new RelayControl(path.join(dir, 'relay.sock'));
    await expect(control.request({ cmd: 'apply', fault: { kind: 'latency', ms: -5 } })).rejects.toThrow(/latency ms must be from 0 to 60000 milliseconds, got -5/);
    await expect(control.request({ cmd: 'explode' })).rejects.toThrow(/unknown cmd "explode"/);
    // A raw garbage line too.
    const raw = net.connect(path.join(dir, 'relay.sock'));
    const reply = await new Promise<string>((resolve) => {
      raw.once('data', (d) => resolve(d.toString()));
      raw.write('}{\n');
    });
    raw.destroy();
    expect(JSON.parse(reply).error).toMatch(/one line of JSON/);
    await expect(link.apply({ kind: 'bandwidth', bytesPerSec: -1 })).rejects.toThrow(/bandwidth bytesPerSec must be 0 \(no cap\) or from 1/);
    // 0 is no cap (the TUI's unlimited-rate preset), not an error.
    await link.apply({ kind: 'bandwidth', bytesPerSec: 0 });

    const c = await connect(ends.incoming.connect.port);
    c.socket.write('still here');
    await waitFor(() => c.state.received === 10);
    expect((fs.statSync(path.join(dir, 'relay.sock')).mode & 0o777).toString(8)).toBe('600');
  });

  it('resets the source when the destination is not listening', async () => {
    const { link, ends } = await startLink();
    const c = net.connect(ends.incoming.connect.port, '127.0.0.1');
    const code = await new Promise<string>((resolve) => {
      c.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? ''));
      c.on('close', () => resolve('closed cleanly'));
    });
    expect(code).toBe('ECONNRESET');
    expect((await link.snapshot()).connections).toBe(0);
  });

  it('reports an unexpected death of the relay on the next call', async () => {
    const { link } = await startLink();
    process.kill(link.pid!, 'SIGKILL');
    await waitFor(() => link.pid === undefined, 5000, 'the relay to be reaped');
    await expect(link.snapshot()).rejects.toThrow(/the relay process exited \(signal SIGKILL\)/);
    await link.stop();
    await link.stop();
  });
});

describe('relay process', () => {
  it('exits 2 naming a listen port that is in use', async () => {
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => void taken.close());
    const port = (taken.address() as net.AddressInfo).port;
    const result = await execa(process.execPath, [RELAY_MAIN_DIST, '--control', path.join(dir, 'relay.sock'), '--route', `127.0.0.1:${port}=127.0.0.1:1`], {
      reject: false,
      timeout: 10_000,
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`127.0.0.1:${port}`);
    expect(result.stderr).toMatch(/already in use.*port 0/);
  });

  it('exits cleanly on SIGTERM and leaves no socket file', async () => {
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const sock = path.join(dir, 'relay.sock');
    const child = execa(process.execPath, [RELAY_MAIN_DIST, '--control', sock, '--route', '127.0.0.1:0=127.0.0.1:1'], { reject: false });
    cleanups.push(() => void child.kill('SIGKILL'));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    expect(fs.existsSync(sock)).toBe(true);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('exits when its parent is gone', async () => {
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const parent = execa('sleep', ['0.2']);
    const child = execa(
      process.execPath,
      [RELAY_MAIN_DIST, '--control', path.join(dir, 'relay.sock'), '--route', '127.0.0.1:0=127.0.0.1:1', '--parent-pid', String(parent.pid)],
      { reject: false, timeout: 10_000 },
    );
    cleanups.push(() => void child.kill('SIGKILL'));
    await parent;
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(fs.existsSync(path.join(dir, 'relay.sock'))).toBe(false);
  });
});
