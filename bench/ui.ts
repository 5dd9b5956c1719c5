/**
 * How the TUI behaves while a migration streams at full speed: renders per second, the cost of
 * a frame, key-to-screen latency, and the UI process's CPU share. Not a test: a script that
 * prints a table (the README's figures come from it).
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/ui.js [--passes N] [--presses N] [--profile DIR]
 *
 * --profile DIR: the TUI process writes a V8 CPU profile (node --cpu-prof) into DIR, to find
 * where a frame's time goes; the bench prints its self time in the measured windows by part of
 * the app and by function (bench/cpu-profile.ts) and leaves the windows beside the profiles.
 *
 * Method. The real app runs in a pseudo-terminal (test/helpers/term.ts: node-pty feeding a
 * headless xterm) as `postcopy-lab lab link-cut-recovery`, 120x36, with
 * POSTCOPY_LAB_UI_STATS=<file> so the app keeps its own counters in a file (src/ui/app.tsx,
 * startStatsFile: frames Ink wrote and their times, React renders of the lab screen, CPU). Through the
 * QMP console the bench sets the lab's drill-speed parameters on the source (the TUI's default
 * parameters are slowed for a person), then `s` (show me) runs steps 1 to 3: the migration is
 * in postcopy; Space releases the next step's hold, so pages stream at the drill's cap. That
 * phase is the measurement window:
 *   - renders/s and frames/s: the difference of two readings of the stats file / their time;
 *   - CPU: process.cpuUsage() (user + system) of the UI process, read by the app itself into
 *     the stats file, over the same window, as % of one core (the VMs and the relay are other
 *     processes and are not counted); per render, and the system share;
 *   - terminal output per frame: characters the app wrote to the pty over the window / frames;
 *   - sample to frame: for each sample of the session the screen showed, the time from handing
 *     it to React until Ink had built the frame (render, commit, Yoga layout, Ink's output),
 *     p50/p95; and Ink's own part of it (its onRender time: the tree turned into the screen);
 *   - key-to-screen: time from writing a key to the pty until the emulated screen shows its
 *     effect (`?` -> the help overlay, `:` -> the console, `h` -> the hint line), polled every
 *     millisecond; each overlay is closed again (Esc) before the next press. And the app's own
 *     part of every key of that phase: from its key handlers until Ink built the next frame
 *     (the rest is the pty, the scheduler on a loaded machine, and this process's polling).
 * A pass ends when the migration completes or has its samples; passes repeat until `--presses`
 * samples per key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EventEmitter } from 'node:events';
import { loadLab } from '../src/lab/load.js';
import { FakeSession, fakeSide, fakeSnapshot } from '../test/helpers/fake-session.js';
import { spawnTerm, type Term } from '../test/helpers/term.js';
import { shareInkOutputCaches } from '../src/ui/ink-output-cache.js';
import { nowUs, summarize, type Window } from './cpu-profile.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(ROOT, 'bin/postcopy-lab.js');
const LAB = 'link-cut-recovery';

/** What the app writes to POSTCOPY_LAB_UI_STATS (src/ui/app.tsx, startStatsFile). */
interface Stats {
  t: number;
  /** process.cpuUsage() of the TUI process, user + system, µs. */
  cpuUs: number;
  /** Of which system, µs. */
  systemUs?: number;
  /** Characters written to the terminal. */
  written?: number;
  frames: number;
  renderMs: number;
  /** Ink's output time per frame written, ms. */
  renderTimes: number[];
  renders: number;
  /** Per session sample shown: React render + commit + layout + Ink output, ms. */
  builds: number[];
  /** Per key: from the app's key handlers until Ink has built the frame after it, ms. */
  keys?: number[];
}

function readStats(file: string): Stats | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Stats;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `key` and returns the milliseconds until `visible(screen)` holds. */
async function keyToScreen(t: Term, key: string, visible: (s: string) => boolean, timeoutMs = 5000): Promise<number> {
  const t0 = performance.now();
  t.type(key);
  for (;;) {
    if (visible(t.screen())) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`no effect of ${JSON.stringify(key)} on screen within ${timeoutMs} ms:\n${t.screen()}`);
    await sleep(1);
  }
}

/** The counters table's state row: `state   <source>   <destination>`. */
const stateRow = (s: string) => s.split('\n').find((l) => /\sstate {2,}\S/.test(l)) ?? '';
const migrating = (s: string) => /postcopy-active/.test(stateRow(s));
const helpOpen = (s: string) => s.includes('cut the link both ways');
const consoleOpen = (s: string) => s.includes('QMP console to');
const normalScreen = (s: string) => /^Events /m.test(s) && !helpOpen(s);

async function consoleLine(t: Term, side: 'source' | 'destination', line: string): Promise<void> {
  await t.waitFor(`QMP console to ${side}`);
  t.type(line);
  await t.waitUntil((s) => s.includes(line.slice(-20)), 'the typed line');
  t.type('\r');
  await t.waitUntil((s) => {
    const ls = s.split('\n');
    const i = ls.findLastIndex((l) => l.startsWith(`${side}> ${line.slice(0, 16)}`));
    return i >= 0 && ls[i + 1] !== undefined && ls[i + 1] !== '…' && !ls[i + 1].startsWith('Enter send');
  }, `the reply to ${line}`);
}

interface PassResult {
  windowMs: number;
  renders: number;
  frames: number;
  renderMs: number;
  cpuS: number;
  systemS: number;
  /** Characters written to the terminal in the window. */
  written: number;
  /** Ink's output time of each frame in the window, ms. */
  renderTimes: number[];
  /** The whole build of each sampled frame in the window, ms. */
  builds: number[];
  latency: Record<string, number[]>;
  /** Key to frame inside the app for the keys of this pass (the presses and their Esc), ms. */
  keysInApp: number[];
  /** The passive window on process.hrtime's clock, to cut a --profile to it. */
  window: Window;
}

/** The passive part of each pass: streaming, no keys. */
const PASSIVE_MS = 4000;

async function pass(params: Record<string, unknown>, want: number, have: Record<string, number[]>, profileDir?: string): Promise<PassResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pcl-bench-ui-'));
  const statsFile = path.join(dir, 'ui-stats.json');
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const t = spawnTerm(process.execPath, [...nodeArgs, CLI, 'lab', LAB], { cwd: ROOT, cols: 120, rows: 36, dir, env: { POSTCOPY_LAB_UI_STATS: statsFile } });
  const latency: Record<string, number[]> = { '?': [], ':': [], h: [] };
  try {
    await t.waitFor('Steps 1/7', 60_000);
    await t.waitFor(/destination listens on/, 60_000);
    // The lab's drill-speed parameters, set on the source through the console.
    t.type(':');
    await t.waitFor('QMP console to destination');
    t.type('\u001b[Z'); // Shift-Tab: the other side (Tab completes a command)
    await consoleLine(t, 'source', `migrate-set-parameters ${JSON.stringify(params)}`);
    t.type('\u001b');
    await t.waitUntil(normalScreen, 'the event log');
    for (const step of [2, 3, 4]) {
      await t.waitFor(/s show me/);
      t.type('s');
      await t.waitFor(`Steps ${step}/7`, 60_000);
    }
    await t.waitUntil(migrating, 'postcopy-active');
    // The step that follows (cut the link) holds postcopy's push to a trickle for a person;
    // Space lets it run, so the window sees pages stream at the drill's cap.
    await t.waitFor(/held for you/, 10_000).then(
      () => t.type(' '),
      () => {},
    );
    await t.waitUntil((s) => !/held for you/.test(s), 'the hold released');
    // First a passive window: the pages stream and nobody types. Renders, frames and CPU are
    // what the UI costs by itself; key presses would add their own renders to it.
    let s0 = readStats(statsFile);
    while (!s0) {
      // written in place by the app: a read can meet a half-written file
      await sleep(10);
      s0 = readStats(statsFile);
    }
    const w0 = performance.now();
    const window: Window = { startUs: nowUs(), endUs: 0 };
    let s1 = s0;
    while (migrating(t.screen()) && performance.now() - w0 < PASSIVE_MS) {
      await sleep(250);
      const s = readStats(statsFile);
      if (s && migrating(t.screen())) {
        s1 = s;
        window.endUs = nowUs();
      }
    }
    const result: PassResult = {
      windowMs: s1.t - s0.t,
      renders: s1.renders - s0.renders,
      frames: s1.frames - s0.frames,
      renderMs: s1.renderMs - s0.renderMs,
      // process.cpuUsage() inside the TUI process, over the same window as its own clock.
      cpuS: (s1.cpuUs - s0.cpuUs) / 1e6,
      systemS: ((s1.systemUs ?? 0) - (s0.systemUs ?? 0)) / 1e6,
      written: (s1.written ?? 0) - (s0.written ?? 0),
      renderTimes: s1.renderTimes.slice(s0.renderTimes.length),
      builds: s1.builds.slice(s0.builds.length),
      latency,
      keysInApp: [],
      window,
    };
    // Then key-to-screen latency while the pages still stream; stop at the end of postcopy.
    const keys: Array<['?' | ':' | 'h', (s: string) => boolean, string]> = [
      ['?', helpOpen, '\u001b'],
      [':', consoleOpen, '\u001b'],
    ];
    let hintsLeft = 2;
    for (let i = 0; migrating(t.screen()); i++) {
      const [key, visible, close] = keys[i % keys.length];
      if (latency[key].length + have[key].length < want) {
        latency[key].push(await keyToScreen(t, key, visible));
        t.type(close);
        await t.waitUntil(normalScreen, 'the lab screen again');
      } else if (hintsLeft > 0) {
        const n = 3 - hintsLeft;
        latency.h.push(await keyToScreen(t, 'h', (s) => s.includes(`Hint ${n}/2`)));
        hintsLeft--;
      } else break;
      // Space the presses out like a person would.
      await sleep(150);
    }
    const keysFrom = s1.keys?.length ?? 0;
    await sleep(600); // the app rewrites its stats file every 500 ms
    let s2 = readStats(statsFile);
    for (let i = 0; !s2 && i < 100; i++) {
      await sleep(10);
      s2 = readStats(statsFile);
    }
    result.keysInApp = s2?.keys?.slice(keysFrom) ?? [];
    t.type('q');
    const code = await Promise.race([t.exit, sleep(20_000).then(() => -1)]);
    if (code === -1) {
      t.type('y'); // the quit confirmation, if the run ended paused
      await Promise.race([t.exit, sleep(10_000)]);
    }
    return result;
  } finally {
    t.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The cost of one frame by itself, in this process, without a terminal or a migration: the lab
 * screen at 120x36 in Ink (unthrottled), fed a snapshot in which what streams changes every
 * time (counters, link bytes, the page map, the sparklines, t). CPU per frame from
 * process.cpuUsage() over `frames` frames; load on the machine inflates it less than wall time.
 */
async function frameCost(frames: number, asInk = false): Promise<{ cpuMsPerFrame: number; inkMs: number[] }> {
  // React as the CLI runs it (src/cli.ts): its development build is several times slower. It
  // reads NODE_ENV when first loaded, hence the imports here.
  process.env.NODE_ENV ??= 'production';
  const { render } = await import('ink');
  const { createElement } = await import('react');
  const { LabScreen } = await import('../src/ui/screens/LabScreen.js');
  // As runTui does (src/ui/app.tsx): frames share Ink's Output caches; `asInk` measures first
  // without (it cannot be undone), for a before/after in the same minute.
  if (!asInk) await shareInkOutputCaches();
  const stdout = Object.assign(new EventEmitter(), { columns: 120, rows: 36, isTTY: false, write: () => true });
  const stdin = Object.assign(new EventEmitter(), {
    isTTY: true,
    setEncoding() {},
    setRawMode() {},
    resume() {},
    pause() {},
    ref() {},
    unref() {},
    read: () => null,
  });
  const session = new FakeSession();
  const inkMs: number[] = [];
  const app = render(
    createElement(LabScreen, { session, columns: 120, rows: 36, onQuit: () => {}, onFinished: () => {}, sampleIntervalMs: 0 }),
    {
      stdout: stdout as unknown as NodeJS.WriteStream,
      stdin: stdin as unknown as NodeJS.ReadStream,
      debug: true,
      patchConsole: false,
      exitOnCtrlC: false,
      onRender: ({ renderTime }) => inkMs.push(renderTime),
    },
  );
  const cells = 256; // the orchestrator's map-cells
  const step = async (i: number) => {
    const received = Math.min(cells, i * 3);
    const map = 'R'.repeat(received) + [...'.'.repeat(cells - received)].map((c, j) => ((j * 7 + i) % 13 === 0 ? 'q' : (j + i) % 5 === 0 ? 'r' : c)).join('');
    const base = fakeSnapshot();
    const dst = fakeSide('destination');
    const src = fakeSide('source');
    session.set({
      snapshot: {
        ...base,
        t: 12_300 + i * 100,
        source: { ...src, pages: { ...src.pages!, sent: 400 + i * 50, missing: 590 - (i % 590) }, ram: { ...src.ram, mbps: 100 + (i % 17) } },
        destination: { ...dst, pages: { ...dst.pages!, received: 400 + i * 50, requested: i % 4, map } },
        link: { ...base.link, 'source-to-destination': { ...base.link['source-to-destination'], bytesForwarded: i * 4_000_000 } },
      },
      history: Array.from({ length: 60 }, (_, k) => ({ t: k, mbps: 100 + ((k + i) % 9), remaining: 1e8 - (k + i) * 1e6 })),
    });
    await new Promise((r) => setImmediate(r));
  };
  for (let i = 0; i < 20; i++) await step(i); // warm up (JIT, caches)
  inkMs.length = 0;
  const c0 = process.cpuUsage();
  for (let i = 20; i < 20 + frames; i++) await step(i);
  const c1 = process.cpuUsage(c0);
  app.unmount();
  return { cpuMsPerFrame: (c1.user + c1.system) / 1000 / frames, inkMs: [...inkMs] };
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { passes: { type: 'string', default: '4' }, presses: { type: 'string', default: '20' }, profile: { type: 'string' }, frames: { type: 'string', default: '300' } } });
  const maxPasses = Number(values.passes);
  const want = Number(values.presses);
  process.stderr.write('in-process frames…\n');
  const fcInk = await frameCost(Number(values.frames), true);
  const fc = await frameCost(Number(values.frames));
  const lab = await loadLab(path.join(ROOT, 'labs', `${LAB}.yaml`));
  const params = lab.setup.parameters;
  const load0 = os.loadavg();
  const all: PassResult[] = [];
  const lat: Record<string, number[]> = { '?': [], ':': [], h: [] };
  for (let i = 0; i < maxPasses && (lat['?'].length < want || lat[':'].length < want); i++) {
    process.stderr.write(`pass ${i + 1}: ${LAB} with ${JSON.stringify(params)}…\n`);
    const r = await pass(params, want, lat, values.profile);
    all.push(r);
    for (const k of Object.keys(lat)) lat[k].push(...r.latency[k]);
  }
  const load1 = os.loadavg();
  const windowS = all.reduce((a, r) => a + r.windowMs, 0) / 1000;
  const renders = all.reduce((a, r) => a + r.renders, 0);
  const frames = all.reduce((a, r) => a + r.frames, 0);
  const renderMs = all.reduce((a, r) => a + r.renderMs, 0);
  const cpuS = all.reduce((a, r) => a + r.cpuS, 0);
  const systemS = all.reduce((a, r) => a + r.systemS, 0);
  const written = all.reduce((a, r) => a + r.written, 0);
  const builds = all.flatMap((r) => r.builds);
  const inkTimes = all.flatMap((r) => r.renderTimes);
  const keysInApp = all.flatMap((r) => r.keysInApp);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const rows: [string, string, string][] = [
    ['measured window (postcopy streaming)', `${windowS.toFixed(1)} s over ${all.length} run(s)`, ''],
    ['renders per second (lab screen)', (renders / windowS).toFixed(1), 'target 10-15'],
    ['frames written per second (Ink)', (frames / windowS).toFixed(1), ''],
    ['sample to frame (React, layout, Ink)', builds.length ? `p50 ${ms(pct(builds, 50))}, p95 ${ms(pct(builds, 95))} (n=${builds.length})` : 'no samples', ''],
    ['  of which Ink output', inkTimes.length ? `p50 ${ms(pct(inkTimes, 50))}, p95 ${ms(pct(inkTimes, 95))}, mean ${ms(renderMs / Math.max(1, frames))}` : 'no samples', ''],
    ['UI process CPU (process.cpuUsage)', `${((cpuS / windowS) * 100).toFixed(1)} % of one core`, 'target < 10 %'],
    ['  per render; of which system', `${ms((cpuS * 1000) / Math.max(1, renders))}; ${((systemS / windowS) * 100).toFixed(1)} % of one core`, ''],
    ['terminal output per frame', `${(written / Math.max(1, frames) / 1024).toFixed(1)} KiB`, ''],
  ];
  for (const [k, label] of [
    ['?', '`?` -> help visible'],
    [':', '`:` -> console visible'],
    ['h', '`h` -> hint visible'],
  ] as const) {
    const xs = lat[k];
    rows.push([`key-to-screen ${label}`, xs.length ? `p50 ${pct(xs, 50).toFixed(0)} ms, p95 ${pct(xs, 95).toFixed(0)} ms (n=${xs.length})` : 'no samples', 'target p95 < 50 ms']);
  }
  rows.push(['  key to frame inside the app (all keys)', keysInApp.length ? `p50 ${ms(pct(keysInApp, 50))}, p95 ${ms(pct(keysInApp, 95))} (n=${keysInApp.length})` : 'no samples', '']);
  rows.push(['in-process frame, Ink caches per frame', `${fcInk.cpuMsPerFrame.toFixed(2)} ms CPU each; Ink output p50 ${ms(pct(fcInk.inkMs, 50))}, p95 ${ms(pct(fcInk.inkMs, 95))} (n=${fcInk.inkMs.length})`, '']);
  rows.push(['in-process frame, 120x36 (no pty)', `${fc.cpuMsPerFrame.toFixed(2)} ms CPU each; Ink output p50 ${ms(pct(fc.inkMs, 50))}, p95 ${ms(pct(fc.inkMs, 95))} (n=${fc.inkMs.length})`, '']);
  rows.push(['load average (1 min) before / after', `${load0[0].toFixed(2)} / ${load1[0].toFixed(2)} on ${os.cpus().length} cores`, '']);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  process.stdout.write(`postcopy-lab TUI bench: ${LAB}, 120x36, node ${process.version}\n\n`);
  for (const [a, b, c] of rows) process.stdout.write(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}\n`);
  if (values.profile) printProfile(values.profile, all.map((r) => r.window).filter((w) => w.endUs > w.startUs), renders);
}

/** --profile: the TUI's CPU in the measured windows by part of the app, per render. */
function printProfile(dir: string, windows: Window[], renders: number): void {
  // Kept beside the profiles, for a closer look at the same windows afterwards.
  fs.writeFileSync(path.join(dir, `windows-${Date.now()}.json`), JSON.stringify(windows));
  const { windowMs, parts, functions } = summarize(dir, windows);
  if (!windowMs) {
    process.stdout.write(`\nno profile in ${dir} covers a measured window\n`);
    return;
  }
  const total = parts.reduce((a, [, ms]) => a + ms, 0);
  const row = ([k, ms]: [string, number]) => `  ${k.padEnd(60)} ${ms.toFixed(0).padStart(6)} ms  ${((100 * ms) / windowMs).toFixed(2).padStart(5)} % of a core  ${(ms / Math.max(1, renders)).toFixed(2)} ms per render\n`;
  process.stdout.write(`\nprofiled CPU in the windows (${(windowMs / 1000).toFixed(1)} s, with the profiler's own cost): ${((100 * total) / windowMs).toFixed(1)} % of a core\n`);
  for (const p of parts.slice(0, 14)) process.stdout.write(row(p));
  process.stdout.write('heaviest functions (self time)\n');
  for (const f of functions.slice(0, 20)) process.stdout.write(row(f));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/ui: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
