/**
 * The destination VM process facing a hostile or broken migration stream: a raw TCP socket
 * plays the source. Garbage, a corrupt page, truncation, a reset or a wrong layout fail the
 * incoming migration in precopy (error-desc says why), pause it in postcopy, never place a
 * corrupt page and never take the process down. A scripted source then drives a whole
 * postcopy migration with a recovery, proving the protocol end to end, byte by byte.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writePage } from '../../../src/sim/content.js';
import {
  encodeEmpty,
  encodeHeader,
  encodeJson,
  encodeRanges,
  encodeResume,
  encodeVerifyAll,
  MIG_CMD,
  pageFrameBytes,
  ReturnPathDecoder,
  writePageFrameHeader,
  type ReturnMessage,
} from '../../../src/sim/wire.js';
import { headerOf } from '../../unit/sim/wire-arbitraries.js';
import { ensureBuilt, freePort, setCaps, startVm, tempDir, waitFor, type SimVmProcess } from '../../helpers/sim.js';

const PAGE = 4096;
const MEMORY = '1M';
const PAGES = (1024 * 1024) / PAGE;

let dir: string;
let dst: SimVmProcess | null = null;

beforeAll(async () => {
  await ensureBuilt();
  dir = tempDir();
}, 240_000);
afterEach(async () => {
  await dst?.stop();
  dst = null;
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function page(index: number, version = 0): Buffer {
  const b = Buffer.alloc(pageFrameBytes(PAGE));
  writePage(b, writePageFrameHeader(b, 0, index, version, PAGE), index, version, PAGE);
  return b;
}

function header(resume = false, pageCount = PAGES, pageSize = PAGE): Buffer {
  return encodeHeader(headerOf({ resume, pageSize, pageCount }));
}

/** A raw connection playing the source, collecting return path messages. */
async function rawSource(port: number) {
  const sock = net.connect({ host: '127.0.0.1', port });
  const received: ReturnMessage[] = [];
  const decoder = new ReturnPathDecoder(PAGES, (m) => received.push(m));
  const state = { closed: false, error: '' };
  sock.on('data', (d: Buffer) => decoder.push(d));
  sock.on('error', (e: NodeJS.ErrnoException) => (state.error = e.code ?? e.message));
  sock.on('close', () => (state.closed = true));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  return {
    sock,
    received,
    state,
    write: (b: Buffer) => new Promise<void>((r) => sock.write(b, () => r())),
  };
}

async function incoming(caps: Record<string, boolean> = { events: true }): Promise<{ vm: SimVmProcess; port: number }> {
  dst = await startVm({ role: 'destination', dir, memory: MEMORY, readRate: 500, dirtyRate: 200 });
  await setCaps(dst, caps);
  const port = await freePort();
  await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
  return { vm: dst, port };
}

/** A destination that entered postcopy from a raw source (nothing placed) and was paused by a reset. */
async function pausedInPostcopy(): Promise<SimVmProcess> {
  const { vm, port } = await incoming({ events: true, 'postcopy-ram': true, 'return-path': true });
  const s = await rawSource(port);
  await s.write(
    Buffer.concat([header(), encodeEmpty(MIG_CMD.POSTCOPY_ADVISE), encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[0, PAGES]]), encodeJson(MIG_CMD.POSTCOPY_RUN, {})]),
  );
  await waitFor(async () => (await vm.status()) === 'postcopy-active', 'postcopy-active');
  s.sock.resetAndDestroy();
  await waitFor(async () => (await vm.status()) === 'postcopy-paused', 'paused by the reset');
  return vm;
}

async function failedWith(vm: SimVmProcess, re: RegExp): Promise<void> {
  await waitFor(async () => (await vm.status()) === 'failed', 'the incoming migration to fail');
  const q = await vm.exec<{ status: string; 'error-desc'?: string }>('query-migrate');
  expect(q['error-desc']).toMatch(re);
  // Still alive and answering.
  expect(vm.alive()).toBe(true);
  expect(await vm.exec('query-status')).toMatchObject({ status: 'inmigrate' });
}

describe('destination VM: a broken stream in precopy fails the migration, nothing else', () => {
  it('garbage instead of a stream', async () => {
    const { vm, port } = await incoming();
    const s = await rawSource(port);
    await s.write(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
    await failedWith(vm, /migration stream error: unknown main stream message type 0x47/);
    expect((await vm.pages()).received).toBe(0);
    expect(vm.statuses).toEqual(['setup', 'failed']);
  });

  // A connection whose first frame is bad never becomes a channel; the destination must close
  // it too, or a source started with another -m pushes its whole memory into the void.
  it('a source migrating to a destination with another memory size fails too (the destination closes the connection)', async () => {
    dst = await startVm({ role: 'destination', dir, memory: '2M' });
    const src = await startVm({ role: 'source', dir, memory: MEMORY });
    try {
      await setCaps(dst, { events: true });
      const port = await freePort();
      await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
      await src.exec('migrate', { uri: `tcp:127.0.0.1:${port}` });
      await failedWith(dst, /guest layout mismatch: source has 256 pages of 4096 bytes, destination 512 of 4096/);
      await waitFor(async () => (await src.status()) === 'failed', 'the source to fail as well', 5_000);
      expect(await src.exec('query-status')).toMatchObject({ status: 'running' });
    } finally {
      await src.stop();
    }
  });

  it('a valid header then a corrupted page: the corrupt page is never placed', async () => {
    const { vm, port } = await incoming();
    const s = await rawSource(port);
    const bad = page(1);
    bad[13 + 100] ^= 0x40; // one bit of the page body
    await s.write(Buffer.concat([header(), page(0), page(2, 3), bad, page(3)]));
    await failedWith(vm, /page 1: content does not match version 0 \(corrupt stream\)/);
    const p = await vm.pages();
    expect(p.received).toBe(2); // pages 0 and 2; not 1, and nothing after it
    expect(vm.statuses).toEqual(['setup', 'active', 'failed']);
  });

  it('a stream truncated mid-page, then closed', async () => {
    const { vm, port } = await incoming();
    const s = await rawSource(port);
    await s.write(Buffer.concat([header(), page(0), page(1).subarray(0, 1000)]));
    s.sock.end();
    await failedWith(vm, /closed by the peer/);
    expect((await vm.pages()).received).toBe(1);
  });

  it('a reset (RST) in the middle of the stream', async () => {
    const { vm, port } = await incoming();
    const s = await rawSource(port);
    await s.write(Buffer.concat([header(), page(0), page(1).subarray(0, 50)]));
    await waitFor(async () => (await vm.status()) === 'active', 'active');
    s.sock.resetAndDestroy();
    await failedWith(vm, /(ECONNRESET|closed by the peer).* \(failed before the guest ran here\)$/);
  });

  // The source stops its guest when it sends the discard set; a destination that fails before
  // postcopy-run cannot pause (nothing runs here to pause), so the guest runs on neither side.
  it('a failure after the discard set but before postcopy-run: failed, and error-desc says the guest can run on neither side', async () => {
    const { vm, port } = await incoming({ events: true, 'postcopy-ram': true, 'return-path': true });
    const s = await rawSource(port);
    await s.write(Buffer.concat([header(), encodeEmpty(MIG_CMD.POSTCOPY_ADVISE), page(0), encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[1, PAGES - 1]])]));
    await waitFor(async () => (await vm.pages()).received === 1, 'the precopy page placed');
    s.sock.resetAndDestroy();
    await failedWith(vm, /after the source had switched to postcopy: the guest can be resumed on neither side/);
    expect(vm.statuses).toEqual(['setup', 'active', 'failed']);
  });

  it('a header for another guest layout, a bad magic, a resume on a fresh incoming', async () => {
    for (const [bytes, re] of [
      [header(false, PAGES * 2), /guest layout mismatch: source has 512 pages of 4096 bytes, destination 256 of 4096/],
      [Buffer.concat([Buffer.from([1, 0, 0, 0, 16]), Buffer.alloc(16)]), /not a postcopy-lab migration stream/],
      [header(true), /a resume arrived on a fresh incoming migration/],
      [page(0), /expected the stream header, got page/],
    ] as const) {
      const { vm, port } = await incoming();
      const s = await rawSource(port);
      await s.write(bytes);
      await failedWith(vm, re);
      expect((await vm.pages()).received).toBe(0);
      await vm.stop();
    }
  });

  it('after a failure the same destination takes a fresh migrate-incoming and a scripted precopy completes verified', async () => {
    const { vm, port } = await incoming();
    const s1 = await rawSource(port);
    await s1.write(Buffer.from([0xff, 0, 0, 0, 0]));
    await failedWith(vm, /unknown main stream message type 0xff/);
    const port2 = await freePort();
    await vm.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${port2}` });
    expect(await vm.status()).toBe('setup');
    const s = await rawSource(port2);
    const versions = Uint32Array.from({ length: PAGES }, (_, i) => i % 5);
    const pages: Buffer[] = [header()];
    for (let i = 0; i < PAGES; i++) pages.push(page(i, versions[i]));
    await s.write(Buffer.concat([...pages, ...encodeVerifyAll(versions), encodeJson(MIG_CMD.EOF, { vcpus: [] })]));
    await waitFor(async () => (await vm.status()) === 'completed', 'completed');
    await waitFor(() => s.received.some((m) => m.type === 'shut'), 'the SHUT verdict on the return path');
    expect(s.received.find((m) => m.type === 'shut')).toMatchObject({ result: { verified: true, pages: PAGES } });
    expect((await vm.pages()).verified).toBe(true);
    expect(await vm.exec('query-status')).toMatchObject({ status: 'running' });
    expect(vm.statuses).toEqual(['setup', 'failed', 'setup', 'active', 'completed']);
  });

  it('a scripted precopy whose x-verify disagrees with what was sent: verified false, never true', async () => {
    const { vm, port } = await incoming();
    const s = await rawSource(port);
    const sent: Buffer[] = [header()];
    for (let i = 0; i < PAGES; i++) sent.push(page(i, 0));
    const claimed = new Uint32Array(PAGES);
    claimed[17] = 1; // the source says page 17 is at version 1, but version 0 was sent
    await s.write(Buffer.concat([...sent, ...encodeVerifyAll(claimed), encodeJson(MIG_CMD.EOF, {})]));
    await waitFor(async () => (await vm.status()) === 'completed', 'completed');
    const p = await vm.pages();
    expect(p.verified).toBe(false);
    expect(p.mismatches).toEqual([17]);
  });
});

describe('destination VM: postcopy with a scripted source', () => {
  it('a corrupt page in postcopy pauses (never places it); recovery by bitmap then completes verified; a late duplicate never overwrites', async () => {
    const { vm, port } = await incoming({ events: true, 'postcopy-ram': true, 'return-path': true });
    const s = await rawSource(port);
    const HAVE = 64; // pages sent in precopy; the rest are discarded and come on request
    const pre: Buffer[] = [header(), encodeEmpty(MIG_CMD.POSTCOPY_ADVISE)];
    for (let i = 0; i < HAVE; i++) pre.push(page(i));
    pre.push(encodeRanges(MIG_CMD.POSTCOPY_RAM_DISCARD, [[HAVE, PAGES - HAVE]]));
    pre.push(encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: [] }));
    await s.write(Buffer.concat(pre));
    await waitFor(async () => (await vm.status()) === 'postcopy-active', 'postcopy-active');
    expect(await vm.exec('query-status')).toMatchObject({ status: 'running' });
    // The guest runs here now and faults on missing pages: requests arrive on the return path.
    await waitFor(() => s.received.some((m) => m.type === 'req-pages'), 'a page request');
    for (const m of s.received) if (m.type === 'req-pages') expect(m.start).toBeGreaterThanOrEqual(HAVE);
    // Serve one request properly, then send a corrupt page.
    const first = s.received.find((m) => m.type === 'req-pages') as { start: number };
    await s.write(page(first.start));
    await waitFor(async () => (await vm.pages()).received === HAVE + 1, 'the requested page placed');
    const corruptIndex = first.start === PAGES - 1 ? PAGES - 2 : PAGES - 1;
    const bad = page(corruptIndex);
    bad[bad.length - 1] ^= 1;
    await s.write(bad);
    await waitFor(async () => (await vm.status()) === 'postcopy-paused', 'postcopy-paused');
    const q = await vm.exec<{ 'error-desc'?: string }>('query-migrate');
    expect(q['error-desc']).toMatch(new RegExp(`page ${corruptIndex}: content does not match`));
    const paused = await vm.pages();
    expect(paused.received).toBe(HAVE + 1); // the corrupt page was not placed
    // Paused, not dead: the guest is still the destination's and QMP answers.
    expect(await vm.exec('query-status')).toMatchObject({ status: 'running' });
    expect((await vm.exec<{ class?: string }>('query-migrate-parameters'))).toBeTruthy();

    // Recovery: listen again, reconnect with a resume header, exchange the bitmap.
    const rport = await freePort();
    await vm.qmp.executeOob('migrate-recover', { uri: `tcp:127.0.0.1:${rport}` });
    const r = await rawSource(rport);
    await r.write(Buffer.concat([header(true), encodeEmpty(MIG_CMD.RECV_BITMAP)]));
    const bm = (await waitFor(() => r.received.find((m) => m.type === 'recv-bitmap'), 'the received bitmap')) as { bitmap: Uint8Array };
    const have = new Set<number>();
    for (let i = 0; i < PAGES; i++) if (bm.bitmap[i >> 3] & (1 << (i & 7))) have.add(i);
    expect(have.size).toBe(HAVE + 1);
    expect(have.has(first.start)).toBe(true);
    expect(have.has(corruptIndex)).toBe(false);
    await r.write(encodeResume('bitmap'));
    await waitFor(() => r.received.some((m) => m.type === 'resume-ack'), 'the resume ack');
    await waitFor(async () => (await vm.status()) === 'postcopy-active', 'postcopy-active again');
    // After the ack the destination asks again for every page a vCPU is still blocked on.
    const blocked = (await vm.pages())['blocked-vcpus'];
    if (blocked > 0) await waitFor(() => r.received.some((m) => m.type === 'req-pages'), 're-sent requests after the resume');

    // A duplicate with another (valid) version of a page already present must be discarded.
    await r.write(page(0, 9));
    // Send everything the bitmap said was missing.
    const rest: Buffer[] = [];
    for (let i = 0; i < PAGES; i++) if (!have.has(i)) rest.push(page(i));
    await r.write(Buffer.concat(rest));
    await waitFor(() => r.received.some((m) => m.type === 'x-all-received'), 'x-all-received');
    await r.write(Buffer.concat([...encodeVerifyAll(new Uint32Array(PAGES)), encodeJson(MIG_CMD.EOF, {})]));
    await waitFor(async () => (await vm.status()) === 'completed', 'completed');
    const done = await vm.pages();
    expect(done.verified).toBe(true);
    expect(done['duplicates-discarded']).toBeGreaterThanOrEqual(1);
    expect(done.recoveries).toBe(1);
    expect(vm.statuses).toEqual(['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed']);
    expect(r.received.find((m) => m.type === 'shut')).toMatchObject({ result: { verified: true } });
  });

  it('garbage on the recovery port while paused is reported (X_MIGRATION_ERROR, error-desc); the destination stays paused and recoverable on the same listener', async () => {
    const vm = await pausedInPostcopy();
    const rport = await freePort();
    await vm.exec('migrate-recover', { uri: `tcp:127.0.0.1:${rport}` });
    const g = await rawSource(rport);
    await g.write(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
    const ev = await waitFor(() => vm.events.find((e) => e.event === 'X_MIGRATION_ERROR'), 'the X_MIGRATION_ERROR event');
    expect(ev.data).toMatchObject({ status: 'postcopy-paused', 'error-desc': expect.stringMatching(/migration stream error: unknown main stream message type 0x47/) });
    expect(await vm.exec('query-migrate')).toMatchObject({ status: 'postcopy-paused', 'error-desc': expect.stringMatching(/unknown main stream message type 0x47/) });
    await waitFor(() => g.state.closed, 'the rejected connection closed by the destination');
    expect((await vm.pages())['recovery-attempts']).toBe(0);
    // Still recoverable: a proper resume on the same listener goes through.
    const r = await rawSource(rport);
    await r.write(Buffer.concat([header(true), encodeEmpty(MIG_CMD.RECV_BITMAP)]));
    await waitFor(() => r.received.find((m) => m.type === 'recv-bitmap'), 'the received bitmap');
    await r.write(encodeResume('bitmap'));
    await waitFor(async () => (await vm.status()) === 'postcopy-active', 'postcopy-active again');
    expect(vm.statuses).toEqual(['setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active']);
    expect(vm.alive()).toBe(true);
  });

  it('garbage during the recovery handshake returns to postcopy-paused, and it can be recovered again', async () => {
    const vm = await pausedInPostcopy();
    for (let attempt = 0; attempt < 2; attempt++) {
      const rport = await freePort();
      await vm.exec('migrate-recover', { uri: `tcp:127.0.0.1:${rport}` });
      const r = await rawSource(rport);
      await r.write(Buffer.concat([header(true), Buffer.from('garbage!')]));
      // Wait for this attempt to be counted first: the status was already postcopy-paused.
      await waitFor(async () => (await vm.pages())['recovery-attempts'] === attempt + 1, `recovery attempt ${attempt + 1} seen`);
      await waitFor(async () => (await vm.status()) === 'postcopy-paused', 'paused again after a bad handshake');
      expect(vm.alive()).toBe(true);
    }
    expect((await vm.pages())['recovery-attempts']).toBe(2);
    expect(vm.statuses.slice(-4)).toEqual(['postcopy-recover', 'postcopy-paused', 'postcopy-recover', 'postcopy-paused']);
    expect((await vm.pages()).received).toBe(0);
  });
});
