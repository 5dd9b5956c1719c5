/**
 * What a link holds while a migration runs, read from /proc (no tool spawned, so the probe
 * barely loads the machine it measures):
 *
 * - **queued bytes**: every TCP socket of the migration route (the source's, the forwarder's
 *   two, the destination's; one pair when direct) summed, send queue plus receive queue, from
 *   /proc/net/tcp. In vanilla postcopy a requested page is sent behind all of them, so a fault's
 *   latency is about this over the throughput: it says where a p50 difference comes from.
 * - **forwarder CPU**: user and kernel seconds of the forwarding processes (the relay, or socat
 *   and its per-connection children), from /proc/<pid>/stat.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Bytes in the send and receive queues of every loopback socket with an end on one of `ports`. */
export function queuedBytes(ports: ReadonlySet<number>): number {
  let sum = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue ...
      const f = line.trim().split(/\s+/);
      if (f.length < 5 || f[3] !== '01') continue; // ESTABLISHED only
      const local = parseInt(f[1]!.split(':')[1]!, 16);
      const remote = parseInt(f[2]!.split(':')[1]!, 16);
      if (!ports.has(local) && !ports.has(remote)) continue;
      const [tx, rx] = f[4]!.split(':').map((h) => parseInt(h, 16));
      sum += (tx ?? 0) + (rx ?? 0);
    }
  }
  return sum;
}

/** Samples queuedBytes(ports) every `everyMs` until stopped; stop() gives the samples. */
export function sampleQueued(ports: ReadonlySet<number>, everyMs = 50): { stop(): number[] } {
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(queuedBytes(ports)), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}

/**
 * utime + stime, in seconds, of the processes `match` picks by pid and process group, with the
 * CPU of their children already reaped (cutime + cstime): socat forks a child per connection,
 * and one that has ended is counted only in its parent's figures.
 */
export function cpuSeconds(match: (pid: number, pgid: number) => boolean): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // After the command name (which may hold spaces): state ppid pgrp ... utime(14) stime(15) cutime(16) cstime(17).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (match(Number(name), Number(f[2]))) {
      user += Number(f[11]) + Number(f[13]);
      system += Number(f[12]) + Number(f[14]);
    }
  }
  return { user: user / 100, system: system / 100 }; // USER_HZ
}
