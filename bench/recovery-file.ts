/**
 * The recovery file's costs (issue 12): file size and write cost of both modes for a 1 GiB and
 * a 16 GiB guest, and the peak RSS (VmHWM) of a recovery source process serving the 16 GiB
 * guest's file to a destination.
 *
 * The spill (src/recovery/spill.ts) is driven in this process, as the source VM drives it, over
 * one scenario: precopy sends the first half of the pages, switchover, the postcopy push sends
 * the next quarter, the link fails. on-failure writes the last quarter (unsent) plus the pages
 * of its 20 MiB window then; continuous appended every page sent during precopy and wrote the
 * pages unsent at switchover right after it. Frames are made as the sender makes them (real
 * page bytes). The minimum is the file of the pages unsent at the failure (nothing is lost in
 * flight in this scenario: the destination lacks exactly the unsent pages).
 *
 * The recovery source is the real CLI process (`postcopy-lab recovery-source FILE`): it
 * validates the whole file, then resumes a minimal destination in this process (our wire
 * protocol over loopback TCP: the received bitmap, the resume ack, every page read and
 * dropped, the verdict), and its /proc/PID/status VmHWM is read when it has completed.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { Bitmap } from '../src/sim/bitmap.js';
import { encodeEmpty, encodeJson, encodePages, encodeRecvBitmap, MIG_RP_MSG, pageFrameBytes } from '../src/sim/wire.js';
import { minimumFileBytes } from '../src/recovery/format.js';
import { DEFAULT_RECOVERY_WINDOW, RecoverySpill } from '../src/recovery/spill.js';
import type { RecoveryMode } from '../src/recovery/format.js';
import { QmpClient } from '../src/qmp/client.js';

const GiB = 1 << 30;
const PS = 4096;
const BATCH = 256;
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const CLI = path.join(ROOT, 'bin/postcopy-lab.js');

interface Row {
  guest: string;
  mode: RecoveryMode;
  report: Record<string, unknown>;
  minimum: number;
}

async function written(spill: RecoverySpill): Promise<Record<string, unknown>> {
  for (;;) {
    const r = spill.report();
    if (r.state === 'written' || r.state === 'failed') return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** One mode over the scenario; returns its x-recovery-file report and the file. */
async function spillOnce(dir: string, guestBytes: number, mode: RecoveryMode): Promise<Row & { file: string }> {
  const pageCount = guestBytes / PS;
  const versions = new Uint32Array(pageCount).map((_, i) => (i * 2654435761) % 7);
  const spill = new RecoverySpill({ pageSize: PS, pageCount, versions, log: () => {} }, mode, DEFAULT_RECOVERY_WINDOW, dir, `g${guestBytes / GiB}-${mode}`);
  const fb = pageFrameBytes(PS);
  let stream = 1000; // the header and capabilities before the first page
  const send = async (from: number, to: number) => {
    for (let s = from; s < to; s += BATCH) {
      const pages = Array.from({ length: Math.min(BATCH, to - s) }, (_, k) => s + k);
      // Only continuous mode reads the frames; on-failure needs only where they were.
      const frames = mode === 'continuous' ? encodePages(pages, versions, PS) : Buffer.alloc(0);
      spill.noteSent(pages, frames, stream);
      stream += pages.length * fb;
      if ((s / BATCH) % 64 === 0) await new Promise<void>((r) => setImmediate(r));
    }
  };
  const unsent = new Bitmap(pageCount);
  await send(0, pageCount / 2);
  for (let i = pageCount / 2; i < pageCount; i++) unsent.set(i);
  spill.switchover(unsent);
  // Continuous: the switchover write runs in the background while the push goes on.
  await send(pageCount / 2, (pageCount * 3) / 4);
  for (let i = pageCount / 2; i < (pageCount * 3) / 4; i++) unsent.clear(i);
  spill.paused(unsent, stream);
  const report = await written(spill);
  return { guest: `${guestBytes / GiB} GiB`, mode, report, minimum: minimumFileBytes(PS, pageCount, pageCount / 4), file: spill.file };
}

/** Serve `file` from a real recovery source process to a destination lacking `lacking` pages; VmHWM in KiB. */
async function serve(file: string, pageCount: number, lacking: (i: number) => boolean): Promise<{ hwmKiB: number; pages: number; ms: number; validateMs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rs-'));
  const sock = path.join(dir, 'rs.qmp');
  const t0 = performance.now();
  const proc = execa(process.execPath, [CLI, 'recovery-source', file, '--qmp', sock], { cwd: ROOT, stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', reject: false });
  try {
    const qmp = await QmpClient.connect(sock, { retryUntilMs: 30 * 60_000, timeoutMs: 60_000 });
    const validateMs = performance.now() - t0;
    const present = new Bitmap(pageCount);
    for (let i = 0; i < pageCount; i++) if (!lacking(i)) present.set(i);
    let pages = 0;
    const done = new Promise<void>((resolve, reject) => {
      const server = net.createServer((c) => {
        let buf = Buffer.alloc(0);
        c.on('data', (d) => {
          buf = buf.length ? Buffer.concat([buf, d]) : d;
          let o = 0;
          while (buf.length - o >= 5) {
            const type = buf[o];
            const len = buf.readUInt32BE(o + 1);
            if (buf.length - o < 5 + len) break;
            if (type === 0x06) c.write(encodeRecvBitmap(present.bytes)); // MIG_CMD_RECV_BITMAP
            else if (type === 0x07) c.write(encodeEmpty(MIG_RP_MSG.RESUME_ACK)); // MIG_CMD_POSTCOPY_RESUME
            else if (type === 0x02) pages++;
            else if (type === 0x09) {
              // EOF: the verdict, as the destination sends it, and the end.
              c.end(encodeJson(MIG_RP_MSG.SHUT, { verified: true }));
              server.close();
              resolve();
            }
            o += 5 + len;
          }
          buf = buf.subarray(o);
        });
        c.on('error', reject);
      });
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as net.AddressInfo).port;
        qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}`, resume: true }).catch(reject);
      });
    });
    const t1 = performance.now();
    await done;
    for (let k = 0; k < 600; k++) {
      const q = await qmp.execute<{ status: string }>('query-migrate');
      if (q.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const status = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    const hwmKiB = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
    await qmp.execute('quit').catch(() => {});
    qmp.close();
    return { hwmKiB, pages, ms: performance.now() - t1, validateMs };
  } finally {
    proc.kill('SIGKILL');
    await proc;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const mb = (n: number) => (n / 1e6).toFixed(1);

/** `--only recovery-file`: prints the table; `quick` leaves out the 16 GiB guest. */
export async function benchRecoveryFile(opts: { quick?: boolean } = {}): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-recfile-'));
  const lines = [
    '| guest | mode | bytes written | write time (s) | write MB/s | elapsed (s) | size vs minimum |',
    '|---|---|---|---|---|---|---|',
  ];
  let rss = '';
  process.stdout.write('Recovery file: size and write cost of both modes (one run each), and the recovery source serving it\n' + lines.join('\n') + '\n');
  try {
    for (const guest of opts.quick ? [GiB] : [GiB, 16 * GiB]) {
      for (const mode of ['on-failure', 'continuous'] as const) {
        const row = await spillOnce(dir, guest, mode);
        const r = row.report;
        if (r.state !== 'written') throw new Error(`recovery file not written: ${String(r.error)}`);
        const bytes = r['bytes-written'] as number;
        const writeMs = r['write-ms'] as number;
        lines.push(
          `| ${row.guest} | ${mode} | ${mb(bytes)} MB | ${(writeMs / 1000).toFixed(1)} | ${mb(bytes / Math.max(writeMs, 1) * 1000)} | ${((r['elapsed-ms'] as number) / 1000).toFixed(1)} | ${(bytes / row.minimum).toFixed(2)}× (${mb(row.minimum)} MB) |`,
        );
        process.stdout.write(lines[lines.length - 1] + '\n');
        if (guest === (opts.quick ? GiB : 16 * GiB) && mode === 'on-failure') {
          const pageCount = guest / PS;
          const s = await serve(row.file, pageCount, (i) => i >= (pageCount * 3) / 4);
          rss = `recovery source serving the ${guest / GiB} GiB guest's on-failure file: validated in ${(s.validateMs / 1000).toFixed(1)} s, served ${s.pages} pages in ${(s.ms / 1000).toFixed(1)} s, peak RSS (VmHWM) ${(s.hwmKiB / 1024).toFixed(0)} MiB`;
          process.stdout.write(rss + '\n');
        }
        fs.rmSync(row.file, { force: true });
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return [...lines, '', rss].join('\n');
}
