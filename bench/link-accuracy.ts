/**
 * `--only link-accuracy`: do the relay's faults measure as configured? No VMs: a sink
 * process-local TCP server behind the link, a bulk sender and a ping-pong of small messages
 * in front of it, over loopback.
 *
 * - latency: configured X ms on source→destination; a 64-byte ping echoed back by the sink
 *   measures X plus the hop's own round trip, so the row reports the median RTT through the
 *   relay with X minus the median RTT through the relay with no fault, in the same run (idle),
 *   and, while a bulk transfer runs on a second connection of the same link, minus what the
 *   same load gives through socat.
 * - rate: configured R on source→destination; one connection sends as fast as it can for a
 *   few seconds; the sink's bytes over the last part of the window (after the bucket's burst)
 *   divided by its length.
 * - idle overhead: the median RTT through the relay and through socat, no fault set.
 */
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RelayLink } from '../src/link/relay.js';
import type { Link, LinkEndpoints } from '../src/types.js';
import { SocatLink, socatMissing } from './socat-link.js';

const MiB = 1024 * 1024;

interface Rig {
  link: Link;
  ep: LinkEndpoints;
  close(): Promise<void>;
}

/** A link with an echo server on the incoming route and a sink on the recover route. */
async function rig(make: (dir: string) => Link): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-accuracy-'));
  const link = make(dir);
  const ep = await link.start();
  const sockets = new Set<net.Socket>();
  const listen = (port: number, onSocket: (s: net.Socket) => void) =>
    new Promise<net.Server>((resolve) => {
      const server = net.createServer((s) => {
        sockets.add(s);
        s.setNoDelay(true);
        s.on('error', () => {});
        onSocket(s);
      });
      server.listen(port, '127.0.0.1', () => resolve(server));
    });
  // Echo: every byte straight back (pings are tiny, so each arrives whole).
  const echo = await listen(ep.incoming.listen.port, (s) => s.on('data', (d: Buffer) => s.write(d)));
  // Sink: takes whatever the bulk sender sends.
  const sink = await listen(ep.recover.listen.port, (s) => s.resume());
  return {
    link,
    ep,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => echo.close(r));
      await new Promise((r) => sink.close(r));
      await link.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** `n` pings of 64 bytes, one at a time; the round trips in ms. */
async function pingPong(port: number, n: number): Promise<number[]> {
  const s = await connect(port);
  const out: number[] = [];
  const ping = Buffer.alloc(64, 1);
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        let got = 0;
        const on = (d: Buffer) => {
          got += d.length;
          if (got >= ping.length) {
            s.off('data', on);
            resolve();
          }
        };
        s.on('data', on);
        s.write(ping);
      });
      out.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    s.destroy();
  }
  return out;
}

/** Sends as fast as the link takes it until stopped. */
async function bulk(port: number): Promise<{ stop(): void }> {
  const s = await connect(port);
  s.on('error', () => {});
  const chunk = Buffer.alloc(256 * 1024, 7);
  let stopped = false;
  const pump = () => {
    while (!stopped && s.write(chunk));
  };
  s.on('drain', pump);
  pump();
  return {
    stop() {
      stopped = true;
      s.destroy();
    },
  };
}

const median = (xs: number[]) => {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.floor((a.length - 1) / 2)] ?? NaN;
};

async function rtt(make: (dir: string) => Link, opts: { latencyMs?: number; loaded?: boolean; pings: number }): Promise<number> {
  const r = await rig(make);
  try {
    if (opts.latencyMs) await r.link.apply({ kind: 'latency', ms: opts.latencyMs, direction: 'source-to-destination' });
    const load = opts.loaded ? await bulk(r.ep.recover.connect.port) : undefined;
    if (load) await new Promise((res) => setTimeout(res, 300));
    const rtts = await pingPong(r.ep.incoming.connect.port, opts.pings);
    load?.stop();
    return median(rtts);
  } finally {
    await r.close();
  }
}

export interface AccuracyRow {
  row: string;
  configured: string;
  measured: string;
  error: string;
}

export async function linkAccuracy(reps: number): Promise<{ rows: AccuracyRow[]; raw: Record<string, number> }> {
  const relay = (dir: string) => new RelayLink({ runtimeDir: dir });
  const socat = (dir: string): Link => (void dir, new SocatLink());
  const pings = reps > 1 ? 200 : 80;
  const missing = await socatMissing();
  const raw: Record<string, number> = {};
  const rows: AccuracyRow[] = [];

  raw.relayIdle = await rtt(relay, { pings });
  if (!missing) raw.socatIdle = await rtt(socat, { pings });
  rows.push({ row: 'ping RTT, idle, no fault: relay (socat)', configured: '0', measured: `${raw.relayIdle.toFixed(3)} ms (${raw.socatIdle?.toFixed(3) ?? 'socat skipped'})`, error: '' });
  for (const x of [1, 5, 20]) {
    const m = (await rtt(relay, { latencyMs: x, pings })) - raw.relayIdle;
    raw[`latency${x}Idle`] = m;
    rows.push({ row: 'latency, idle', configured: `${x} ms`, measured: `${m.toFixed(2)} ms`, error: `${(m - x >= 0 ? '+' : '') + (m - x).toFixed(2)} ms` });
  }
  if (missing) {
    rows.push({ row: 'latency, under load', configured: '-', measured: `skipped (${missing})`, error: '' });
  } else {
    raw.socatLoaded = await rtt(socat, { loaded: true, pings });
    raw.relayLoaded = await rtt(relay, { loaded: true, pings });
    rows.push({ row: 'ping RTT beside a bulk transfer, no fault: relay (socat)', configured: '0', measured: `${raw.relayLoaded.toFixed(3)} ms (${raw.socatLoaded.toFixed(3)})`, error: '' });
    for (const x of [5, 20]) {
      const m = (await rtt(relay, { latencyMs: x, loaded: true, pings })) - raw.socatLoaded;
      raw[`latency${x}Loaded`] = m;
      rows.push({ row: 'latency beside a bulk transfer, minus socat under the same load', configured: `${x} ms`, measured: `${m.toFixed(2)} ms`, error: `${(m - x >= 0 ? '+' : '') + (m - x).toFixed(2)} ms` });
    }
  }
  for (const rate of [4 * MiB, 32 * MiB, 128 * MiB]) {
    const measured = await rateOf(rate, reps > 1 ? 4 : 2.5);
    raw[`rate${rate}`] = measured;
    const err = (measured / rate - 1) * 100;
    rows.push({ row: 'rate', configured: `${rate / MiB} MiB/s`, measured: `${(measured / MiB).toFixed(2)} MiB/s`, error: `${(err >= 0 ? '+' : '') + err.toFixed(1)} %` });
  }
  return { rows, raw };
}

/** Bytes per second the sink receives through a relay capped at `bytesPerSec`, after the first second. */
async function rateOf(bytesPerSec: number, seconds: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-accuracy-'));
  const link = new RelayLink({ runtimeDir: dir });
  const ep = await link.start();
  const arrivals: { t: number; bytes: number }[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => arrivals.push({ t: performance.now(), bytes: d.length }));
  });
  await new Promise<void>((r) => server.listen(ep.recover.listen.port, '127.0.0.1', () => r()));
  try {
    await link.apply({ kind: 'bandwidth', bytesPerSec, direction: 'source-to-destination' });
    const load = await bulk(ep.recover.connect.port);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    load.stop();
    // Skip the first second: the bucket's initial burst and the connection's slow start.
    const from = t0 + 1000;
    const window = arrivals.filter((a) => a.t >= from);
    if (window.length < 2) return NaN;
    const bytes = window.slice(1).reduce((n, a) => n + a.bytes, 0);
    return bytes / ((window[window.length - 1]!.t - window[0]!.t) / 1000);
  } finally {
    server.close();
    await link.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
