/**
 * The source's pump over a real loopback socket: what reaches the wire, in which order. No
 * timing: the order of frames and their bytes are what the pump promises.
 */
import net from 'node:net';
import { expect, it } from 'vitest';
import { Channel } from '../../../src/sim/channel.js';
import { checkPage } from '../../../src/sim/content.js';
import { PageSender, type SenderHost } from '../../../src/sim/page-sender.js';
import { SourceMigration } from '../../../src/sim/source-migration.js';
import type { MigrationParameters } from '../../../src/sim/vm.js';
import { MainStreamDecoder } from '../../../src/sim/wire.js';
import { waitFor } from '../../helpers/sim.js';
import { socketPair } from '../../helpers/socket-pair.js';

const PAGE = 4096;


/** A source in postcopy with `pages` pages to push, whose stream ends when the push is done. */
function postcopyHost(pages: number, ch: () => Channel): SenderHost & { eof: boolean } {
  const versions = new Uint32Array(pages);
  for (let i = 0; i < pages; i++) versions[i] = (i * 7) % 5;
  const host = {
    status: 'postcopy-active' as const,
    params: { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 0 } as MigrationParameters,
    versions,
    pageSize: PAGE,
    m: new SourceMigration(pages, PAGE),
    eof: false,
    switchToPostcopy() {},
    endOfPass() {},
    sendEof() {
      host.m.eofSent = true;
      host.eof = true;
      ch().end();
    },
  };
  return host;
}

/** Reads the stream: the page indexes in the order they arrived, each checked against its version. */
function readPages(server: net.Socket, versions: Uint32Array): { order: number[]; bad: number[]; bytes: () => number } {
  const order: number[] = [];
  const bad: number[] = [];
  const dec = new MainStreamDecoder(PAGE, versions.length, (m) => {
    if (m.type !== 'page') return;
    order.push(m.index);
    if (m.version !== versions[m.index] || !checkPage(m.buf, m.offset, m.index, m.version, PAGE)) bad.push(m.index);
  });
  server.on('data', (d: Buffer) => dec.push(d));
  return { order, bad, bytes: () => dec.bytes };
}

it('pushes every page once with the right bytes, reusing its buffers only after the kernel took them', async () => {
  const { client, server } = await socketPair();
  // The reader starts late, so writes queue in user space and wait for the kernel: a buffer
  // reused before its write completed would put later pages' bytes into earlier frames.
  server.pause();
  const host = postcopyHost(16384, () => ch);
  const ch = new Channel(client, { error: () => {}, close: () => {} });
  const got = readPages(server, host.versions);
  const sender = new PageSender(host, ch);
  const run = sender.run();
  await waitFor(() => client.writableLength > 0, 'writes queued behind a full kernel buffer');
  server.resume();
  await waitFor(() => host.eof, 'the end of the push', 30_000);
  await waitFor(() => got.bytes() === ch.sock.bytesWritten, 'everything at the reader', 30_000);
  await run;
  expect(got.bad).toEqual([]);
  expect(got.order).toHaveLength(16384);
  expect(new Set(got.order).size).toBe(16384);
});

it('a page requested while the push runs goes out ahead of the rest of the push, once', async () => {
  const { client, server } = await socketPair();
  const pages = 16384;
  const host = postcopyHost(pages, () => ch);
  const ch = new Channel(client, { error: () => {}, close: () => {} });
  const got = readPages(server, host.versions);
  const sender = new PageSender(host, ch);
  // Asked before the push starts: it is the very first frame.
  host.m.reqQueue.push(pages - 2);
  server.pause();
  const run = sender.run();
  // Asked mid-push, with megabytes of the push still to go (the reader holds it back): the
  // pump serves it before its next background batch.
  await waitFor(() => client.writableLength > 0, 'the push blocked on the reader');
  const pushedBefore = host.m.sentOnce.count;
  host.m.reqQueue.push(pages - 1);
  sender.kick();
  server.resume();
  await waitFor(() => host.eof, 'the end of the push', 30_000);
  await waitFor(() => got.bytes() === ch.sock.bytesWritten, 'everything at the reader', 30_000);
  await run;
  expect(got.order).toHaveLength(pages);
  expect(got.order[0]).toBe(pages - 2);
  expect(pushedBefore).toBeLessThan(pages - 16);
  // Sent right after what was already written when it was asked for, not after the push.
  expect(got.order.indexOf(pages - 1)).toBeLessThanOrEqual(pushedBefore);
  expect(got.order.filter((p) => p >= pages - 2)).toHaveLength(2);
  expect(got.bad).toEqual([]);
});
