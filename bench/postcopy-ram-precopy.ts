/**
 * Gilbert's claim, measured: is precopy slower with the `postcopy-ram` capability enabled (but
 * never switched to postcopy) than without? The same guest and link for both, on every
 * installed QEMU, a few runs each, alternating so host load falls on both alike.
 *
 *   npm run build && node dist/bench/postcopy-ram-precopy.js [--runs 3] [--memory 256] [--rate 4000]
 *
 * Guest: the generated ROM guest (src/qemu/guest-image.ts), `--memory` MiB, filled once, then
 * `--rate` pages/s over a working set of 10 % of its pages, so precopy converges. Link: loopback
 * TCP, `max-bandwidth` 1 GiB/s (in effect unlimited here: the CPU sets the pace). KVM when
 * usable. Reports QEMU's own `total-time`, `downtime`, `ram.transferred`, and MB/s
 * (transferred / total-time). Prints a Markdown table.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RAM_HEADROOM_MIB, writeGuestImage } from '../src/qemu/guest-image.js';
import { waitForPasses } from '../src/qemu/guest-probe.js';
import { installedQemus } from '../src/qemu/installed.js';
import { chooseAccel, startQemu } from '../src/qemu/launcher.js';
import { QmpClient } from '../src/qmp/client.js';

const MiB = 1 << 20;
const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, memory: { type: 'string', default: '256' }, rate: { type: 'string', default: '4000' } } });
const runs = Number(values.runs);
const memoryMiB = Number(values.memory);
const rate = Number(values.rate);
const endMiB = memoryMiB - RAM_HEADROOM_MIB;

interface Result {
  totalMs: number;
  downtimeMs: number;
  transferred: number;
}

async function once(bin: string, kvm: boolean, postcopyRam: boolean, dir: string): Promise<Result> {
  const image = join(dir, 'guest.rom');
  const written = (endMiB - 1) * 256;
  await writeGuestImage(image, { endMiB, dirtyPagesPerSecond: rate, workingSetPages: Math.round(written / 10) }, 'rom');
  const sides = await Promise.all(
    (['source', 'destination'] as const).map((side) =>
      startQemu({
        bin,
        memoryMiB,
        image,
        imageKind: 'rom',
        qmpSocket: join(dir, `${side}.qmp`),
        serialFile: join(dir, `${side}.serial`),
        kvm,
        incoming: side === 'destination' ? 'defer' : undefined,
      }),
    ),
  );
  const [src, dst] = sides;
  const qs = await Promise.all(sides.map((s) => QmpClient.connect(s.qmpSocket, { timeoutMs: 20_000 })));
  try {
    await waitForPasses(join(dir, 'source.serial'), 1, 60_000);
    for (const q of qs) await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: postcopyRam }] });
    await qs[0].execute('migrate-set-parameters', { 'max-bandwidth': 1024 * MiB });
    await qs[1].execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const port = (await qs[1].execute<{ 'socket-address': { port: string }[] }>('query-migrate'))['socket-address'][0].port;
    await qs[0].execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    const deadline = Date.now() + 120_000;
    for (;;) {
      const m = await qs[0].execute<{ status: string; 'total-time'?: number; downtime?: number; ram?: { transferred: number }; 'error-desc'?: string }>('query-migrate');
      if (m.status === 'completed') return { totalMs: m['total-time'] ?? 0, downtimeMs: m.downtime ?? 0, transferred: m.ram?.transferred ?? 0 };
      if (m.status === 'failed' || Date.now() > deadline) throw new Error(`migration ${m.status}: ${m['error-desc'] ?? 'did not complete in 120 s'}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const q of qs) q.close();
    await Promise.all([src.stop(), dst.stop()]);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const accel = await chooseAccel('auto');
console.log(`| QEMU | postcopy-ram | runs | total-time ms (median; all) | MB/s (median) | downtime ms (median) | MiB sent (median) |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const q of await installedQemus()) {
  const results: Record<'off' | 'on', Result[]> = { off: [], on: [] };
  for (let i = 0; i < runs; i++) {
    for (const mode of i % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      const dir = await mkdtemp(join(tmpdir(), 'pcl-gilbert-'));
      try {
        results[mode].push(await once(q.bin, accel.accel === 'kvm', mode === 'on', dir));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  for (const mode of ['off', 'on'] as const) {
    const r = results[mode];
    const mbps = r.map((x) => x.transferred / MiB / (x.totalMs / 1000));
    console.log(
      `| ${q.short} (${accel.accel}) | ${mode} | ${r.length} | ${median(r.map((x) => x.totalMs))}; ${r.map((x) => x.totalMs).join(', ')} | ${median(mbps).toFixed(0)} | ${median(r.map((x) => x.downtimeMs))} | ${median(r.map((x) => x.transferred / MiB)).toFixed(0)} |`,
    );
  }
}
