/**
 * A connected pair of real TCP sockets on 127.0.0.1 for unit tests of code that reads and
 * writes sockets; every pair made is destroyed after each test.
 */
import net from 'node:net';
import { afterEach } from 'vitest';

const made: Array<() => void> = [];
afterEach(() => {
  for (const f of made.splice(0)) f();
});

/** Both ends connected (the client's 'connect' has fired). */
export async function socketPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });
  const server = await accepted;
  if (client.connecting) await new Promise((r) => client.once('connect', r));
  made.push(() => {
    client.destroy();
    server.destroy();
    srv.close();
  });
  return { client, server };
}
