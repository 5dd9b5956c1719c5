/**
 * Ports for a listener that something else binds a moment later (a destination VM's
 * migrate-incoming, a relay's route target).
 *
 * Not from the kernel's ephemeral range: a port taken there with bind(0) and released is free
 * game for any other bind(0) or outgoing connection on the machine until its owner binds it
 * again, and under load one did take it (EADDRINUSE from a destination in a drill). Below that
 * range only other pickers like this one compete, and they choose at random among thousands.
 */
import fs from 'node:fs';
import net from 'node:net';

const FLOOR = 20000;

/** The low end of Linux's ephemeral range, or 32768 where it cannot be read. */
function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FLOOR + 1000 ? low : 32768;
  } catch {
    return 32768;
  }
}

function tryListen(host: string, port: number): Promise<net.Server | null> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(null));
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

/**
 * `count` distinct ports that were free on `host` a moment ago: random ones in 20000 up to the
 * ephemeral range, each held until all are found so none is handed out twice.
 */
export async function freePorts(host: string, count: number): Promise<number[]> {
  const top = ephemeralLow();
  const held: net.Server[] = [];
  try {
    for (let attempt = 0; held.length < count; attempt++) {
      if (attempt > 200) throw new Error(`no ${count} free port(s) on ${host} between ${FLOOR} and ${top - 1}`);
      const server = await tryListen(host, FLOOR + Math.floor(Math.random() * (top - FLOOR)));
      if (server) held.push(server);
    }
    return held.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** One port that was free on 127.0.0.1 a moment ago (see freePorts). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(host, 1);
  return port;
}
