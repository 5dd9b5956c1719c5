/**
 * A Channel closes as a unit: once its owner closes it, nothing the socket still emits (data
 * already on the way, the close that follows) and no callback bound to it runs again.
 */
import { expect, it } from 'vitest';
import net from 'node:net';
import { Channel, readIntoBuffer } from '../../../src/sim/channel.js';
import { waitFor } from '../../helpers/sim.js';
import { socketPair } from '../../helpers/socket-pair.js';


it('readIntoBuffer: an accepted socket reads every byte, in order, into the one buffer; false pauses it until resume()', async () => {
  const srv = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });
  // 3 MiB of a counting pattern, written before the server side reads anything.
  const sent = Buffer.alloc(3 << 20);
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >>> 12)) & 0xff;
  client.end(sent);
  const buf = Buffer.alloc(4096);
  const got: Buffer[] = [];
  let pauses = 0;
  let paused = false;
  const sock: net.Socket = readIntoBuffer(await accepted, buf, (n) => {
    if (paused) throw new Error('read while paused');
    got.push(Buffer.from(buf.subarray(0, n)));
    // Pause after every fourth read, as the destination yields to its preempt channel.
    if (got.length % 4) return true;
    pauses++;
    paused = true;
    setImmediate(() => {
      paused = false;
      sock.resume();
    });
    return false;
  });
  await new Promise((r) => sock.once('end', r));
  sock.destroy();
  srv.close();
  expect(Buffer.concat(got).equals(sent)).toBe(true);
  expect(got.every((c) => c.length <= buf.length)).toBe(true);
  expect(pauses).toBeGreaterThan(0);
});

it('runs its handlers while open, and none after destroy(), not even the close it causes', async () => {
  const { client, server } = await socketPair();
  const seen: string[] = [];
  const ch = new Channel(client, {
    data: (d) => seen.push(`data:${d.toString()}`),
    error: () => seen.push('error'),
    close: () => seen.push('close'),
  });
  const late = ch.bind((what: string) => seen.push(`bound:${what}`));
  server.write('one');
  await waitFor(() => seen.includes('data:one'), 'the first chunk');
  late('before');
  ch.destroy();
  server.write('two');
  late('after');
  await waitFor(() => client.destroyed, 'the socket destroyed');
  await new Promise((r) => setTimeout(r, 50));
  expect(seen).toEqual(['data:one', 'bound:before']);
  expect(ch.open).toBe(false);
  expect(ch.write(Buffer.from('x'))).toBe(false);
});

it('reports the peer closing while open, once', async () => {
  const { client, server } = await socketPair();
  const seen: string[] = [];
  new Channel(client, { error: () => seen.push('error'), close: () => seen.push('close') });
  server.end();
  await waitFor(() => seen.length > 0, 'the close');
  expect(seen).toEqual(['close']);
});
