/**
 * A Channel closes as a unit: once its owner closes it, nothing the socket still emits (data
 * already on the way, the close that follows) and no callback bound to it runs again.
 */
import { expect, it } from 'vitest';
import { Channel } from '../../../src/sim/channel.js';
import { waitFor } from '../../helpers/sim.js';
import { socketPair } from '../../helpers/socket-pair.js';



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
